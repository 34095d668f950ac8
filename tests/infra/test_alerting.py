"""Alerting: rule SQL and actions, the invoke permission, encryption, the Lambda's settings and bundle."""

from __future__ import annotations

from aws_cdk.assertions import Match

from edge_component.contracts.topics import (
    ALERT_TOPIC_FILTER,
    ALERT_TOPIC_THING_SEGMENT,
)
from infra.alerting import ALERT_SCHEMA

# timestamp(): "the current timestamp in milliseconds ... as observed by the AWS IoT rules
# engine" (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-function-timestamp).
EXPECTED_SQL = "SELECT *, topic(2) AS topic_thing_name, timestamp() AS received_at_ms FROM 'vigil/+/alerts'"


def test_rule_selects_the_stages_alerts_with_the_thing_name(cfn, stage):
    alerting = stage.stage.stack.alerting
    payload = cfn.properties(stage.template_json, alerting.rule)["TopicRulePayload"]
    # Only the stage's things (tests/infra/test_alert_rule.py checks two stages apart).
    assert payload["Sql"].startswith(EXPECTED_SQL + " WHERE ")
    assert EXPECTED_SQL == (
        f"SELECT *, topic({ALERT_TOPIC_THING_SEGMENT}) AS topic_thing_name, timestamp() AS received_at_ms "
        f"FROM '{ALERT_TOPIC_FILTER}'"
    )
    assert payload["AwsIotSqlVersion"] == "2016-03-23"
    assert payload["RuleDisabled"] is False
    assert payload["Actions"] == [{"Lambda": {"FunctionArn": {"Fn::GetAtt": [cfn.lid(alerting.function), "Arn"]}}}]
    error = payload["ErrorAction"]["Sqs"]
    assert error["QueueUrl"] == {"Ref": cfn.lid(alerting.error_queue)}
    assert error["RoleArn"]["Fn::GetAtt"][0] in stage.template_json["Resources"]


def test_the_local_demo_path_builds_what_the_rule_selects():
    # lambda/vigil_alerts/local.py writes the rule's SELECT for runs without IoT Core.
    import sys

    from infra.alerting import LAMBDA_DIR, RULE_SQL

    if str(LAMBDA_DIR) not in sys.path:
        sys.path.append(str(LAMBDA_DIR))
    from vigil_alerts import local

    assert RULE_SQL == EXPECTED_SQL
    assert f"topic({local.TOPIC_THING_SEGMENT}) AS {local.TOPIC_THING_KEY}" in RULE_SQL
    assert f"timestamp() AS {local.RECEIVED_AT_KEY}" in RULE_SQL
    assert RULE_SQL in (LAMBDA_DIR / "vigil_alerts" / "local.py").read_text()
    event = local.rule_event({"thing_name": "cam-07"}, "vigil/cam-07/alerts")
    assert set(event) == {"thing_name", local.TOPIC_THING_KEY, local.RECEIVED_AT_KEY}


def test_iot_may_invoke_the_function_only_from_this_rule(cfn, stage):
    alerting = stage.stage.stack.alerting
    permissions = cfn.resources(stage.template_json, "AWS::Lambda::Permission")
    function_arn = {"Fn::GetAtt": [cfn.lid(alerting.function), "Arn"]}
    (permission,) = [p["Properties"] for p in permissions.values() if p["Properties"]["FunctionName"] == function_arn]
    assert permission["Principal"] == "iot.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceArn"] == {"Fn::GetAtt": [cfn.lid(alerting.rule), "Arn"]}
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_rule_role_only_sends_to_the_error_queue(cfn, stage):
    alerting = stage.stage.stack.alerting
    payload = cfn.properties(stage.template_json, alerting.rule)["TopicRulePayload"]
    role_lid = payload["ErrorAction"]["Sqs"]["RoleArn"]["Fn::GetAtt"][0]
    role = alerting.node.find_child("RuleRole")
    assert cfn.lid(role) == role_lid
    statements = cfn.policy_statements(stage.template_json, role)
    assert cfn.actions_of(statements) <= {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    assert {s["Resource"] for s in statements} == {f"<{cfn.lid(alerting.error_queue)}.Arn>"}


def test_queues_are_encrypted_and_tls_only(cfn, stage):
    alerting = stage.stage.stack.alerting
    for queue in (alerting.error_queue, alerting.dead_letter_queue):
        assert cfn.properties(stage.template_json, queue)["SqsManagedSseEnabled"] is True
    stage.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": cfn.lid(alerting.error_queue)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )


def test_topic_uses_a_rotating_cmk_and_tls_and_the_stage_subscriptions(cfn, stage):
    alerting = stage.stage.stack.alerting
    topic = cfn.properties(stage.template_json, alerting.topic)
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [cfn.lid(alerting.key), "Arn"]}
    assert cfn.properties(stage.template_json, alerting.key)["EnableKeyRotation"] is True
    stage.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": cfn.lid(alerting.topic)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )
    subscriptions = sorted(
        (s["Properties"]["Protocol"], s["Properties"]["Endpoint"])
        for s in cfn.resources(stage.template_json, "AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": cfn.lid(alerting.topic)}
    )
    expected = [("email", e) for e in stage.config.alert_emails] + [("sms", p) for p in stage.config.alert_sms]
    assert subscriptions == sorted(expected)


