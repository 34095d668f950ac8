"""Fixtures for the alert Lambda's tests: moto SNS (with an SQS queue subscribed, to
read what subscribers get), moto DynamoDB and the handler module with its environment.
Helpers are in ``alert_testlib.py``."""

from __future__ import annotations

import boto3
import pytest
from alert_testlib import REGION, Topic
from moto import mock_aws

from vigil_alerts.local import LocalContext, load_handler_module


@pytest.fixture
def aws(monkeypatch):
    """moto for every AWS call in the test, with fake credentials and a region."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def topic(aws) -> Topic:
    return Topic()


@pytest.fixture
def table(aws) -> str:
    """The idempotency/throttle table as the infrastructure defines it."""
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName="vigil-idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName="vigil-idempotency", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return "vigil-idempotency"


@pytest.fixture
def app(topic, monkeypatch):
    """lambda/app.py with its environment set for the moto topic; clients reset."""
    monkeypatch.setenv("ALERT_TOPIC_ARN", topic.arn)
    monkeypatch.setenv("SITE_NAME", "Lakeside")
    monkeypatch.setenv("TIME_ZONE", "Europe/Berlin")
    monkeypatch.setenv("STAGE", "dev")
    for name in (
        "IDEMPOTENCY_TABLE",
        "THROTTLE_MAX_PER_WINDOW",
        "THROTTLE_WINDOW_S",
        "EVIDENCE_BUCKET",
        "STAGE_THING_PREFIX",
        "STAGE_THINGS",
    ):
        monkeypatch.delenv(name, raising=False)
    module = load_handler_module()
    module.use_clients()
    module.metrics.clear_metrics()
    yield module
    module.use_clients()
    module.metrics.clear_metrics()


@pytest.fixture
def context() -> LocalContext:
    return LocalContext()
