"""infra/health.py: the telemetry topic rule (the stage's things only) -> the health Lambda,
and the health alarms as each stage's config sets them.

AWS facts these assertions pin:
- An alarm on a Metrics Insights query has one query (a single ``Metrics`` entry with
  ``Expression`` and ``Period``); a query with GROUP BY returns one time series per group,
  each a contributor of the one alarm, and series that appear later join it
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Create_Metrics_Insights_Alarm.html).
  Limits: 200 Metrics Insights alarms per account and Region, only the latest 3 hours
  evaluated, at most 100 contributors in ALARM, PARTIAL_DATA beyond 500 series or
  10,000 matched metrics (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-limits.html);
  no high-resolution data, one-minute aggregation
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-limits.html).
- TreatMissingData: ``breaching`` counts a missing point as over the threshold,
  ``notBreaching`` as within it; the default is ``missing``
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html).
  A silent device sends nothing, so its heartbeat alarm must treat missing data as breaching.
- EventBridge schedule expressions: ``rate(value unit)``, unit singular for 1
  (``rate(1 minute)``), plural above (``rate(5 minutes)``); a rate starts when the rule is
  created (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html,
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html).
  The DeviceSilent alarm's period holds two sweep runs, so a run a few seconds late still
  leaves a point in every period and ``breaching`` missing data means the sweep stopped.
- IoT SQL ``topic(2)`` is the second topic level; ``startswith`` a Boolean
  (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html).
"""

from __future__ import annotations

import re

import pytest

from edge_component.contracts.topics import ALERT_CHANNEL, TELEMETRY_CHANNEL, topic_template
from infra.alert_rule import stage_rule_sql
from infra.health import NAMESPACE, TELEMETRY_RULE_SQL

EXPECTED_SQL = "SELECT *, topic(2) AS topic_thing_name FROM 'vigil/+/telemetry'"
_TERM = re.compile(r"startswith\(topic\(2\), '([^']*)'\)|topic\(2\) = '([^']*)'")
_FROM = re.compile(r"FROM '([^']*)'")


def selects(sql: str, topic: str) -> bool:
    """Whether ``SELECT ... FROM '<filter>' WHERE <terms joined by OR>`` selects a message
    on ``topic``: the filter (single-level ``+`` only) and the two WHERE forms the rule uses."""
    select, _, where = sql.partition(" WHERE ")
    (topic_filter,) = _FROM.findall(select)
    levels, filter_levels = topic.split("/"), topic_filter.split("/")
    if len(levels) != len(filter_levels) or any(f not in ("+", t) for f, t in zip(filter_levels, levels, strict=True)):
        return False
    hits = []
    for term in where.split(" OR "):
        match = _TERM.fullmatch(term)
        assert match, f"unexpected WHERE term {term!r}"
        prefix, name = match.groups()
        hits.append(levels[1].startswith(prefix) if prefix is not None else levels[1] == name)
    return any(hits)


def alarms_of(stage) -> dict[str, dict]:
    """The stage's health alarms' CloudFormation properties, by the construct's names."""
    template = stage.template_json
    return {
        name: template["Resources"][_lid(alarm)]["Properties"]
        for name, alarm in stage.stage.stack.health.alarms.items()
    }


def _lid(construct) -> str:
    import aws_cdk as cdk

    return cdk.Stack.of(construct).get_logical_id(construct)


def test_rule_selects_only_the_stages_telemetry_with_the_thing_name(cfn, stage, synthesized):
    health = stage.stage.stack.health
    payload = cfn.properties(stage.template_json, health.rule)["TopicRulePayload"]
    assert TELEMETRY_RULE_SQL == EXPECTED_SQL
    assert payload["Sql"] == stage_rule_sql(stage.stage.stack.devices.stage_things, EXPECTED_SQL)
    assert payload["AwsIotSqlVersion"] == "2016-03-23"
    assert payload["RuleDisabled"] is False
    things = stage.stage.stack.devices.stage_things
    own = f"{things.prefix}cam-01" if things.prefix else things.names[0]
    assert selects(payload["Sql"], topic_template(own, TELEMETRY_CHANNEL))
    assert not selects(payload["Sql"], topic_template(own, ALERT_CHANNEL))  # telemetry only
    for other_name, other in synthesized.items():
        if other_name == stage.config.name:
            continue
        theirs = other.stage.stack.devices.stage_things
        foreign = f"{theirs.prefix}cam-01" if theirs.prefix else theirs.names[0]
        assert not selects(payload["Sql"], topic_template(foreign, TELEMETRY_CHANNEL)), (stage.config.name, foreign)