def test_function_runtime_layer_and_environment(cfn, stage):
    alerting, config = stage.stage.stack.alerting, stage.config
    function = cfn.properties(stage.template_json, alerting.function)
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "app.handler"
    assert cfn.render(function["Layers"]) == [
        "arn:<AWS::Partition>:lambda:<AWS::Region>:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:"
        f"{config.alerts.powertools_layer_version}"
    ]
    env = cfn.render(function["Environment"]["Variables"])
    assert env == {
        "ALERT_TOPIC_ARN": cfn.ref(alerting.topic),
        "SITE_NAME": config.site_name,
        "TIME_ZONE": config.time_zone,
        "STAGE": config.name,
        "POWERTOOLS_SERVICE_NAME": "vigil-alerts",
        "POWERTOOLS_METRICS_NAMESPACE": "Vigil",
        "IDEMPOTENCY_TABLE": cfn.ref(alerting.table),
        "THROTTLE_MAX_PER_WINDOW": str(config.alerts.throttle_max_per_window),
        "THROTTLE_WINDOW_S": str(config.alerts.throttle_window_s),
        "EVIDENCE_BUCKET": cfn.ref(stage.stage.stack.storage.evidence),
        "STAGE_THING_PREFIX": config.stage_things.prefix,
        "STAGE_THINGS": ",".join(config.stage_things.names),
        # infra/feedback.py: the signed links and the events table (tests/infra/test_feedback.py).
        "EVENTS_TABLE": cfn.ref(stage.stage.stack.feedback.table),
        "FEEDBACK_URL": cfn.att(stage.stage.stack.feedback.url, "FunctionUrl"),
        "FEEDBACK_SECRET_ARN": cfn.ref(stage.stage.stack.feedback.secret),
        "FEEDBACK_LINK_S": str(config.alerts.feedback_link_days * 86400),
        # An end whose verdict came first writes the training rows (vigil_feedback.store.record_end).
        "TRAINING_BUCKET": cfn.ref(stage.stage.stack.training.data_bucket),
    }
    assert function["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [cfn.lid(alerting.dead_letter_queue), "Arn"]}}
    assert function.get("ReservedConcurrentExecutions") == config.alerts.reserved_concurrency
    assert function["TracingConfig"] == {"Mode": "Active"}
    log_group = function["LoggingConfig"]["LogGroup"]["Ref"]
    assert stage.template_json["Resources"][log_group]["Properties"]["RetentionInDays"] == config.log_retention_days


def test_function_role_grants_exactly_what_the_handler_uses(cfn, stage):
    alerting = stage.stage.stack.alerting
    statements = cfn.policy_statements(stage.template_json, alerting.function.role)
    managed = cfn.properties(stage.template_json, alerting.function.role).get("ManagedPolicyArns")
    assert not managed, "no AWS-managed policy"
    (publish,) = cfn.statements_allowing(statements, "sns:Publish")
    assert publish["Resource"] == cfn.ref(alerting.topic)
    (kms,) = cfn.statements_allowing(statements, "kms:GenerateDataKey")
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert kms["Resource"] == f"<{cfn.lid(alerting.key)}.Arn>"
    (table,) = [
        s
        for s in cfn.statements_allowing(statements, "dynamodb:PutItem")
        if cfn.att(alerting.table, "Arn") in cfn.as_list(s["Resource"])
    ]
    assert set(table["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    for action in cfn.actions_of(statements):
        assert not action.endswith("*") or action.startswith("xray:"), action


def test_idempotency_table(cfn, stage):
    table = cfn.properties(stage.template_json, stage.stage.stack.alerting.table)
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    (replica,) = table["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_alarms_go_to_the_operations_topic(cfn, stage):
    stack = stage.stage.stack
    alarms = cfn.resources(stage.template_json, "AWS::CloudWatch::Alarm").values()
    metrics = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) for a in alarms}
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/IoT", "Failure"),
        ("AWS/IoT", "ParseError"),
        ("AWS/States", "ExecutionsFailed"),
    } <= metrics
    # The health alarms that may also notify the alert recipients: tests/infra/test_health.py.
    shared = {cfn.lid(a) for a in stack.health.alarms.values()}
    for logical_id, alarm in cfn.resources(stage.template_json, "AWS::CloudWatch::Alarm").items():
        if logical_id not in shared:
            assert alarm["Properties"]["AlarmActions"] == [{"Ref": cfn.lid(stack.operations.topic)}], logical_id
    ops_topic = cfn.properties(stage.template_json, stack.operations.topic)
    assert ops_topic["KmsMasterKeyId"] == {"Fn::GetAtt": [cfn.lid(stack.operations.key), "Arn"]}


def test_bundle_carries_the_handler_and_a_byte_identical_schema(cfn, stage):
    code = cfn.properties(stage.template_json, stage.stage.stack.alerting.function)["Code"]
    bundle = stage.asset_path("asset." + code["S3Key"].removesuffix(".zip"))
    assert (bundle / "app.py").is_file()
    assert (bundle / ALERT_SCHEMA.name).read_bytes() == ALERT_SCHEMA.read_bytes()
    assert not list(bundle.rglob("__pycache__")) and not list(bundle.rglob("test_*.py"))


def test_bundle_ships_the_lambdas_pure_python_dependencies(cfn, stage):
    # wcwidth (grapheme clusters for the SMS) and anyascii (ASCII subjects) are not in the
    # runtime or the Powertools layer, so the bundle carries them: their Python code only
    # (wcwidth's optional C extension is built for this machine, not for Lambda's arm64).
    import subprocess
    import sys

    code = cfn.properties(stage.template_json, stage.stage.stack.alerting.function)["Code"]
    bundle = stage.asset_path("asset." + code["S3Key"].removesuffix(".zip"))
    for package in ("wcwidth", "anyascii"):
        assert (bundle / package / "__init__.py").is_file(), package
        assert list(bundle.glob(f"{package}-*.dist-info/METADATA")), f"{package}: licence and version travel along"
    assert not [p for p in bundle.rglob("*") if p.suffix in (".so", ".pyd", ".dylib")]
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1]];"
        "import wcwidth, anyascii; from vigil_alerts.sms import without_symbols;"
        "assert wcwidth.__file__.startswith(sys.argv[1]) and not wcwidth.HAS_C_EXTENSION;"
        "print(list(wcwidth.iter_graphemes('\\U0001F1E9\\U0001F1EA!')), anyascii.anyascii('Gro\\u00dfen'))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-B", "-c", probe, str(bundle)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['\U0001f1e9\U0001f1ea', '!'] Grossen"


