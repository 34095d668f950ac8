"""Alert times checked against IoT Core's receipt time (issue 16, items 6 and 10).

The topic rule adds ``timestamp() AS received_at_ms``: "the current timestamp in
milliseconds from 00:00:00 Coordinated Universal Time (UTC), Thursday, 1 January 1970,
as observed by the AWS IoT rules engine"
(https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-function-timestamp).
Schema-valid but absurd dates (year 2, 9998, a start after its own send time) were
published as facts. Now a time ahead of receipt by more than the bound, or older than
an alert is kept for delivery, or a start after its send time, is reported as a wrong
device clock, and the receipt time is shown as when it happened. A start older than
receipt is normal: the outbox holds alerts while the device is offline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil_alerts.config import Settings
from vigil_alerts.local import sample_event
from vigil_alerts.processing import process_alert
from vigil_alerts.validation import InvalidAlertError

RECEIVED = datetime(2024, 7, 1, 12, 3, 9, tzinfo=UTC)
RECEIVED_MS = int(RECEIVED.timestamp() * 1000)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def run(start_event):
    """``run(topic, **fields)``: the start alert with ``fields``, received at ``RECEIVED``,
    processed; its result and the envelope the subscriber got (or None)."""

    def process(topic, **fields):
        event = start_event(received_at_ms=RECEIVED_MS, **fields)
        options = {"site_name": "Lakeside", "time_zone": "Europe/Berlin", "stage": "dev", "now": RECEIVED}
        result = process_alert(event, sns_client=topic.sns, topic_arn=topic.arn, **options)
        envelopes = topic.received()
        return result, envelopes[0] if envelopes else None

    return process


ABSURD = {
    "year 9998": {"started_at": "9998-01-01T00:00:00Z", "sent_at": "9998-01-01T00:00:01Z"},
    "year 2": {"started_at": "0002-01-01T00:00:00Z", "sent_at": "0002-01-01T00:00:01Z"},
    "start after sent": {"started_at": iso(RECEIVED + timedelta(hours=1)), "sent_at": iso(RECEIVED)},
    "ten minutes ahead": {
        "started_at": iso(RECEIVED + timedelta(minutes=10)),
        "sent_at": iso(RECEIVED + timedelta(minutes=10)),
    },
    "older than delivery is kept": {
        "started_at": iso(RECEIVED - timedelta(days=30)),
        "sent_at": iso(RECEIVED - timedelta(days=30)),
    },
    "clock never set (1970)": {"started_at": "1970-01-01T00:05:00Z", "sent_at": "1970-01-01T00:05:01Z"},
}


@pytest.mark.parametrize("case", ABSURD)
def test_absurd_times_are_reported_as_a_wrong_device_clock(topic, case, run):
    result, envelope = run(topic, **ABSURD[case])
    assert result["status"] == "notified" and result["device_clock"] == "wrong"
    body = envelope["Message"]
    assert "Clock:" in body and "device clock looks wrong" in body
    # When it happened: as IoT Core received it (14:03:09 in Berlin), not the device's date.
    assert "2024-07-01 14:03:09 CEST" in body
    [started] = [line for line in body.splitlines() if line.startswith("Started:")]
    assert started.startswith("Started:    2024-07-01 14:03:09 CEST") and "as received" in started
    assert "Delivered:" not in body


@pytest.mark.parametrize(
    "started, sent",
    [
        (RECEIVED - timedelta(seconds=2), RECEIVED - timedelta(seconds=1)),  # live
        (RECEIVED + timedelta(minutes=4), RECEIVED + timedelta(minutes=4)),  # within the 5 min bound
        (RECEIVED - timedelta(days=3), RECEIVED - timedelta(days=3)),  # held in the outbox while offline
    ],
)
def test_plausible_times_are_not_flagged(topic, started, sent, run):
    result, envelope = run(topic, started_at=iso(started), sent_at=iso(sent))
    assert result["device_clock"] == "ok"
    assert "Clock:" not in envelope["Message"] and "device clock" not in envelope["Message"]


def test_late_delivery_is_measured_from_receipt(topic, run):
    _, envelope = run(topic, started_at=iso(RECEIVED - timedelta(days=3)), sent_at=iso(RECEIVED - timedelta(days=3)))
    assert "Delivered:  3 days after the event started" in envelope["Message"]


def test_sms_says_when_it_was_received_and_that_the_clock_is_wrong(topic, start_event):
    from vigil_alerts.notify import format_notification
    from vigil_alerts.receipt import check_clock, split_receipt
    from vigil_alerts.validation import validate_alert

    event, received = split_receipt(start_event(received_at_ms=RECEIVED_MS, **ABSURD["year 9998"]))
    alert = validate_alert(event)
    clock = check_clock(alert, received)
    note = format_notification(alert, site_name="Lakeside", time_zone="Europe/Berlin", clock=clock, now=RECEIVED)
    assert "14:03 CEST rcvd, device clock wrong" in note.sms and "9998" not in note.sms


def test_the_bound_comes_from_the_environment(topic, start_event):
    settings = Settings.from_env({"ALERT_TOPIC_ARN": "arn:x", "CLOCK_SKEW_MAX_S": "900"})
    assert settings.clock_skew_max_s == 900
    assert Settings.from_env({"ALERT_TOPIC_ARN": "arn:x"}).clock_skew_max_s == 300
    event = start_event(
        received_at_ms=RECEIVED_MS, **{k: iso(RECEIVED + timedelta(minutes=10)) for k in ("started_at", "sent_at")}
    )
    result = process_alert(event, sns_client=topic.sns, topic_arn=topic.arn, now=RECEIVED, clock_skew_max_s=900)
    assert result["device_clock"] == "ok"


@pytest.mark.parametrize("value", ["1719835389000", True, -5, 1.5e300, None, 10**20])
def test_a_receipt_time_that_is_not_the_rules_is_rejected(topic, value, start_event):
    with pytest.raises(InvalidAlertError) as caught:
        process_alert(start_event(received_at_ms=value), sns_client=topic.sns, topic_arn=topic.arn, now=RECEIVED)
    assert caught.value.code == "received_at"
    assert topic.received() == []


def test_without_a_receipt_time_the_lambdas_clock_is_the_reference(topic, start_event):
    event = start_event(**ABSURD["year 9998"])
    del event["received_at_ms"]  # an event from before the rule added it
    result = process_alert(event, sns_client=topic.sns, topic_arn=topic.arn, now=RECEIVED)
    assert result["device_clock"] == "wrong"
    assert "the Lambda's clock" in topic.received()[0]["Message"]


def test_local_events_carry_what_the_rule_adds():
    from vigil_alerts.local import rule_event

    event = sample_event()
    assert isinstance(event["received_at_ms"], int) and event["topic_thing_name"] == "cam-01"
    message = {k: v for k, v in event.items() if k not in ("received_at_ms", "topic_thing_name")}
    built = rule_event(message, "vigil/cam-01/alerts", received_at=RECEIVED)
    assert built == {**message, "topic_thing_name": "cam-01", "received_at_ms": RECEIVED_MS}


def test_update_and_end_report_the_clock_too(topic, start_event):
    result = process_alert(
        start_event(event_type="update", sequence=1, received_at_ms=RECEIVED_MS, **ABSURD["year 2"]),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        now=RECEIVED,
    )
    assert result["status"] == "acknowledged" and result["device_clock"] == "wrong"
