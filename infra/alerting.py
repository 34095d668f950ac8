"""Alerting: IoT topic rule -> alert Lambda -> encrypted SNS topic -> e-mail and SMS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.alert_rule import RULE_SQL, add_alert_rule  # noqa: F401 (RULE_SQL re-exported)
from infra.config import AlertsConfig, StageThings
from infra.lambda_bundle import (  # noqa: F401 (re-exported)
    ALERT_CONTRACT,
    ALERT_LAMBDA_PACKAGES,
    ALERT_RULES,
    ALERT_SCHEMA,
    LAMBDA_DIR,
    CopyHandlerBundling,
    local_python_code,
)  # noqa: F401 (re-exported)
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource
from infra.operations import alarm_on_any
from infra.storage import EVIDENCE_SNAPSHOT_PREFIX, expiring_table

POWERTOOLS_LAYER_ACCOUNT = "017000801446"


def powertools_layer_arn(version: int) -> str:
    """AWS's Powertools for Lambda (Python) v3 layer for python3.13 on arm64, in the stack's region."""
    return (
        f"arn:{cdk.Aws.PARTITION}:lambda:{cdk.Aws.REGION}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-python313-arm64:{version}"
    )


# Every Vigil function runs on one tested Python and architecture (the Powertools layer
# above is built for them): raise them together.
PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
# cdk-nag's newest-runtime finding, for every function on PYTHON_RUNTIME and the pinned layer.
RUNTIME_PINNED_BY_LAYER = {
    "AwsSolutions-L1": "python3.13 is the newest runtime AWS publishes the Powertools v3 arm64 layer for "
    "that this stack pins; raise with the layer."
}


class Alerting(Construct):
    """From the alert topic to people's phones.

    Creates: a customer-managed KMS key; the alert SNS topic (encrypted with it, TLS only)
    with the stage's e-mail and SMS subscriptions; the DynamoDB idempotency table; the
    alert Lambda (python3.13, arm64, Powertools layer, log group with retention,
    dead-letter queue, optional reserved concurrency, X-Ray); the flush function and its
    one-minute schedule (held-alert counts when a throttle window closes); the IoT topic rule selecting
    the stage's things' alerts (:mod:`infra.alert_rule`), its Lambda permission scoped to the rule's ARN and its error
    queue; and alarms on Lambda errors, queue depths and rule failures.

    Attributes:
        key, topic, table, function, flush_function, flush_schedule, dead_letter_queue, rule, rule_role,
        error_queue, rule_permission, alarms.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        site_name: str,
        time_zone: str,
        alert_emails: Sequence[str],
        alert_sms: Sequence[str],
        alerts: AlertsConfig,
        stage_things: StageThings,
        evidence_bucket: s3.IBucket,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        alarm_action: cloudwatch.IAlarmAction,
        lambda_dir: Path = LAMBDA_DIR,
    ) -> None:
        super().__init__(scope, id_)
        self.key = kms.Key(
            self, "Key", description="Vigil alert topic", enable_key_rotation=True, removal_policy=removal_policy
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True, display_name=f"Vigil {site_name}")
        for email in alert_emails:
            self.topic.add_subscription(subs.EmailSubscription(email))
        for phone in alert_sms:
            self.topic.add_subscription(subs.SmsSubscription(phone))

        self.table = expiring_table(self, "Idempotency", partition_key="id", removal_policy=removal_policy)

        self.function = self._function(
            stage_name=stage_name,
            site_name=site_name,
            time_zone=time_zone,
            alerts=alerts,
            stage_things=stage_things,
            evidence_bucket=evidence_bucket,
            log_retention=log_retention,
            removal_policy=removal_policy,
            lambda_dir=lambda_dir,
        )
        self.flush_function, self.flush_schedule = self._flush(
            alerts=alerts, log_retention=log_retention, removal_policy=removal_policy, lambda_dir=lambda_dir
        )
        self._rule(stage_things)
        self.alarms = self._alarms(alarm_action)

    def _function(
        self,
        *,
        stage_name: str,
        site_name: str,
        time_zone: str,
        alerts: AlertsConfig,
        stage_things: StageThings,
        evidence_bucket: s3.IBucket,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        lambda_dir: Path,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(self, "FunctionLogs", retention=log_retention, removal_policy=removal_policy)
        # A role of our own, so no AWS-managed policy: logs, the DLQ, the table, the
        # topic and its key, each granted exactly.
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Vigil alert Lambda",
        )
        log_group.grant_write(role)
        self.dead_letter_queue = self._dead_letter_queue("DeadLetterQueue", "the alert Lambda's dead-letter queue")
        self._layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", powertools_layer_arn(alerts.powertools_layer_version)
        )
        self._env = self._environment(stage_name, site_name, time_zone, alerts, stage_things, evidence_bucket)
        # One bundle for both handlers (app.handler, app.flush_handler): bundled once per synth.
        self._code = local_python_code(lambda_dir, packages=ALERT_LAMBDA_PACKAGES)
        self.code, self.layer = self._code, self._layer  # the health Lambda (infra/health.py) runs from them too
        function = lambda_.Function(
            self,
            "Function",
            description="Validates, deduplicates, throttles and sends Vigil alerts",
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            handler="app.handler",
            code=self._code,
            layers=[self._layer],
            role=role,
            memory_size=alerts.memory_mb,
            timeout=cdk.Duration.seconds(alerts.timeout_s),
            reserved_concurrent_executions=alerts.reserved_concurrency,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=2,
            max_event_age=cdk.Duration.seconds(alerts.max_event_age_s),
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=self._env,
        )
        cfn_lint_ignore(function, ROLE_DEPENDS_ON)
        function.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        self.key.grant(function, "kms:GenerateDataKey", "kms:Decrypt")
        self.table.grant(function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
        # To link a snapshot in the notification (a presigned URL needs read).
        snapshots = evidence_bucket.arn_for_objects(f"{EVIDENCE_SNAPSHOT_PREFIX}/*")
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[snapshots]))
        acknowledge(
            role,
            {
                "AwsSolutions-IAM5[Resource::*]": "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level "
                "permissions.",
                wildcard_resource(self, snapshots): "Reads snapshots (per-event keys) only under the snapshots/ "
                "prefix, to link them in notifications.",
            },
        )
        acknowledge(
            function,
            RUNTIME_PINNED_BY_LAYER,
        )
        return function

    def _environment(
        self,
        stage_name: str,
        site_name: str,
        time_zone: str,
        alerts: AlertsConfig,
        things: StageThings,
        evidence_bucket: s3.IBucket,
    ) -> dict[str, str]:
        return {
            # The Lambda refuses any other thing's alert (lambda/vigil_alerts/config.py).
            "STAGE_THING_PREFIX": things.prefix or "",
            "STAGE_THINGS": ",".join(things.names),
            "ALERT_TOPIC_ARN": self.topic.topic_arn,
            "SITE_NAME": site_name,
            "TIME_ZONE": time_zone,
            "STAGE": stage_name,
            "POWERTOOLS_SERVICE_NAME": "vigil-alerts",
            "POWERTOOLS_METRICS_NAMESPACE": "Vigil",
            "IDEMPOTENCY_TABLE": self.table.table_name,
            "THROTTLE_MAX_PER_WINDOW": str(alerts.throttle_max_per_window),
            "THROTTLE_WINDOW_S": str(alerts.throttle_window_s),
            "EVIDENCE_BUCKET": evidence_bucket.bucket_name,
        }

    def _flush(
        self,
        *,
        alerts: AlertsConfig,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        lambda_dir: Path,
    ) -> tuple[lambda_.Function, events.Rule]:
        """``app.flush_handler`` every minute: sends the count of alerts the throttle held
        back once their window closes. Same bundle; a role that reads and updates the
        table and publishes to the topic, nothing else."""
        log_group = logs.LogGroup(self, "FlushLogs", retention=log_retention, removal_policy=removal_policy)
        role = iam.Role(
            self,
            "FlushRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Vigil held-alert flush",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            "FlushFunction",
            description="Sends the count of Vigil alerts held back by the throttle when the window closes",
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            handler="app.flush_handler",
            code=self._code,
            layers=[self._layer],
            role=role,
            memory_size=alerts.memory_mb,
            timeout=cdk.Duration.seconds(55),  # done before the next minute's run
            # No reservation (a new account has none to spare): a run that Lambda could not
            # start within a minute is dropped, not overlapped with the next one.
            retry_attempts=0,
            max_event_age=cdk.Duration.seconds(60),
            log_group=log_group,
            environment={name: value for name, value in self._env.items() if name != "EVIDENCE_BUCKET"},
        )
        cfn_lint_ignore(function, ROLE_DEPENDS_ON)
        function.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        self.key.grant(function, "kms:GenerateDataKey", "kms:Decrypt")
        self.table.grant(function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        acknowledge(
            function,
            RUNTIME_PINNED_BY_LAYER,
        )
        schedule = events.Rule(
            self,
            "FlushSchedule",
            description="Vigil: send held-alert counts whose throttle window closed",
            schedule=events.Schedule.rate(cdk.Duration.minutes(1)),
            targets=[targets.LambdaFunction(function, retry_attempts=0)],  # the next minute retries
        )
        return function, schedule

    def allow_alarms(self) -> None:
        """Let CloudWatch alarms of this account publish to the encrypted alert topic (the health alarms)."""
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            )
        )

    def _dead_letter_queue(self, id_: str, role: str) -> sqs.Queue:
        """A queue for what could not be delivered: SSE-SQS, TLS only, kept 14 days."""
        queue = sqs.Queue(
            self,
            id_,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        acknowledge(queue, {"AwsSolutions-SQS3": f"This queue is itself {role}: nothing redrives from it."})
        return queue

    def _rule(self, things: StageThings) -> None:
        self.error_queue = self._dead_letter_queue("RuleErrors", "the topic rule's error destination")
        made = add_alert_rule(self, function=self.function, error_queue=self.error_queue, things=things)
        self.rule, self.rule_role, self.rule_permission = made

    def _alarms(self, action: cloudwatch.IAlarmAction) -> list[cloudwatch.Alarm]:
        rule_name = self.rule.ref
        period = cdk.Duration.minutes(5)

        def iot_metric(name: str, **dimensions: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/IoT",
                metric_name=name,
                dimensions_map={"RuleName": rule_name, **dimensions},
                statistic="Sum",
                period=period,
            )

        metrics = {
            "FunctionErrors": self.function.metric_errors(period=period, statistic="Sum"),
            "DeadLetters": self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=period, statistic="Maximum"
            ),
            "RuleErrorQueue": self.error_queue.metric_approximate_number_of_messages_visible(
                period=period, statistic="Maximum"
            ),
            "RuleActionFailures": iot_metric("Failure", ActionType="Lambda"),
            "RuleParseErrors": iot_metric("ParseError"),
            "FlushErrors": self.flush_function.metric_errors(period=period, statistic="Sum"),
        }
        return [
            alarm_on_any(self, f"{name}Alarm", metric, description=f"Vigil alerting: {name}", action=action)
            for name, metric in metrics.items()
        ]
