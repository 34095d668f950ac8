"""Snapshot keys a device reports: only those the Lambda would sign are shown (issue 16, item 10).

The schema lets ``snapshot.s3_key`` be any of ``[a-zA-Z0-9_./-]{1,512}``; a device (or
whoever holds its certificate) could name another thing's snapshot, a path with ``..``
or an empty segment, and the body printed it as if it were this alert's evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config

from vigil_alerts.processing import own_snapshot_key, process_alert

NOW = datetime(2024, 7, 1, 12, 3, 9, tzinfo=UTC)
# ``{thing}`` is the thing of ``start_event``.
HOSTILE = [
    "snapshots/cam-02/x/cam0_1.jpg",  # another thing's prefix
    "snapshots/{thing}/../cam-02/cam0_1.jpg",  # climbs out
    "snapshots/{thing}//cam0_1.jpg",  # empty segment: S3 keeps it, so it is another key
    "/snapshots/{thing}/cam0_1.jpg",  # leading slash
    "snapshots/{thing}/./cam0_1.jpg",
    "snapshots/{thing}/",  # the prefix itself, no object
    "snapshots/{thing}",
    "cam-01/cam0_1.jpg",  # no snapshots/ prefix
]


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_keys_are_not_own(key, thing):
    key = key.format(thing=thing)
    assert own_snapshot_key(key, thing) is False


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_key_is_neither_printed_nor_linked(topic, key, start_event, thing):
    key = key.format(thing=thing)
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    process_alert(
        start_event(snapshot={"file": "cam0_1.jpg", "s3_key": key}),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        evidence_bucket="vigil-evidence",
        s3_client=s3,
        now=NOW,
    )
    [envelope] = topic.received()
    body = envelope["Message"]
    assert key not in body and "s3://" not in body and "Link:" not in body
    [row] = [line for line in body.splitlines() if line.startswith("Snapshot:")]
    assert "outside this thing's snapshot prefix" in row and "not shown" in row
    assert "and its snapshot left it" not in body


def test_own_key_is_shown_and_linked(topic, event_id, start_event, thing):
    own = f"snapshots/{thing}/{event_id}/cam0_1.jpg"
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    process_alert(
        start_event(snapshot={"file": "cam0_1.jpg", "s3_key": own}),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        evidence_bucket="vigil-evidence",
        s3_client=s3,
        now=NOW,
    )
    body = topic.received()[0]["Message"]
    assert f"s3://vigil-evidence/{own}" in body and "Link:" in body and "and its snapshot left it" in body
