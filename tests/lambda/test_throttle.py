"""The per-camera throttle on moto DynamoDB: a sliding window, and the held count sent
when the window closes (issue 16, item 9).

Before: fixed windows aligned to the epoch let twice the limit through across a
boundary, and the "N alerts held" summary rode only on the next admitted alert of that
camera, so a burst followed by silence was never summarised.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from vigil_alerts.delivery import CameraThrottle
from vigil_alerts.local import sample_event
from vigil_alerts.processing import process_alert

T0 = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)  # a multiple of 600 s: a fixed-window boundary


@pytest.fixture
def dynamodb(table, region):
    return boto3.client("dynamodb", region_name=region)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(topic, throttle, seconds, camera="cam0"):
    event = sample_event(camera=camera)  # of cam-01, a fresh event_id
    return process_alert(event, sns_client=topic.sns, topic_arn=topic.arn, throttle=throttle, now=at(seconds))["status"]


def test_no_more_than_the_limit_in_any_window_across_a_boundary(topic, table, dynamodb):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=2, window_s=600)
    # Two just before 12:00, two just after: four in 20 s with fixed windows.
    statuses = [alert(topic, throttle, s) for s in (-10, -5, 5, 10)]
    assert statuses == ["notified", "notified", "throttled", "throttled"]
    # A slot frees 600 s after the first notification, not at the next boundary.
    assert alert(topic, throttle, 589) == "throttled"
    assert alert(topic, throttle, 590) == "notified"
    assert alert(topic, throttle, 594) == "throttled"
    assert alert(topic, throttle, 595) == "notified"


def test_cameras_are_limited_apart(topic, table, dynamodb):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    assert [alert(topic, throttle, 0, "a"), alert(topic, throttle, 1, "b"), alert(topic, throttle, 2, "a")] == [
        "notified",
        "notified",
        "throttled",
    ]


def summaries(topic, throttle, seconds):
    sent = []

    def send(thing, camera, held):
        sent.append((thing, camera, held.count, held.since))

    throttle.flush_due(send, now=at(seconds))
    return sent


def test_held_alerts_are_summarised_when_the_window_closes_without_another_alert(topic, table, dynamodb, start_event):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    assert [alert(topic, throttle, s) for s in (0, 10, 20)] == ["notified", "throttled", "throttled"]

    assert summaries(topic, throttle, 300) == []  # the window is still full
    assert summaries(topic, throttle, 601) == [("cam-01", "cam0", 2, at(10))]
    assert summaries(topic, throttle, 662) == []  # once
    # The next alert has nothing left to report.
    result = process_alert(
        start_event(event_id=uuid.uuid4().hex),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        throttle=throttle,
        now=at(700),
    )
    assert result["status"] == "notified" and result["held_reported"] == 0


def test_an_admitted_alert_that_reported_the_count_leaves_nothing_to_flush(topic, table, dynamodb, start_event):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    [alert(topic, throttle, s) for s in (0, 10)]
    result = process_alert(
        start_event(event_id=uuid.uuid4().hex),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        throttle=throttle,
        now=at(600),
    )
    assert result["held_reported"] == 1
    assert summaries(topic, throttle, 700) == []


def test_an_alert_held_after_the_flush_is_summarised_by_the_next(topic, table, dynamodb):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    [alert(topic, throttle, s) for s in (0, 10)]
    assert summaries(topic, throttle, 601) == [("cam-01", "cam0", 1, at(10))]
    assert [alert(topic, throttle, s) for s in (602, 610, 620)] == ["notified", "throttled", "throttled"]
    assert summaries(topic, throttle, 1100) == []
    assert summaries(topic, throttle, 1203) == [("cam-01", "cam0", 2, at(610))]


def test_a_failed_summary_stays_pending(topic, table, dynamodb):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    [alert(topic, throttle, s) for s in (0, 10)]

    def broken(*_):
        raise RuntimeError("SNS down")

    with pytest.raises(RuntimeError):
        throttle.flush_due(broken, now=at(601))
    assert summaries(topic, throttle, 660) == [("cam-01", "cam0", 1, at(10))]


def test_the_scheduled_handler_publishes_the_summary(app, topic, table, context, monkeypatch, start_event):
    monkeypatch.setenv("IDEMPOTENCY_TABLE", table)
    monkeypatch.setenv("THROTTLE_MAX_PER_WINDOW", "1")
    monkeypatch.setenv("THROTTLE_WINDOW_S", "60")
    now = datetime.now(UTC)
    throttle = app.clients.guards(app.Settings.from_env())[1]
    for seconds in (-100, -99, -98):  # one sent, two held; the window closed 40 s ago
        event = start_event(event_id=uuid.uuid4().hex, started_at=(now + timedelta(seconds=seconds)).isoformat())
        process_alert(
            event, sns_client=topic.sns, topic_arn=topic.arn, throttle=throttle, now=now + timedelta(seconds=seconds)
        )
    topic.received()

    result = app.flush_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context)

    assert result == {"summaries": 1, "held_reported": 2}
    [envelope] = topic.received()
    assert envelope["Subject"] == "[Vigil] 2 alerts held: cam0 at Lakeside (dev)"
    assert "2 alert(s) from camera cam0 of thing cam-01 were not sent" in envelope["Message"]
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    assert attributes["thing_name"] == "cam-01" and attributes["camera"] == "cam0"
    assert app.flush_handler({}, context) == {"summaries": 0, "held_reported": 0}


def test_the_limit_is_bounded_by_what_one_item_holds():
    from vigil_alerts.config import ConfigError, Settings

    assert (
        Settings.from_env({"ALERT_TOPIC_ARN": "arn:x", "THROTTLE_MAX_PER_WINDOW": "1000"}).throttle_max_per_window
        == 1000
    )
    with pytest.raises(ConfigError, match="THROTTLE_MAX_PER_WINDOW"):
        Settings.from_env({"ALERT_TOPIC_ARN": "arn:x", "THROTTLE_MAX_PER_WINDOW": "1001"})