def test_rule_invokes_the_health_lambda_and_only_this_rule_may(cfn, stage):
    health = stage.stage.stack.health
    payload = cfn.properties(stage.template_json, health.rule)["TopicRulePayload"]
    function_arn = {"Fn::GetAtt": [cfn.lid(health.function), "Arn"]}
    assert payload["Actions"] == [{"Lambda": {"FunctionArn": function_arn}}]
    permissions = cfn.resources(stage.template_json, "AWS::Lambda::Permission")
    (permission,) = [p["Properties"] for p in permissions.values() if p["Properties"]["FunctionName"] == function_arn]
    assert permission["Principal"] == "iot.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceArn"] == {"Fn::GetAtt": [cfn.lid(health.rule), "Arn"]}
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    # The rule's errors go to its own log group, which is all its role may write.
    error = payload["ErrorAction"]["CloudwatchLogs"]
    assert error["RoleArn"] == {"Fn::GetAtt": [cfn.lid(health.rule_role), "Arn"]}
    statements = cfn.policy_statements(stage.template_json, health.rule_role)
    assert cfn.actions_of(statements) <= {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}


def test_function_puts_metrics_only_in_its_namespace_and_fails_onto_a_dead_letter_queue(cfn, stage):
    health = stage.stage.stack.health
    function = cfn.properties(stage.template_json, health.function)
    assert function["Handler"] == "vigil_health.handler.handler"
    env = function["Environment"]["Variables"]
    assert env["VIGIL_STAGE"] == stage.config.name
    assert env["VIGIL_HEALTH_NAMESPACE"] == NAMESPACE == "Vigil/Health"
    # The handler refuses another stage's thing by the same membership as the rule.
    things = stage.stage.stack.devices.stage_things
    assert (env["STAGE_THING_PREFIX"], env["STAGE_THINGS"]) == (things.prefix or "", ",".join(things.names))
    assert function["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": [cfn.lid(health.dead_letter_queue), "Arn"]}
    config = cfn.resources(stage.template_json, "AWS::Lambda::EventInvokeConfig")
    (invoke,) = [
        c["Properties"] for c in config.values() if c["Properties"]["FunctionName"] == {"Ref": cfn.lid(health.function)}
    ]
    assert invoke["MaximumRetryAttempts"] == 0
    role = health.function.role
    (put,) = cfn.statements_allowing(cfn.policy_statements(stage.template_json, role), "cloudwatch:PutMetricData")
    # PutMetricData has no resource-level permissions; cloudwatch:namespace binds it
    # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
    assert put["Resource"] == "*"
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}


