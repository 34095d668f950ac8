"""process_alert against moto SNS, read back through a subscribed SQS queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
import requests
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


# --- the snapshot follow-up: an update that carries the uploaded snapshot's key ----------

BUCKET = "vigil-evidence"


def snapshot_update(start_event, key, **overrides):
    """The update the device sends once the event's snapshot has landed in the bucket."""
    fields = {"event_type": "update", "sequence": 1, "sent_at": "2024-07-01T12:03:09.100Z"}
    return start_event(**{**fields, "snapshot": {"file": key.rsplit("/", 1)[-1], "s3_key": key}, **overrides})


def sigv4_query_signature(url: str, secret_key: str) -> str:
    """The SigV4 signature a presigned GET ``url`` should carry, computed from the spec
    ("Authenticating Requests: Using Query Parameters (AWS Signature Version 4)",
    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html), not with botocore."""
    import hashlib
    import hmac
    from urllib.parse import parse_qsl, quote, urlsplit

    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))
    values = dict(params)
    assert values["X-Amz-SignedHeaders"] == "host"
    canonical = "\n".join(["GET", parts.path, query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    scope = values["X-Amz-Credential"].split("/", 1)[1]
    date, region, service, _ = scope.split("/")
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", values["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_an_update_with_the_uploaded_snapshot_sends_its_signed_link(topic, event_id, start_event, thing):
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    key = f"snapshots/{thing}/{event_id}/cam0_1.jpg"
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"\xff\xd8 a snapshot")

    result = run(topic, snapshot_update(start_event, key), evidence_bucket=BUCKET, s3_client=s3)

    assert result["status"] == "notified" and result["event_type"] == "update"
    [envelope] = topic.received()
    assert envelope["MessageId"] == result["message_id"]
    assert envelope["Subject"] == "[Vigil] Snapshot of intrusion in zone room: cam0 at Lakeside (dev)"
    body = envelope["Message"]
    assert f"s3://{BUCKET}/{key}" in body and event_id in body
    assert "2024-07-01 14:03:07 CEST (Europe/Berlin)" in body
    [line] = [line for line in body.splitlines() if line.startswith("Link:")]
    url = line.split()[1]
    assert url.startswith(f"https://{BUCKET}.s3.amazonaws.com/{key}?")
    query = dict(parse_qsl(urlsplit(url).query))
    credentials = boto3.session.Session().get_credentials().get_frozen_credentials()  # moto's fake ones
    assert query["X-Amz-Expires"] == "86400"
    assert query["X-Amz-Credential"].startswith(f"{credentials.access_key}/")
    # Signed for exactly this bucket and key with the caller's credentials...
    assert query["X-Amz-Signature"] == sigv4_query_signature(url, credentials.secret_key)
    # ...which another key would not match (the check above can fail).
    other = url.replace(f"/{key}?", f"/snapshots/cam-02/{event_id}/cam0_1.jpg?")
    assert query["X-Amz-Signature"] != sigv4_query_signature(other, credentials.secret_key)
    # And the link fetches the object (moto's S3 answers the URL; it does not check signatures).
    assert requests.get(url, timeout=10).content == b"\xff\xd8 a snapshot"
    sms = json.loads(topic.published()[0][1])["sms"]
    assert sms == "Vigil Lakeside (dev): snapshot of cam0/room 14:03 CEST event sent by e-mail" and len(sms) <= 160
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    assert attributes["severity"] == "snapshot"


def test_an_update_with_another_things_snapshot_key_is_refused(topic, event_id, start_event):
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    foreign = f"snapshots/cam-02/{event_id}/cam0_1.jpg"
    result = run(topic, snapshot_update(start_event, foreign), evidence_bucket=BUCKET, s3_client=s3)
    assert (result["status"], result["snapshot"]) == ("acknowledged", "foreign_key")
    assert topic.published() == []


def test_an_update_without_an_uploaded_key_or_bucket_stays_silent(topic, event_id, start_event, thing):
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    kept = start_event(event_type="update", sequence=1, snapshot={"file": "cam0_1.jpg"})
    assert run(topic, kept, evidence_bucket=BUCKET, s3_client=s3)["status"] == "acknowledged"
    uploaded = snapshot_update(start_event, f"snapshots/{thing}/{event_id}/cam0_1.jpg")
    result = run(topic, uploaded)  # no evidence bucket configured: nothing to sign
    assert (result["status"], result["snapshot"]) == ("acknowledged", "no_bucket")
    assert topic.published() == []


HUGE = 10**400  # a valid JSON number; float() and math.isfinite overflow on it


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"media_offset_s": HUGE}, "schema"),  # the schema's maximum already says no
        ({"schema_version": "1.1", "label": "person", "box": [0, 0, HUGE, HUGE]}, "schema"),
        (
            {
                "schema_version": "1.2",
                "event_type": "end",
                "sequence": 2,
                "ended_at": "2024-07-01T12:03:27Z",
                "end_reason": "quiet",
                "features": {"feature_version": "3", "windows": [[HUGE] * 8]},
            },
            "non_finite",
        ),
    ],
    ids=["media_offset_s", "box", "features"],
)
def test_an_integer_beyond_float64_is_a_non_finite_rejection_not_a_crash(topic, start_event, fields, code):
    with pytest.raises(InvalidAlertError) as caught:
        run(topic, start_event(**fields))
    assert caught.value.code == code
    assert len(caught.value.reason) < 300  # the 401-digit number is cut short in the message
    assert topic.published() == []
