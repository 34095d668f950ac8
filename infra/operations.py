"""The operations topic: where every alarm of the stage goes."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct


def alarm_on_any(
    scope: Construct,
    id_: str,
    metric: cloudwatch.IMetric,
    *,
    description: str,
    action: cloudwatch.IAlarmAction,
) -> cloudwatch.Alarm:
    """An alarm that fires when ``metric`` is 1 or more in one period (no data is fine), notifying ``action``."""
    alarm = metric.create_alarm(
        scope,
        id_,
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description=description,
    )
    alarm.add_alarm_action(action)
    return alarm


class Operations(Construct):
    """An encrypted SNS topic for alarms, with the operators' e-mail subscriptions.

    Attributes:
        key: the topic's customer-managed KMS key (CloudWatch may use it to publish).
        topic: the alarm topic.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        emails: Sequence[str],
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        self.key = kms.Key(
            self,
            "Key",
            description="Vigil operations topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        # CloudWatch alarms publish to an encrypted topic only if the key lets them.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True, display_name="Vigil operations")
        for email in emails:
            self.topic.add_subscription(subs.EmailSubscription(email))

    def alarm_action(self) -> cloudwatch.IAlarmAction:
        """The action every alarm of the stage uses."""
        return cw_actions.SnsAction(self.topic)
