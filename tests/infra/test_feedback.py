"""Feedback infra: the public function URL, its key secret, the events table and the
least-privilege grants of both functions."""

from __future__ import annotations

from infra.feedback import FEEDBACK_ROWS_PREFIX
from infra.training import TRAIN_PREFIX


def _permissions_of(cfn, stage, function):
    arn = {"Fn::GetAtt": [cfn.lid(function), "Arn"]}
    return [
        p["Properties"]
        for p in cfn.resources(stage.template_json, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == arn
    ]


def test_the_function_url_is_public_and_only_the_url_may_invoke(cfn, stage):
    """Auth NONE, justified in infra/feedback.py (the HMAC is the authorization). Since
    October 2025 a new function URL needs both lambda:InvokeFunctionUrl and
    lambda:InvokeFunction (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html);
    the public InvokeFunction is limited to calls made through the URL."""
    feedback = stage.stage.stack.feedback
    url = cfn.properties(stage.template_json, feedback.url)
    assert url["AuthType"] == "NONE"
    assert url["TargetFunctionArn"] == {"Fn::GetAtt": [cfn.lid(feedback.function), "Arn"]}
    permissions = _permissions_of(cfn, stage, feedback.function)
    by_action = {p["Action"]: p for p in permissions}
    assert set(by_action) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}, permissions
    assert by_action["lambda:InvokeFunctionUrl"]["Principal"] == "*"
    assert by_action["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert by_action["lambda:InvokeFunction"].get("InvokedViaFunctionUrl") is True


def test_the_key_is_generated_by_cloudformation(cfn, stage):
    secret = cfn.properties(stage.template_json, stage.stage.stack.feedback.secret)
    generated = secret["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32 and generated["ExcludePunctuation"] is True
    assert "SecretString" not in secret  # never in the template


def test_events_table_keys_and_ttl(cfn, stage):
    table = cfn.properties(stage.template_json, stage.stage.stack.feedback.table)
    assert table["KeySchema"] == [
        {"AttributeName": "thing", "KeyType": "HASH"},
        {"AttributeName": "event_id", "KeyType": "RANGE"},
    ]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_feedback_function_has_least_privilege(cfn, stage):
    feedback = stage.stage.stack.feedback
    statements = cfn.policy_statements(stage.template_json, feedback.function.role)
    table, secret = cfn.att(feedback.table, "Arn"), cfn.ref(feedback.secret)
    data = cfn.att(stage.stage.stack.training.data_bucket, "Arn")
    assert FEEDBACK_ROWS_PREFIX.startswith(TRAIN_PREFIX)  # the train channel reads the rows
    granted = {}
    for s in statements:
        for action in cfn.as_list(s["Action"]):
            granted.setdefault(action, []).extend(cfn.as_list(s["Resource"]))
    logs = {a for a in granted if a.startswith("logs:")}
    assert set(granted) - logs == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:PutObject",
        "secretsmanager:GetSecretValue",
    }
    assert granted["dynamodb:GetItem"] == [table] and granted["dynamodb:UpdateItem"] == [table]
    assert granted["s3:PutObject"] == [f"{data}/{FEEDBACK_ROWS_PREFIX}*"]
    assert granted["secretsmanager:GetSecretValue"] == [secret]


def test_alert_function_signs_links_and_stores_ends(cfn, stage):
    stack = stage.stage.stack
    feedback, alerting = stack.feedback, stack.alerting
    statements = cfn.policy_statements(stage.template_json, alerting.function.role)
    table, secret = cfn.att(feedback.table, "Arn"), cfn.ref(feedback.secret)
    on_table = {a for s in statements if table in cfn.as_list(s["Resource"]) for a in cfn.as_list(s["Action"])}
    assert on_table == {"dynamodb:UpdateItem"}  # record_end is an upsert
    on_secret = {a for s in statements if secret in cfn.as_list(s["Resource"]) for a in cfn.as_list(s["Action"])}
    assert on_secret == {"secretsmanager:GetSecretValue"}
    env = cfn.render(cfn.properties(stage.template_json, alerting.function)["Environment"]["Variables"])
    assert env["EVENTS_TABLE"] == cfn.ref(feedback.table)
    assert env["FEEDBACK_SECRET_ARN"] == secret
    assert env["FEEDBACK_URL"] == cfn.att(feedback.url, "FunctionUrl")
    assert env["FEEDBACK_LINK_S"] == str(stage.config.alerts.feedback_link_days * 86400)
    # An end whose verdict came first writes its rows: PutObject under the rows' prefix only.
    data = stage.stage.stack.training.data_bucket
    assert env["TRAINING_BUCKET"] == cfn.ref(data)
    put = [r for s in statements if "s3:PutObject" in cfn.as_list(s["Action"]) for r in cfn.as_list(s["Resource"])]
    arn = cfn.att(data, "Arn")
    assert [r for r in put if r.startswith(arn)] == [f"{arn}/{FEEDBACK_ROWS_PREFIX}*"]


def test_feedback_url_is_an_output(cfn, stage):
    output = stage.template_json["Outputs"]["FeedbackUrl"]
    assert cfn.render(output["Value"]) == cfn.att(stage.stage.stack.feedback.url, "FunctionUrl")
