"""The IoT topic rule that hands a stage's alerts to its alert Lambda: the SQL (only the
stage's things), the rule's error action and role, and IoT's permission to invoke."""

from __future__ import annotations

from typing import NamedTuple

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from edge_component.contracts.topics import ALERT_TOPIC_FILTER, ALERT_TOPIC_THING_SEGMENT
from infra.config import StageThings
from infra.device_policy import iot_service_principal

# timestamp(): when the rules engine received the message (ms since the epoch), the
# reference the Lambda checks the device's clock against (lambda/vigil_alerts/receipt.py).
# lambda/vigil_alerts/local.py builds the same SELECT for runs without IoT Core.
RULE_SQL = (
    f"SELECT *, topic({ALERT_TOPIC_THING_SEGMENT}) AS topic_thing_name, timestamp() AS received_at_ms "
    f"FROM '{ALERT_TOPIC_FILTER}'"
)
RULE_SQL_VERSION = "2016-03-23"
_THING = f"topic({ALERT_TOPIC_THING_SEGMENT})"


def stage_rule_sql(things: StageThings, sql: str = RULE_SQL) -> str:
    """``sql`` (default :data:`RULE_SQL`) with a WHERE that keeps only the stage's things: ``startswith`` on
    the prefix and ``=`` per listed name outside it (IoT SQL functions:
    https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html).
    Thing names are ``[a-zA-Z0-9:_-]``, so they need no quoting.

    Raises ValueError if the stage has no things at all (the rule would select nothing)."""
    terms = [f"startswith({_THING}, '{things.prefix}')"] if things.prefix else []
    terms += [f"{_THING} = '{name}'" for name in things.names]
    if not terms:
        raise ValueError("a stage with neither listed things nor a thing name prefix has no alerts to select")
    return f"{sql} WHERE {' OR '.join(terms)}"


class AlertRule(NamedTuple):
    rule: iot.CfnTopicRule
    role: iam.Role
    permission: lambda_.CfnPermission


def add_alert_rule(
    scope: Construct, *, function: lambda_.IFunction, error_queue: sqs.IQueue, things: StageThings
) -> AlertRule:
    """In ``scope``: the topic rule selecting ``things``' alerts into ``function``, its
    errors into ``error_queue`` (through a role IoT assumes only for this account's
    rules), and the Lambda permission for this rule only."""
    role = iam.Role(scope, "RuleRole", assumed_by=iot_service_principal("rule"))
    error_queue.grant_send_messages(role)
    rule = iot.CfnTopicRule(
        scope,
        "Rule",
        topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
            description="Vigil alerts of the stage's things, with the thing name from the topic",
            sql=stage_rule_sql(things),
            aws_iot_sql_version=RULE_SQL_VERSION,
            rule_disabled=False,
            actions=[
                iot.CfnTopicRule.ActionProperty(
                    lambda_=iot.CfnTopicRule.LambdaActionProperty(function_arn=function.function_arn)
                )
            ],
            error_action=iot.CfnTopicRule.ActionProperty(
                sqs=iot.CfnTopicRule.SqsActionProperty(
                    queue_url=error_queue.queue_url, role_arn=role.role_arn, use_base64=False
                )
            ),
        ),
    )
    permission = lambda_.CfnPermission(
        scope,
        "RuleInvokePermission",
        action="lambda:InvokeFunction",
        function_name=function.function_arn,
        principal="iot.amazonaws.com",
        source_arn=rule.attr_arn,
        source_account=cdk.Aws.ACCOUNT_ID,
    )
    return AlertRule(rule, role, permission)
