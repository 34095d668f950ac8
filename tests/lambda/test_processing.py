"""process_alert against moto SNS, read back through a subscribed SQS queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from vigil_alerts.processing import own_snapshot_key, process_alert
from vigil_alerts.validation import InvalidAlertError

NOW = datetime(2024, 7, 1, 12, 3, 9, tzinfo=UTC)


def run(topic, event, **kwargs):
    options = {"site_name": "Lakeside", "time_zone": "Europe/Berlin", "stage": "dev", "now": NOW}
    options.update(kwargs)
    return process_alert(event, sns_client=topic.sns, topic_arn=topic.arn, **options)


def test_start_alert_publishes_one_readable_notification(topic, event_id, start_event, thing):
    result = run(topic, start_event(snapshot={"file": "cam0-120307.jpg"}))

    assert result["status"] == "notified"
    assert result["event_id"] == event_id
    [envelope] = topic.received()
    assert envelope["MessageId"] == result["message_id"]
    assert envelope["Subject"] == "[Vigil] Intrusion: cam0/room at Lakeside (dev)"
    body = envelope["Message"]
    # 12:03:07 UTC is 14:03:07 summer time in Berlin.
    assert "2024-07-01 14:03:07 CEST (Europe/Berlin)" in body
    assert "2024-07-01 12:03:07 UTC" in body
    assert "0.93 (threshold 0.80)" in body
    assert event_id in body and thing in body and "cam0-120307.jpg" in body
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    assert attributes == {
        "severity": "high",
        "thing_name": thing,
        "camera": "cam0",
        "zone": "room",
        "AWS.SNS.SMS.SMSType": "Transactional",
    }
    assert all(value["Type"] == "String" for value in envelope["MessageAttributes"].values())


def test_sms_subscribers_get_the_short_text(topic, start_event):
    run(topic, start_event())
    [(_, message, subject, _, _)] = topic.published()
    structured = json.loads(message)
    assert set(structured) == {"default", "email", "sms"}
    assert structured["sms"].startswith("Vigil Lakeside (dev): intrusion cam0/room 14:03 CEST")
    assert len(structured["sms"]) <= 160
    assert subject == "[Vigil] Intrusion: cam0/room at Lakeside (dev)"


@pytest.mark.parametrize("event_type, sequence", [("update", 1), ("end", 2)])
def test_update_and_end_are_acknowledged_without_notifying(topic, event_type, sequence, start_event):
    extra = {"ended_at": "2024-07-01T12:04:00Z"} if event_type == "end" else {}
    result = run(topic, start_event(event_type=event_type, sequence=sequence, **extra))
    assert result["status"] == "acknowledged"
    assert topic.received() == []


def test_thing_mismatch_is_rejected_and_nothing_published(topic, start_event):
    with pytest.raises(InvalidAlertError) as caught:
        run(topic, start_event(topic_thing_name="cam-02"))
    assert caught.value.code == "thing_mismatch"
    assert "cam-02" in caught.value.reason
    assert topic.published() == []


def test_caller_event_is_not_changed(topic, start_event, thing):
    event = start_event()
    run(topic, event)
    assert event["topic_thing_name"] == thing


def test_sns_failure_propagates(topic, start_event):
    missing = topic.arn.replace("vigil-alerts", "missing")
    with pytest.raises(ClientError) as caught:
        process_alert(start_event(), sns_client=topic.sns, topic_arn=missing)
    assert caught.value.response["Error"]["Code"] == "NotFound"


def test_uploaded_snapshot_gets_a_presigned_link_under_the_things_prefix(topic, event_id, start_event, thing):
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    own = {"file": "cam0_1.jpg", "s3_key": f"snapshots/{thing}/{event_id}/cam0_1.jpg"}
    other = {"file": "cam0_1.jpg", "s3_key": "snapshots/cam-02/x/cam0_1.jpg"}

    run(topic, start_event(snapshot=own), evidence_bucket="vigil-evidence", s3_client=s3)
    run(topic, start_event(snapshot=other), evidence_bucket="vigil-evidence", s3_client=s3)

    linked, foreign = (envelope["Message"] for envelope in topic.received())
    [link] = [line for line in linked.splitlines() if line.startswith("Link:")]
    assert f"vigil-evidence.s3.amazonaws.com/snapshots/{thing}/{event_id}/cam0_1.jpg?" in link
    assert "X-Amz-Expires=86400" in link
    # Another thing's key is neither linked nor printed (issue 16, item 10; test_evidence.py).
    assert "snapshots/cam-02/x/cam0_1.jpg" not in foreign
    assert "Link:" not in foreign


@pytest.mark.parametrize(
    "key, own",
    [
        ("snapshots/{thing}/e/f.jpg", True),
        ("snapshots/cam-02/e/f.jpg", False),
        ("snapshots/{thing}/../cam-02/f.jpg", False),
        ("snapshots/{thing}-2/e/f.jpg", False),
        ("other/{thing}/f.jpg", False),
    ],
)
def test_own_snapshot_key(key, own, thing):
    key = key.format(thing=thing)  # the thing of start_event
    assert own_snapshot_key(key, thing) is own


def offline_end(start_event, **overrides):
    """The end a device sends when its live camera lost the stream mid-event (schema 1.2)."""
    fields = {
        "schema_version": "1.2",
        "event_type": "end",
        "sequence": 2,
        "ended_at": "2024-07-01T12:04:00Z",
        "sent_at": "2024-07-01T12:04:00.300Z",
        "received_at_ms": 1719835440450,  # 2024-07-01T12:04:00.450Z
        "end_reason": "camera_offline",
    }
    return start_event(**{**fields, **overrides})


def test_an_end_because_the_camera_went_offline_notifies_that(topic, event_id, start_event, thing):
    result = run(topic, offline_end(start_event))
    assert result["status"] == "notified" and result["event_type"] == "end"
    [envelope] = topic.received()
    assert envelope["MessageId"] == result["message_id"]
    assert envelope["Subject"] == "[Vigil] Camera offline during an event: cam0 at Lakeside (dev)"
    body = envelope["Message"]
    assert "went offline during an event" in body
    assert "2024-07-01 14:03:07 CEST (Europe/Berlin)" in body  # started
    assert "2024-07-01 14:04:00 CEST (Europe/Berlin)" in body  # the last frame before the loss
    assert event_id in body and thing in body
    [(_, message, _, _, _)] = topic.published()
    sms = json.loads(message)["sms"]
    assert sms == "Vigil Lakeside (dev): camera cam0/room offline during an event 14:04 CEST" and len(sms) <= 160
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    assert attributes["severity"] == "offline" and attributes["camera"] == "cam0"


@pytest.mark.parametrize("reason", ["quiet", "object_lost", "stopped"])
def test_an_end_for_any_other_reason_is_acknowledged_without_notifying(topic, start_event, reason):
    result = run(topic, offline_end(start_event, end_reason=reason))
    assert result["status"] == "acknowledged"
    assert topic.received() == []