def test_held_alerts_are_flushed_every_minute_by_their_own_function(cfn, stage):
    # Issue 16, item 9: the count of held alerts goes out when the window closes, not only
    # with the camera's next alert. A scheduled rule invokes app.flush_handler from the
    # same bundle every minute.
    alerting = stage.stage.stack.alerting
    flush = cfn.properties(stage.template_json, alerting.flush_function)
    main = cfn.properties(stage.template_json, alerting.function)
    assert flush["Handler"] == "app.flush_handler"
    assert flush["Code"]["S3Key"] == main["Code"]["S3Key"]
    assert flush["Runtime"] == main["Runtime"] and flush["Architectures"] == main["Architectures"]
    assert "ReservedConcurrentExecutions" not in flush
    env = cfn.render(flush["Environment"]["Variables"])
    # Neither the snapshot bucket nor the feedback links: a held-alert summary has neither.
    feedback = ("EVENTS_TABLE", "FEEDBACK_URL", "FEEDBACK_SECRET_ARN", "FEEDBACK_LINK_S", "TRAINING_BUCKET")
    unused = ("EVIDENCE_BUCKET", *feedback)
    assert env == {k: v for k, v in cfn.render(main["Environment"]["Variables"]).items() if k not in unused}

    rule = cfn.properties(stage.template_json, alerting.flush_schedule)
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [cfn.lid(alerting.flush_function), "Arn"]}
    permissions = [
        p["Properties"]
        for p in cfn.resources(stage.template_json, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [cfn.lid(alerting.flush_function), "Arn"]}
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [cfn.lid(alerting.flush_function), "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [cfn.lid(alerting.flush_schedule), "Arn"]},
        }
    ]


