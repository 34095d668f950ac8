"""Health: device telemetry -> IoT topic rule -> health Lambda -> CloudWatch metrics ->
alarms on dark cameras and silent devices (issue 14).

The rule's native ``cloudwatchMetric`` action carries no dimensions (namespace, name,
value, unit and timestamp only:
https://docs.aws.amazon.com/iot/latest/developerguide/cloudwatch-metrics-rule-action.html),
so a small Lambda (lambda/vigil_health) puts the metrics with ``Stage``/``Thing``/``Camera``.

Cameras are configured on the devices, not in the stage, so the camera alarms are
Metrics Insights queries grouped by thing and camera: each camera is a contributor of
one alarm, and a camera that appears later joins it
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Create_Metrics_Insights_Alarm.html).
A silent device has no data at all, which only an alarm on its own metric sees: one
per listed thing, missing data breaching; with fleet provisioning also one on the whole
stage's heartbeats (every device of the stage silent, e.g. the site offline).

One silent fleet-provisioned device is seen by the sweep (lambda/vigil_health/sweep.py):
an EventBridge schedule runs it every period; it scans the DeviceStatus table the health
Lambda keeps (the stage's things only) and puts ``SilentDevices`` (things last seen
between ``silent_heartbeats`` periods and :data:`RETIRED_AFTER` ago), which the
``DeviceSilent`` alarm watches, missing data breaching: a sweep that stops running alarms too.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from edge_component.contracts.topics import ALERT_TOPIC_THING_SEGMENT, TELEMETRY_CHANNEL, topic_template
from infra.alert_rule import RULE_SQL_VERSION, stage_rule_sql
from infra.alerting import RUNTIME_PINNED_BY_LAYER
from infra.config import StageThings
from infra.device_policy import iot_service_principal
from infra.health_config import HealthConfig
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore
from infra.operations import alarm_on_any

NAMESPACE = "Vigil/Health"  # lambda/vigil_health/metrics.py's
TELEMETRY_TOPIC_FILTER = topic_template("+", TELEMETRY_CHANNEL)
# A thing not seen for this long is retired (scrapped, renamed), not silent: it stops counting.
RETIRED_AFTER = cdk.Duration.days(30)
# The DeviceSilent alarm's period in sweeps: a sweep run late by seconds must not leave a
# period without a point (missing data breaches), so each period holds two runs.
SWEEPS_PER_ALARM_PERIOD = 2
TELEMETRY_RULE_SQL = f"SELECT *, topic({ALERT_TOPIC_THING_SEGMENT}) AS topic_thing_name FROM '{TELEMETRY_TOPIC_FILTER}'"


def camera_query(function: str, metric: str, stage: str) -> str:
    """A Metrics Insights query: one series per camera of ``stage`` (``GROUP BY Thing, Camera``)."""
    return (
        f'SELECT {function}({metric}) FROM SCHEMA("{NAMESPACE}", Camera, Stage, Thing) '
        f"WHERE Stage = '{stage}' GROUP BY Thing, Camera"
    )


class Health(Construct):
    """The telemetry rule, the health Lambda and the health alarms of one stage.

    ``device_status``: the model loop's DeviceStatus table (infra/model_loop.py), which
    the health Lambda keeps at each thing's latest telemetry.

    Attributes: ``function``, ``sweep_function``, ``sweep_schedule``, ``dead_letter_queue``,
    ``rule``, ``rule_role``, ``permission``, ``alarms`` (by name: ``CameraNotRunning``,
    ``CameraBlank``, ``Silent-<thing>``, ``DeviceSilent``, ``StageSilent``; to
    ``alarm_topic_arns``) and ``operations_alarms`` (``FunctionErrors``, ``DeadLetters``,
    ``RuleActionFailures``; to ``operations_action``).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        stage_things: StageThings,
        health: HealthConfig,
        device_status: dynamodb.ITableV2,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        alarm_topic_arns: Sequence[str],
        operations_action: cloudwatch.IAlarmAction,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        log_group, role = self._metrics_role("Function", "Vigil health", log_retention, removal_policy)
        # Each message also updates its thing's DeviceStatus item (the model loop's canary check
        # reads it); a conditional put, so PutItem, and UpdateItem for last_seen of an older one.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem"], resources=[device_status.table_arn]
            )
        )
        # A message the Lambda refuses (malformed) fails the invocation and lands here, not nowhere.
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            {"AwsSolutions-SQS3": "The health Lambda's dead-letter queue itself: nothing redrives from it."},
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="Vigil device telemetry into CloudWatch metrics",
            runtime=runtime,
            architecture=architecture,
            handler="vigil_health.handler.handler",
            code=code,
            layers=[layer],
            role=role,
            memory_size=128,
            timeout=cdk.Duration.seconds(10),
            retry_attempts=0,  # a heartbeat a minute late is worth nothing; the next one comes
            dead_letter_queue=self.dead_letter_queue,
            log_group=log_group,
            environment={
                "VIGIL_STAGE": stage_name,
                "VIGIL_HEALTH_NAMESPACE": NAMESPACE,
                "VIGIL_DEVICE_STATUS_TABLE": device_status.table_name,
                # The handler refuses other things too, should the rule's WHERE ever miss one.
                "STAGE_THING_PREFIX": stage_things.prefix or "",
                "STAGE_THINGS": ",".join(stage_things.names),
                "POWERTOOLS_SERVICE_NAME": "vigil-health",
                "POWERTOOLS_METRICS_NAMESPACE": "Vigil",  # TelemetryRejected, as the alert Lambda's counters
            },
        )
        cfn_lint_ignore(self.function, ROLE_DEPENDS_ON)
        acknowledge(
            self.function,
            RUNTIME_PINNED_BY_LAYER,
        )
        self._rule(stage_things, log_retention, removal_policy)
        self._sweep(
            stage_name,
            stage_things,
            health,
            device_status,
            code,
            layer,
            runtime,
            architecture,
            log_retention,
            removal_policy,
        )
        self.alarms = self._alarms(stage_name, stage_things, health, list(alarm_topic_arns))
        self.operations_alarms = self._operations_alarms(operations_action)

    def _metrics_role(
        self, name: str, description: str, retention: logs.RetentionDays, removal: cdk.RemovalPolicy
    ) -> tuple[logs.LogGroup, iam.Role]:
        """``<name>Logs`` and ``<name>Role``: a Lambda role that may write that log group and put
        metrics in the Vigil/Health namespace only."""
        log_group = logs.LogGroup(self, f"{name}Logs", retention=retention, removal_policy=removal)
        role = iam.Role(
            self, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
        )
        log_group.grant_write(role)
        # PutMetricData has no resource-level permissions; the namespace condition keeps it to ours
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
            )
        )
        acknowledge(
            role,
            {"AwsSolutions-IAM5[Resource::*]": "PutMetricData has no resource-level permissions; namespace-bound."},
        )
        return log_group, role

    def _sweep(
        self,
        stage: str,
        things: StageThings,
        health: HealthConfig,
        table: dynamodb.ITableV2,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        retention: logs.RetentionDays,
        removal: cdk.RemovalPolicy,
    ) -> None:
        """``sweep_function`` (vigil_health.sweep.handler, may Scan the table and put its
        metric, nothing else) and ``sweep_schedule``, every ``health.period_s``."""
        log_group, role = self._metrics_role("Sweep", "Vigil silent sweep", retention, removal)
        role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[table.table_arn]))
        self.sweep_function = lambda_.Function(
            self,
            "SweepFunction",
            description="Vigil: count the stage's silent devices in DeviceStatus into CloudWatch",
            runtime=runtime,
            architecture=architecture,
            handler="vigil_health.sweep.handler",
            code=code,
            layers=[layer],
            role=role,
            memory_size=128,
            timeout=cdk.Duration.seconds(50),  # done before the next run
            retry_attempts=0,  # a late count is worth nothing; the next run counts again
            max_event_age=cdk.Duration.seconds(health.period_s),
            log_group=log_group,
            environment={
                "VIGIL_STAGE": stage,
                "VIGIL_HEALTH_NAMESPACE": NAMESPACE,
                "VIGIL_DEVICE_STATUS_TABLE": table.table_name,
                "VIGIL_SILENT_AFTER_S": str(health.silent_heartbeats * health.period_s),
                "VIGIL_RETIRED_AFTER_S": str(int(RETIRED_AFTER.to_seconds())),
                "STAGE_THING_PREFIX": things.prefix or "",
                "STAGE_THINGS": ",".join(things.names),
                "POWERTOOLS_SERVICE_NAME": "vigil-health-sweep",
            },
        )
        cfn_lint_ignore(self.sweep_function, ROLE_DEPENDS_ON)
        acknowledge(
            self.sweep_function,
            RUNTIME_PINNED_BY_LAYER,
        )
        self.sweep_schedule = events.Rule(
            self,
            "SweepSchedule",
            description=f"Vigil {stage}: count silent devices",
            schedule=events.Schedule.rate(cdk.Duration.minutes(health.period_s // 60)),
            targets=[targets.LambdaFunction(self.sweep_function, retry_attempts=0)],  # the next run counts again
        )

    def _operations_alarms(self, action: cloudwatch.IAlarmAction) -> dict[str, cloudwatch.Alarm]:
        """The pipeline's own failures, to the operations topic only: a refused (malformed)
        message fails the invocation and waits on the dead-letter queue for someone to look."""
        period = cdk.Duration.minutes(5)
        metrics = {
            "FunctionErrors": self.function.metric_errors(period=period, statistic="Sum"),
            "DeadLetters": self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=period, statistic="Maximum"
            ),
            "RuleActionFailures": cloudwatch.Metric(
                namespace="AWS/IoT",
                metric_name="Failure",
                dimensions_map={"RuleName": self.rule.ref, "ActionType": "Lambda"},
                statistic="Sum",
                period=period,
            ),
        }
        return {
            name: alarm_on_any(self, f"{name}Alarm", metric, description=f"Vigil health: {name}", action=action)
            for name, metric in metrics.items()
        }

    def _rule(self, things: StageThings, retention: logs.RetentionDays, removal: cdk.RemovalPolicy) -> None:
        errors = logs.LogGroup(self, "RuleErrors", retention=retention, removal_policy=removal)
        self.rule_role = iam.Role(self, "RuleRole", assumed_by=iot_service_principal("rule"))
        errors.grant_write(self.rule_role)
        self.rule = iot.CfnTopicRule(
            self,
            "Rule",
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                description="Vigil telemetry of the stage's things, with the thing name from the topic",
                sql=stage_rule_sql(things, TELEMETRY_RULE_SQL),
                aws_iot_sql_version=RULE_SQL_VERSION,
                rule_disabled=False,
                actions=[
                    iot.CfnTopicRule.ActionProperty(
                        lambda_=iot.CfnTopicRule.LambdaActionProperty(function_arn=self.function.function_arn)
                    )
                ],
                error_action=iot.CfnTopicRule.ActionProperty(
                    cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
                        log_group_name=errors.log_group_name, role_arn=self.rule_role.role_arn
                    )
                ),
            ),
        )
        self.permission = lambda_.CfnPermission(
            self,
            "RuleInvokePermission",
            action="lambda:InvokeFunction",
            function_name=self.function.function_arn,
            principal="iot.amazonaws.com",
            source_arn=self.rule.attr_arn,
            source_account=cdk.Aws.ACCOUNT_ID,
        )

    def _alarms(
        self, stage: str, things: StageThings, health: HealthConfig, actions: list[str]
    ) -> dict[str, cdk.aws_cloudwatch.CfnAlarm]:
        cw = cdk.aws_cloudwatch
        period = health.period_s

        def query_alarm(id_: str, query: str, comparison: str, threshold: float, periods: int, text: str):
            return cw.CfnAlarm(
                self,
                id_,
                alarm_description=text,
                comparison_operator=comparison,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                treat_missing_data="notBreaching",  # no data: the camera is gone, which the heartbeat alarms see
                metrics=[cw.CfnAlarm.MetricDataQueryProperty(id="q", expression=query, period=period)],
                alarm_actions=actions,
                ok_actions=actions,
            )

        def silent_alarm(id_: str, dimensions: dict[str, str], text: str):
            return cw.CfnAlarm(
                self,
                id_,
                alarm_description=text,
                namespace=NAMESPACE,
                metric_name="Heartbeat",
                dimensions=[cw.CfnAlarm.DimensionProperty(name=k, value=v) for k, v in dimensions.items()],
                statistic="Sum",
                period=period,
                comparison_operator="LessThanThreshold",
                threshold=1,
                evaluation_periods=health.silent_heartbeats,
                datapoints_to_alarm=health.silent_heartbeats,
                treat_missing_data="breaching",  # silence is exactly the missing data
                alarm_actions=actions,
                ok_actions=actions,
            )

        not_running = health.periods(health.not_running_minutes)
        blank = health.periods(health.blank_minutes)
        alarms = {
            "CameraNotRunning": query_alarm(
                "CameraNotRunning",
                camera_query("MIN", "CameraRunning", stage),
                "LessThanThreshold",
                1,
                not_running,
                f"Vigil {stage}: a camera has not been running for {health.not_running_minutes} min",
            ),
            "CameraBlank": query_alarm(
                "CameraBlank",
                camera_query("MIN", "BlankFrameRatio", stage),
                "GreaterThanOrEqualToThreshold",
                health.blank_ratio,
                blank,
                f"Vigil {stage}: a camera has sent only blank frames for {health.blank_minutes} min "
                "(covered or blinded)",
            ),
        }
        for thing in things.names:
            alarms[f"Silent-{thing}"] = silent_alarm(
                f"Silent{thing}",
                {"Stage": stage, "Thing": thing},
                f"Vigil {stage}: device {thing} sent no telemetry for {health.silent_heartbeats} heartbeats",
            )
        alarms["DeviceSilent"] = cw.CfnAlarm(
            self,
            "DeviceSilent",
            alarm_description=f"Vigil {stage}: a device sent no telemetry for {health.silent_heartbeats} heartbeats "
            "(the sweep's log 'silent devices' names it), or the silent-device sweep did not run",
            namespace=NAMESPACE,
            metric_name="SilentDevices",
            dimensions=[cw.CfnAlarm.DimensionProperty(name="Stage", value=stage)],
            statistic="Maximum",
            period=period * SWEEPS_PER_ALARM_PERIOD,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data="breaching",  # no count: the sweep is not running, so nothing watches
            alarm_actions=actions,
            ok_actions=actions,
        )
        if things.prefix is not None:
            alarms["StageSilent"] = cw.CfnAlarm(
                self,
                "StageSilent",
                alarm_description=f"Vigil {stage}: no device of the stage sent telemetry for "
                f"{health.silent_heartbeats} heartbeats",
                comparison_operator="LessThanThreshold",
                threshold=1,
                evaluation_periods=health.silent_heartbeats,
                datapoints_to_alarm=health.silent_heartbeats,
                treat_missing_data="breaching",
                metrics=[
                    cw.CfnAlarm.MetricDataQueryProperty(
                        id="q",
                        expression=f'SELECT SUM(Heartbeat) FROM SCHEMA("{NAMESPACE}", Stage, Thing) '
                        f"WHERE Stage = '{stage}'",
                        period=period,
                    )
                ],
                alarm_actions=actions,
                ok_actions=actions,
            )
        return alarms