def test_function_keeps_the_device_status_table_and_may_only_write_that_table(cfn, stage):
    """The canary check reads DeviceStatus (infra/model_loop.py); the health Lambda is its
    only writer: a conditional PutItem and an UpdateItem of ``last_seen``, on that table only
    (DynamoDB actions and table ARNs:
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html)."""
    stack = stage.stage.stack
    health, table = stack.health, stack.model_loop.device_status
    env = cfn.properties(stage.template_json, health.function)["Environment"]["Variables"]
    assert cfn.render(env["VIGIL_DEVICE_STATUS_TABLE"]) == cfn.ref(table)
    statements = cfn.policy_statements(stage.template_json, health.function.role)
    dynamo = [s for s in statements if any(a.startswith("dynamodb:") for a in cfn.as_list(s["Action"]))]
    assert len(dynamo) == 1
    assert set(cfn.as_list(dynamo[0]["Action"])) == {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert cfn.as_list(dynamo[0]["Resource"]) == [cfn.att(table, "Arn")]


def test_function_runs_from_the_alert_bundle_which_carries_the_handler(cfn, stage):
    stack = stage.stage.stack
    code = cfn.properties(stage.template_json, stack.health.function)["Code"]
    assert code == cfn.properties(stage.template_json, stack.alerting.function)["Code"]  # bundled once
    bundle = stage.asset_path("asset." + code["S3Key"].removesuffix(".zip"))
    assert {p.name for p in (bundle / "vigil_health").glob("*.py")} == {
        "__init__.py",
        "handler.py",
        "metrics.py",
        "status.py",
        "sweep.py",
    }
    layers = cfn.properties(stage.template_json, stack.health.function)["Layers"]
    assert layers == cfn.properties(stage.template_json, stack.alerting.function)["Layers"]  # Powertools


def camera_query(function: str, metric: str, stage: str) -> str:
    return (
        f'SELECT {function}({metric}) FROM SCHEMA("Vigil/Health", Camera, Stage, Thing) '
        f"WHERE Stage = '{stage}' GROUP BY Thing, Camera"
    )


@pytest.mark.parametrize(
    "name, function, metric, comparison, threshold, minutes",
    [
        ("CameraNotRunning", "MIN", "CameraRunning", "LessThanThreshold", lambda h: 1, "not_running_minutes"),
        (
            "CameraBlank",
            "MIN",
            "BlankFrameRatio",
            "GreaterThanOrEqualToThreshold",
            lambda h: h.blank_ratio,
            "blank_minutes",
        ),
    ],
)
def test_camera_alarms_are_one_grouped_metrics_insights_query_with_the_stage_thresholds(
    stage, name, function, metric, comparison, threshold, minutes
):
    health = stage.config.health
    alarm = alarms_of(stage)[name]
    # One query, grouped by thing and camera: every camera of the stage a contributor.
    assert alarm["Metrics"] == [
        {"Id": "q", "Expression": camera_query(function, metric, stage.config.name), "Period": health.period_s}
    ]
    assert health.period_s % 60 == 0  # Metrics Insights aggregates at one minute
    assert "MetricName" not in alarm and "Namespace" not in alarm
    assert alarm["ComparisonOperator"] == comparison
    assert alarm["Threshold"] == threshold(health)
    periods = -(-getattr(health, minutes) * 60 // health.period_s)
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == periods
    # A camera whose device went silent has no points: the silent alarm reports that, not this one.
    assert alarm["TreatMissingData"] == "notBreaching"


def test_a_silent_stage_breaches_on_missing_heartbeats(stage):
    health = stage.config.health
    alarms = alarms_of(stage)
    assert stage.stage.stack.devices.stage_things.prefix is not None
    alarm = alarms["StageSilent"]
    assert alarm["Metrics"] == [
        {
            "Id": "q",
            "Expression": 'SELECT SUM(Heartbeat) FROM SCHEMA("Vigil/Health", Stage, Thing) '
            f"WHERE Stage = '{stage.config.name}'",
            "Period": health.period_s,
        }
    ]
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == health.silent_heartbeats == 3
    assert alarm["TreatMissingData"] == "breaching"  # silence is exactly the missing data


def test_each_listed_thing_has_a_silent_alarm_on_its_own_heartbeat(stage):
    """Listed things (outside the fleet-provisioning prefix) get their own alarm; in
    cdk.json today both stages provision by prefix, so this checks the names it has."""
    health = stage.config.health
    alarms = alarms_of(stage)
    names = stage.stage.stack.devices.stage_things.names
    assert {n for n in alarms if n.startswith("Silent-")} == {f"Silent-{t}" for t in names}
    for thing in names:
        alarm = alarms[f"Silent-{thing}"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (NAMESPACE, "Heartbeat", "Sum")
        assert alarm["Dimensions"] == [{"Name": "Stage", "Value": stage.config.name}, {"Name": "Thing", "Value": thing}]
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == health.silent_heartbeats
        assert alarm["TreatMissingData"] == "breaching"


def test_silent_alarm_for_a_listed_thing_outside_the_prefix():
    """The per-thing branch, built on its own (no stage in cdk.json lists such a thing)."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Match, Template

    from infra.config import StageThings
    from infra.health import Health
    from infra.health_config import HealthConfig

    stack = cdk.Stack(cdk.App())
    Health(
        stack,
        "Health",
        stage_name="lab",
        stage_things=StageThings(prefix=None, names=("bench-1",)),
        health=HealthConfig(silent_heartbeats=4, period_s=120),
        device_status=cdk.aws_dynamodb.TableV2(
            stack, "DeviceStatus", partition_key={"name": "thing_name", "type": cdk.aws_dynamodb.AttributeType.STRING}
        ),
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
        layer=lambda_.LayerVersion.from_layer_version_arn(
            stack, "L", "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:1"
        ),
        runtime=lambda_.Runtime.PYTHON_3_13,
        architecture=lambda_.Architecture.ARM_64,
        alarm_topic_arns=["arn:aws:sns:eu-west-1:111111111111:ops"],
        operations_action=cdk.aws_cloudwatch_actions.SnsAction(
            cdk.aws_sns.Topic.from_topic_arn(stack, "Ops", "arn:aws:sns:eu-west-1:111111111111:ops")
        ),
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": NAMESPACE,
            "MetricName": "Heartbeat",
            "Dimensions": [{"Name": "Stage", "Value": "lab"}, {"Name": "Thing", "Value": "bench-1"}],
            "Period": 120,
            "EvaluationPeriods": 4,
            "TreatMissingData": "breaching",
            "AlarmActions": ["arn:aws:sns:eu-west-1:111111111111:ops"],
        },
    )
    # No prefix: no stage-wide query alarm (the listed things have their own).
    template.resource_properties_count_is("AWS::CloudWatch::Alarm", {"Metrics": Match.any_value()}, 2)


def test_alarms_notify_operations_and_with_the_stage_setting_the_alert_recipients(cfn, stage):
    stack = stage.stage.stack
    expected = [{"Ref": cfn.lid(stack.operations.topic)}]
    if stage.config.health.notify_alert_recipients:
        expected.append({"Ref": cfn.lid(stack.alerting.topic)})
        # The alert topic is KMS-encrypted: CloudWatch needs the key to publish to it.
        key = cfn.properties(stage.template_json, stack.alerting.key)["KeyPolicy"]["Statement"]
        (grant,) = [s for s in key if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
        assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
        assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    for name, alarm in alarms_of(stage).items():
        assert alarm["AlarmActions"] == expected, name
        assert alarm["OKActions"] == expected, name


def test_stage_configs_differ_as_cdk_json_says(raw_stages, synthesized):
    """The thresholds come from each stage's ``health`` in cdk.json (prod: 10 min blank, alert recipients)."""
    for name, stage in synthesized.items():
        raw = raw_stages[name]["health"]
        assert stage.config.health.model_dump() == raw
        assert alarms_of(stage)["CameraBlank"]["EvaluationPeriods"] == raw["blank_minutes"] * 60 // raw["period_s"]
    assert synthesized["prod"].config.health.blank_minutes != synthesized["dev"].config.health.blank_minutes


def test_the_pipelines_own_failures_alarm_operations_only(cfn, stage):
    """A refused message fails the invocation onto the dead-letter queue: these make it seen."""
    stack = stage.stage.stack
    health = stack.health
    template = stage.template_json
    ops = [{"Ref": cfn.lid(stack.operations.topic)}]
    found = {}
    for name, alarm in health.operations_alarms.items():
        props = template["Resources"][cfn.lid(alarm)]["Properties"]
        assert props["AlarmActions"] == ops, name
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and props["Threshold"] == 1
        found[name] = (props["Namespace"], props["MetricName"], cfn.render(props["Dimensions"]))
    assert found == {
        "FunctionErrors": ("AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": cfn.ref(health.function)}]),
        "DeadLetters": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [{"Name": "QueueName", "Value": cfn.att(health.dead_letter_queue, "QueueName")}],
        ),
        "RuleActionFailures": (
            "AWS/IoT",
            "Failure",
            [{"Name": "ActionType", "Value": "Lambda"}, {"Name": "RuleName", "Value": cfn.ref(health.rule)}],
        ),
    }


