"""Helpers for the alert Lambda's tests: a valid event, a moto topic that can be read
back. (Not in conftest.py: ``from conftest import`` is ambiguous once several test
folders with their own conftest.py run in one pytest session.)

``lambda`` is a Python keyword, so its folder cannot be a package: it goes on
``sys.path`` instead, appended rather than prepended so ``import app`` elsewhere in the
same pytest run still finds the CDK app. ``lambda/app.py`` is loaded by path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[2]
LAMBDA_DIR = REPO / "lambda"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.append(str(LAMBDA_DIR))

from vigil_alerts.local import sample_event  # noqa: E402

REGION = "us-east-1"
THING = "cam-01"
EVENT_ID = "0123456789abcdef0123456789abcdef"


def start_event(**overrides: Any) -> dict[str, Any]:
    """A valid start alert as the topic rule delivers it, with the fixed ``EVENT_ID``."""
    return sample_event(**{"event_id": EVENT_ID, "thing_name": THING, "topic_thing_name": THING, **overrides})


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
