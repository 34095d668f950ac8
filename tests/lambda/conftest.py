"""Fixtures for the alert Lambda's tests: a valid event (``start_event``, ``thing``,
``event_id``, ``region``), moto SNS (with an SQS queue subscribed, to read what
subscribers get), moto DynamoDB and the handler module with its environment.

``lambda`` is a Python keyword, so its folder cannot be a package: it goes on
``sys.path`` instead, appended rather than prepended so ``import app`` elsewhere in the
same pytest run still finds the CDK app. ``lambda/app.py`` is loaded by path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.append(str(LAMBDA_DIR))

from vigil_alerts.local import LocalContext, load_handler_module, sample_event  # noqa: E402

REGION = "us-east-1"
THING = "cam-01"
EVENT_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def region() -> str:
    """The region of every moto client: ``us-east-1``."""
    return REGION


@pytest.fixture
def thing() -> str:
    """The thing ``start_event`` alerts from: ``cam-01``."""
    return THING


@pytest.fixture
def event_id() -> str:
    """The fixed ``event_id`` of ``start_event``: 32 hex digits."""
    return EVENT_ID


@pytest.fixture
def start_event() -> Callable[..., dict[str, Any]]:
    """``start_event(**overrides)``: a valid start alert as the topic rule delivers it,
    of ``thing`` with the fixed ``event_id``; ``overrides`` replace fields."""

    def build(**overrides: Any) -> dict[str, Any]:
        return sample_event(**{"event_id": EVENT_ID, "thing_name": THING, "topic_thing_name": THING, **overrides})

    return build


class Topic:
    """An SNS topic with an SQS queue subscribed: :meth:`received` returns what a
    subscriber got (SNS envelopes), :meth:`published` the raw publishes moto recorded."""

    def __init__(self) -> None:
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.arn = self.sns.create_topic(Name="vigil-alerts")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(TopicArn=self.arn, Protocol="sqs", Endpoint=queue_arn)

    def received(self) -> list[dict[str, Any]]:
        out = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def published(self) -> list[tuple]:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sns.models import sns_backends

        return list(sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[self.arn].sent_notifications)


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
    """The moto topic ``vigil-alerts`` with a subscribed queue (see :class:`Topic`)."""
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