def test_metrics_insights_alarms_stay_within_the_regional_quota(synthesized):
    queries = sum(1 for s in synthesized.values() for a in alarms_of(s).values() if "Metrics" in a)
    assert queries <= 200


_QUERY = re.compile(
    r'SELECT (MIN|MAX|SUM|AVG)\((\w+)\) FROM SCHEMA\("([^"]+)", ([\w, ]+)\) '
    r"WHERE Stage = '([^']+)'(?: GROUP BY ([\w, ]+))?"
)
_COMPARE = {
    "LessThanThreshold": lambda v, t: v < t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
}


def evaluate(alarm: dict, data: list[dict]) -> dict[tuple, bool]:
    """One period of a Metrics Insights alarm over the Lambda's ``MetricData``, as the
    query reads it: SCHEMA matches metrics with exactly its dimensions
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-querylanguage.html);
    returns breaching per GROUP BY group."""
    (query,) = alarm["Metrics"]
    function, metric, namespace, schema, stage, group_by = _QUERY.fullmatch(query["Expression"]).groups()
    assert namespace == NAMESPACE
    keys = [k.strip() for k in (group_by or "").split(",") if k.strip()]
    groups: dict[tuple, list[float]] = {}
    for datum in data:
        dims = {d["Name"]: d["Value"] for d in datum["Dimensions"]}
        if datum["MetricName"] != metric or set(dims) != {k.strip() for k in schema.split(",")}:
            continue
        if dims["Stage"] == stage:
            groups.setdefault(tuple(dims[k] for k in keys), []).append(datum["Value"])
    aggregate = {"MIN": min, "MAX": max, "SUM": sum, "AVG": lambda v: sum(v) / len(v)}[function]
    compare = _COMPARE[alarm["ComparisonOperator"]]
    return {group: compare(aggregate(values), alarm["Threshold"]) for group, values in groups.items()}