def test_flush_role_reads_and_updates_the_table_and_publishes_nothing_more(cfn, stage):
    # Transactions need no action of their own: each write inside is authorised as its
    # own action (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
    alerting = stage.stage.stack.alerting
    statements = cfn.policy_statements(stage.template_json, alerting.flush_function.role)
    assert not cfn.properties(stage.template_json, alerting.flush_function.role).get("ManagedPolicyArns")
    assert cfn.actions_of(statements) == {
        "sns:Publish",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    (publish,) = cfn.statements_allowing(statements, "sns:Publish")
    assert publish["Resource"] == cfn.ref(alerting.topic)
    (table,) = cfn.statements_allowing(statements, "dynamodb:UpdateItem")
    assert "*" not in str(table["Resource"]).replace("<", "").split("Arn")[-1]
    alarms = cfn.resources(stage.template_json, "AWS::CloudWatch::Alarm").values()
    assert any(
        a["Properties"].get("MetricName") == "Errors"
        and {"Name": "FunctionName", "Value": cfn.ref(alerting.flush_function)}
        in [{"Name": d["Name"], "Value": cfn.render(d["Value"])} for d in a["Properties"].get("Dimensions", [])]
        for a in alarms
    )


def test_no_stage_reserves_concurrency_a_new_account_cannot_spare(raw_stages, cfn, stage):
    """Lambda keeps a minimum of unreserved concurrency per account (100 by
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html; a new
    account's limit of 10 allows no reservation at all), so any reservation in the
    shipped stages would fail a first deploy. Neither function reserves any."""
    for name, raw in raw_stages.items():
        assert raw["alerts"].get("reserved_concurrency") is None, name
    alerting = stage.stage.stack.alerting
    for function in (alerting.function, alerting.flush_function):
        assert "ReservedConcurrentExecutions" not in cfn.properties(stage.template_json, function)


def test_async_invocations_give_up_before_a_notification_is_useless(cfn, stage):
    """IoT invokes the Lambda asynchronously
    (https://docs.aws.amazon.com/iot/latest/developerguide/lambda-rule-action.html), and
    Lambda retries an event for up to 6 hours by default. The event invoke config bounds
    that; its limits are the Lambda service model's (botocore validates them client-side,
    https://docs.aws.amazon.com/lambda/latest/api/API_FunctionEventInvokeConfig.html)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    age_limits = model.shape_for("MaximumEventAgeInSeconds").metadata
    retry_limits = model.shape_for("MaximumRetryAttempts").metadata
    alerting = stage.stage.stack.alerting
    configs = {
        cfn.render(c["Properties"]["FunctionName"]): c["Properties"]
        for c in cfn.resources(stage.template_json, "AWS::Lambda::EventInvokeConfig").values()
    }
    alert = configs[cfn.ref(alerting.function)]
    assert age_limits["min"] <= alert["MaximumEventAgeInSeconds"] <= 900
    assert alert["MaximumEventAgeInSeconds"] == stage.config.alerts.max_event_age_s
    assert alert["MaximumRetryAttempts"] == 2 <= retry_limits["max"]
    flush = configs[cfn.ref(alerting.flush_function)]
    assert flush == {**flush, "MaximumEventAgeInSeconds": age_limits["min"], "MaximumRetryAttempts": 0}
