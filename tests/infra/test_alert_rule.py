"""infra/alert_rule.py: each stage's topic rule selects only its own things, and its alert
Lambda refuses another stage's thing: two stages in one account never see each other's alerts."""

from __future__ import annotations

import re
import sys

import boto3
import pytest
from moto import mock_aws

from edge_component.contracts.topics import ALERT_CHANNEL, topic_template
from infra.alert_rule import RULE_SQL, stage_rule_sql
from infra.alerting import LAMBDA_DIR
from infra.config import StageThings

if str(LAMBDA_DIR) not in sys.path:
    sys.path.append(str(LAMBDA_DIR))
from vigil_alerts.config import Settings  # noqa: E402
from vigil_alerts.local import rule_event, sample_event  # noqa: E402
from vigil_alerts.processing import process_alert  # noqa: E402

# The WHERE forms the rule uses, as the IoT SQL reference defines them: topic(2) is the
# second topic level, startswith(String, String) a Boolean
# (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html).
_TERM = re.compile(r"startswith\(topic\(2\), '([^']*)'\)|topic\(2\) = '([^']*)'")


def rule_selects(sql: str, topic: str) -> bool:
    """Whether a rule ``RULE_SQL WHERE <terms joined by OR>`` selects a message on ``topic``
    (evaluated for the two term forms above; anything else fails the test)."""
    select, _, where = sql.partition(" WHERE ")
    assert select == RULE_SQL and where, sql
    level = topic.split("/")[1]
    results = []
    for term in where.split(" OR "):
        match = _TERM.fullmatch(term)
        assert match, f"unexpected WHERE term {term!r}"
        prefix, name = match.groups()
        results.append(level.startswith(prefix) if prefix is not None else level == name)
    return topic.split("/")[0] == "vigil" and topic.split("/")[2] == "alerts" and any(results)


def _sql(cfn, stage) -> str:
    return cfn.properties(stage.template_json, stage.stage.stack.alerting.rule)["TopicRulePayload"]["Sql"]


def test_two_stages_in_one_account_select_only_their_own_things(cfn, synthesized):
    dev, prod = synthesized["dev"], synthesized["prod"]
    # cdk.json's stages share a region (and, without an account, the CLI's default one).
    assert (dev.config.account, dev.config.region) == (prod.config.account, prod.config.region)
    dev_things = ["vigil-dev-cam-01", "vigil-dev-shop-7"]
    prod_things = ["vigil-prod-cam-01", "vigil-prod-x"]
    for thing in dev_things:
        alert_topic = topic_template(thing, ALERT_CHANNEL)
        assert rule_selects(_sql(cfn, dev), alert_topic) and not rule_selects(_sql(cfn, prod), alert_topic)
    for thing in prod_things:
        alert_topic = topic_template(thing, ALERT_CHANNEL)
        assert rule_selects(_sql(cfn, prod), alert_topic) and not rule_selects(_sql(cfn, dev), alert_topic)


def test_the_lambda_refuses_another_stages_thing_with_its_deployed_environment(cfn, synthesized, monkeypatch):
    """Prod's function, configured as its template configures it, gets a dev camera's
    alert (as if the rule had let it through): refused, nothing published."""
    prod = synthesized["prod"]
    env = cfn.render(cfn.properties(prod.template_json, prod.stage.stack.alerting.function)["Environment"]["Variables"])
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sns = boto3.client("sns")
        sqs = boto3.client("sqs")
        topic_arn = sns.create_topic(Name="prod-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="phones")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        settings = Settings.from_env({**env, "ALERT_TOPIC_ARN": topic_arn})

        def deliver(thing: str) -> dict:
            event = rule_event(sample_event(thing_name=thing), topic_template(thing, ALERT_CHANNEL))
            return process_alert(event, sns_client=sns, topic_arn=topic_arn, owns_thing=settings.owns_thing)

        assert deliver("vigil-dev-cam-01") == {"status": "refused", "thing_name": "vigil-dev-cam-01"}
        assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", []) == []
        assert deliver("vigil-prod-cam-01")["status"] == "notified"
        assert len(sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["Messages"]) == 1


def test_listed_things_outside_the_prefix_are_named_one_by_one():
    sql = stage_rule_sql(StageThings.of(("vigil-dev-cam-01", "porch"), "vigil-dev-"))
    assert sql.endswith("WHERE startswith(topic(2), 'vigil-dev-') OR topic(2) = 'porch'")
    assert rule_selects(sql, "vigil/porch/alerts") and not rule_selects(sql, "vigil/porch2/alerts")
    assert stage_rule_sql(StageThings.of(("a", "b"), None)).endswith("WHERE topic(2) = 'a' OR topic(2) = 'b'")
    with pytest.raises(ValueError, match="no alerts to select"):
        stage_rule_sql(StageThings.of((), None))