def test_the_lambdas_metrics_breach_the_alarms_in_the_templates_terms(stage):
    """Covered camera and stopped camera -> their alarm's query breaches for that camera
    only; a healthy device breaches nothing (the query and the metric names and
    dimensions the Lambda puts must agree, or no alarm would ever see a point)."""
    import sys

    from infra.alerting import LAMBDA_DIR

    if str(LAMBDA_DIR) not in sys.path:
        sys.path.append(str(LAMBDA_DIR))
    from vigil_health.metrics import metric_data

    name = stage.config.name
    thing = f"{stage.stage.stack.devices.stage_things.prefix}cam-01"

    def camera(state: str, analysed: int, blank: int) -> dict:
        return {"state": state, "recent": {"analysed": analysed, "blank_frames": blank}}

    message = {
        "topic_thing_name": thing,
        "cameras": {
            "front": camera("running", 300, 0),
            "lens": camera("running", 300, 300),
            "back": camera("reconnecting", 0, 0),
        },
    }
    data = metric_data(message, name)
    alarms = alarms_of(stage)
    assert evaluate(alarms["CameraBlank"], data) == {(thing, "front"): False, (thing, "lens"): True}
    assert evaluate(alarms["CameraNotRunning"], data) == {
        (thing, "front"): False,
        (thing, "lens"): False,
        (thing, "back"): True,
    }
    assert evaluate(alarms["StageSilent"], data) == {(): False}  # a heartbeat came: the stage is not silent
    other = metric_data(message, "another-stage")  # another stage's metrics are not this stage's alarms'
    assert evaluate(alarms["CameraBlank"], other) == {} and evaluate(alarms["StageSilent"], other) == {}


def _rate(period_s: int) -> str:
    minutes = period_s // 60
    return "rate(1 minute)" if minutes == 1 else f"rate({minutes} minutes)"


def test_the_sweep_runs_every_period_on_a_schedule_that_may_invoke_it_only(cfn, stage):
    health = stage.stage.stack.health
    template = stage.template_json
    rule = cfn.properties(template, health.sweep_schedule)
    assert rule["ScheduleExpression"] == _rate(stage.config.health.period_s) == "rate(1 minute)"
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [cfn.lid(health.sweep_function), "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0  # the next run counts again
    function_arn = {"Fn::GetAtt": [cfn.lid(health.sweep_function), "Arn"]}
    permissions = cfn.resources(template, "AWS::Lambda::Permission")
    (permission,) = [p["Properties"] for p in permissions.values() if p["Properties"]["FunctionName"] == function_arn]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [cfn.lid(health.sweep_schedule), "Arn"]}


def test_the_sweep_counts_this_stages_things_and_may_only_scan_the_table_and_put_its_metric(cfn, stage):
    stack = stage.stage.stack
    health, table, things = stack.health, stack.model_loop.device_status, stack.devices.stage_things
    function = cfn.properties(stage.template_json, health.sweep_function)
    assert function["Handler"] == "vigil_health.sweep.handler"
    env = function["Environment"]["Variables"]
    assert cfn.render(env["VIGIL_DEVICE_STATUS_TABLE"]) == cfn.ref(table)
    assert env["VIGIL_STAGE"] == stage.config.name
    assert env["VIGIL_HEALTH_NAMESPACE"] == NAMESPACE
    # The same membership as the telemetry rule and the alert Lambda: prefix plus listed names.
    assert (env["STAGE_THING_PREFIX"], env["STAGE_THINGS"]) == (things.prefix or "", ",".join(things.names))
    health_config = stage.config.health
    assert int(env["VIGIL_SILENT_AFTER_S"]) == health_config.silent_heartbeats * health_config.period_s == 180
    assert int(env["VIGIL_RETIRED_AFTER_S"]) == 30 * 24 * 3600
    statements = cfn.policy_statements(stage.template_json, health.sweep_function.role)
    (scan,) = cfn.statements_allowing(statements, "dynamodb:Scan")
    assert cfn.as_list(scan["Action"]) == ["dynamodb:Scan"]
    assert cfn.as_list(scan["Resource"]) == [cfn.att(table, "Arn")]
    assert {a for a in cfn.actions_of(statements) if a.startswith("dynamodb:")} == {"dynamodb:Scan"}
    (put,) = cfn.statements_allowing(statements, "cloudwatch:PutMetricData")
    assert put["Resource"] == "*"
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
    assert cfn.actions_of(statements) <= {
        "dynamodb:Scan",
        "cloudwatch:PutMetricData",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_one_silent_device_alarms_and_so_does_a_sweep_that_stopped(cfn, stage):
    """SilentDevices >= 1 in one period alarms; missing data (no sweep ran) is breaching
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html)."""
    stack = stage.stage.stack
    alarm = alarms_of(stage)["DeviceSilent"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (NAMESPACE, "SilentDevices", "Maximum")
    assert alarm["Dimensions"] == [{"Name": "Stage", "Value": stage.config.name}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 1
    assert alarm["Period"] == 2 * stage.config.health.period_s  # two sweep runs per period
    assert alarm["TreatMissingData"] == "breaching"
    expected = [{"Ref": cfn.lid(stack.operations.topic)}]
    if stage.config.health.notify_alert_recipients:
        expected.append({"Ref": cfn.lid(stack.alerting.topic)})
    assert alarm["AlarmActions"] == alarm["OKActions"] == expected


def test_the_sweeps_metric_is_what_the_alarm_reads(cfn, stage, monkeypatch):
    """The sweep, run in moto with the template's environment, puts the metric (namespace,
    name, dimensions) the alarm reads; were they to differ, the alarm would only ever see
    missing data."""
    import sys

    import boto3
    from moto import mock_aws

    from infra.alerting import LAMBDA_DIR

    if str(LAMBDA_DIR) not in sys.path:
        sys.path.append(str(LAMBDA_DIR))
    from vigil_health import sweep

    from vigil_alerts.local import LocalContext

    alarm = alarms_of(stage)["DeviceSilent"]
    env = cfn.properties(stage.template_json, stage.stage.stack.health.sweep_function)["Environment"]["Variables"]
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VIGIL_DEVICE_STATUS_TABLE", "device-status")  # a token in the template
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="device-status",
            KeySchema=[{"AttributeName": "thing_name", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "thing_name", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sweep.handler({}, LocalContext())
        [metric] = boto3.client("cloudwatch").list_metrics(Namespace=alarm["Namespace"])["Metrics"]
    assert metric["MetricName"] == alarm["MetricName"]
    assert metric["Dimensions"] == alarm["Dimensions"]
