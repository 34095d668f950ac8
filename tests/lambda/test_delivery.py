"""Deduplication (Powertools idempotency) and the per-camera throttle on moto DynamoDB."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from vigil_alerts.config import Settings
from vigil_alerts.delivery import IDEMPOTENCY_TTL_S, CameraThrottle, EventDeduplicator
from vigil_alerts.local import LocalContext, sample_event
from vigil_alerts.processing import process_alert

WINDOW_START = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)  # a multiple of 600 s


@pytest.fixture
def dynamodb(table, region):
    return boto3.client("dynamodb", region_name=region)


def run(topic, event, *, sns_client=None, **kwargs):
    return process_alert(event, sns_client=sns_client or topic.sns, topic_arn=topic.arn, time_zone="UTC", **kwargs)


def new_start(camera: str = "cam0") -> dict:
    return sample_event(camera=camera)  # of cam-01, a fresh event_id


def deduplicator(table: str, dynamodb) -> EventDeduplicator:
    dedup = EventDeduplicator(table, dynamodb_client=dynamodb)
    dedup.register_lambda_context(LocalContext())  # as the handler does
    return dedup


class FailingSns:
    def publish(self, **_):
        raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "Publish")


def test_repeated_start_notifies_once(topic, table, dynamodb, start_event):
    dedup = deduplicator(table, dynamodb)

    first = run(topic, start_event(), deduplicator=dedup)
    again = run(topic, start_event(sent_at="2024-07-01T12:05:00Z"), deduplicator=dedup)

    assert first["status"] == "notified"
    assert again["status"] == "duplicate" and again["first_status"] == "notified"
    assert again["message_id"] == first["message_id"]
    assert len(topic.received()) == 1
    [record] = dynamodb.scan(TableName=table)["Items"]
    assert record["id"]["S"].startswith("vigil-alert-notify#")
    assert record["status"]["S"] == "COMPLETED"
    assert abs(int(record["expiration"]["N"]) - (time.time() + IDEMPOTENCY_TTL_S)) < 60


def test_different_events_are_not_duplicates(topic, table, dynamodb):
    dedup = deduplicator(table, dynamodb)
    assert run(topic, new_start(), deduplicator=dedup)["status"] == "notified"
    assert run(topic, new_start(), deduplicator=dedup)["status"] == "notified"
    assert len(topic.received()) == 2


def test_another_thing_reusing_an_event_id_is_not_a_duplicate(topic, table, dynamodb, start_event):
    # A device makes its own event ids; one reusing another's (by accident or to
    # silence it) must not suppress the other's alert, nor be suppressed by it.
    dedup = deduplicator(table, dynamodb)
    mine = start_event()
    theirs = start_event(
        thing_name="cam-02", topic_thing_name="cam-02", camera="back", started_at="2024-07-02T03:00:00Z"
    )

    first, second = run(topic, mine, deduplicator=dedup), run(topic, theirs, deduplicator=dedup)
    again = run(topic, dict(theirs, sent_at="2024-07-02T03:05:00Z"), deduplicator=dedup)

    assert (first["status"], first["thing_name"]) == ("notified", "cam-01")
    assert (second["status"], second["thing_name"], second["camera"]) == ("notified", "cam-02", "back")
    assert second["message_id"] != first["message_id"]
    assert (again["status"], again["message_id"]) == ("duplicate", second["message_id"])
    assert sorted(envelope["MessageAttributes"]["thing_name"]["Value"] for envelope in topic.received()) == [
        "cam-01",
        "cam-02",
    ]
    assert len(dynamodb.scan(TableName=table)["Items"]) == 2


def test_failed_publish_leaves_no_record_so_the_retry_notifies(topic, table, dynamodb, start_event):
    dedup = deduplicator(table, dynamodb)
    with pytest.raises(ClientError):
        run(topic, start_event(), deduplicator=dedup, sns_client=FailingSns())
    assert dynamodb.scan(TableName=table)["Items"] == []
    assert run(topic, start_event(), deduplicator=dedup)["status"] == "notified"
    assert len(topic.received()) == 1


def test_throttle_holds_back_and_reports_in_the_next_notification(topic, table, dynamodb):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=2, window_s=600)
    moments = [WINDOW_START + timedelta(seconds=s) for s in (10, 20, 30, 40)]

    statuses = [run(topic, new_start(), throttle=throttle, now=moment)["status"] for moment in moments]
    assert statuses == ["notified", "notified", "throttled", "throttled"]
    assert [run(topic, new_start("cam1"), throttle=throttle, now=moments[-1])["status"]] == ["notified"]

    next_window = run(topic, new_start(), throttle=throttle, now=WINDOW_START + timedelta(seconds=610))
    assert next_window["status"] == "notified" and next_window["held_reported"] == 2
    bodies = [envelope["Message"] for envelope in topic.received()]
    assert len(bodies) == 4
    assert "Suppressed: 2 earlier alert(s) from this camera not sent since 2024-07-01 12:00:30 UTC" in bodies[-1]
    assert all("Suppressed" not in body for body in bodies[:-1])

    later = run(topic, new_start(), throttle=throttle, now=WINDOW_START + timedelta(seconds=620))
    assert later["held_reported"] == 0


def test_failed_publish_gives_the_slot_back(topic, table, dynamodb, start_event):
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    with pytest.raises(ClientError):
        run(topic, start_event(), throttle=throttle, now=WINDOW_START, sns_client=FailingSns())
    assert run(topic, start_event(), throttle=throttle, now=WINDOW_START)["status"] == "notified"


def test_duplicate_of_a_throttled_start_is_not_counted_again(topic, table, dynamodb):
    dedup = deduplicator(table, dynamodb)
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    run(topic, new_start(), deduplicator=dedup, throttle=throttle, now=WINDOW_START)
    held = new_start()
    for _ in range(3):
        run(topic, held, deduplicator=dedup, throttle=throttle, now=WINDOW_START)
    report = run(topic, new_start(), deduplicator=dedup, throttle=throttle, now=WINDOW_START + timedelta(seconds=600))
    assert report["held_reported"] == 1


def test_handler_with_table_deduplicates_and_throttles(app, topic, table, context, monkeypatch, start_event):
    monkeypatch.setenv("IDEMPOTENCY_TABLE", table)
    monkeypatch.setenv("THROTTLE_MAX_PER_WINDOW", "1")
    monkeypatch.setenv("THROTTLE_WINDOW_S", str(10**9))  # one window for the whole test

    assert app.handler(start_event(), context)["status"] == "notified"
    assert app.handler(start_event(), context)["status"] == "duplicate"
    assert app.handler(start_event(event_id="f" * 32), context)["status"] == "throttled"
    assert len(topic.received()) == 1
    ids = {item["id"]["S"].split("#")[0] for item in boto3.client("dynamodb").scan(TableName=table)["Items"]}
    assert ids == {"vigil-alert-notify", "throttle"}


def test_throttle_without_table_is_ignored(app, topic, context, monkeypatch):
    monkeypatch.setenv("THROTTLE_MAX_PER_WINDOW", "1")
    for _ in range(3):
        assert app.handler(new_start(), context)["status"] == "notified"
    assert len(topic.received()) == 3


def test_warm_invocations_reuse_one_deduplicator(app, table, context, monkeypatch):
    monkeypatch.setenv("IDEMPOTENCY_TABLE", table)
    app.handler(new_start(), context)
    [first] = {id(app.clients.guards(Settings.from_env())[0])}
    user_agents = []
    app.clients.dynamodb.meta.events.register(
        "before-send.dynamodb.*", lambda request, **_: user_agents.append(str(request.headers["User-Agent"]))
    )
    for _ in range(3):
        app.handler(new_start(), context)
    assert id(app.clients.guards(Settings.from_env())[0]) == first
    assert user_agents and all(agent.count("idempotency") == 1 for agent in user_agents)


def test_the_same_alert_delivered_three_times_gives_one_sns_message(app, topic, table, context, monkeypatch):
    # MQTT QoS 1 redelivery, a Lambda retry and a device resending its outbox after reconnecting.
    monkeypatch.setenv("IDEMPOTENCY_TABLE", table)
    event = new_start()
    statuses = [app.handler(dict(event), context)["status"] for _ in range(3)]
    assert statuses == ["notified", "duplicate", "duplicate"]
    assert len(topic.received()) == 1


def test_a_camera_offline_end_notifies_once_apart_from_its_start(topic, table, dynamodb, start_event):
    """The offline notice shares the start's thing and event_id, yet neither hides the
    other; a redelivered end (at-least-once from the device's outbox) notifies no more."""
    dedup = deduplicator(table, dynamodb)
    end = start_event(
        schema_version="1.2",
        event_type="end",
        sequence=1,
        ended_at="2024-07-01T12:04:00Z",
        sent_at="2024-07-01T12:04:00.300Z",
        received_at_ms=1719835440450,
        end_reason="camera_offline",
    )
    start = run(topic, start_event(), deduplicator=dedup)
    first = run(topic, end, deduplicator=dedup)
    again = run(topic, end, deduplicator=dedup)
    assert (start["status"], first["status"], again["status"]) == ("notified", "notified", "duplicate")
    assert again["message_id"] == first["message_id"] != start["message_id"]
    subjects = [m["Subject"] for m in topic.received()]
    assert len(subjects) == 2 and "Camera offline during an event" in subjects[1]
    assert len(dynamodb.scan(TableName=table)["Items"]) == 2


def snapshot_update(start: dict) -> dict:
    """The update a device sends for ``start``'s event once its snapshot is uploaded."""
    key = f"snapshots/{start['thing_name']}/{start['event_id']}/cam0_1.jpg"
    return {
        **start,
        "event_type": "update",
        "sequence": 1,
        "sent_at": "2024-07-01T12:03:09.100Z",
        "snapshot": {"file": "cam0_1.jpg", "s3_key": key},
    }


@pytest.fixture
def s3(aws, region):
    from botocore.config import Config

    return boto3.client("s3", region_name=region, config=Config(signature_version="s3v4"))


def test_a_resent_snapshot_update_notifies_once_apart_from_its_start(topic, table, dynamodb, s3, start_event):
    """The device's outbox delivers at least once: the follow-up is deduplicated per event,
    keyed apart from the start (same thing and event_id), so neither hides the other."""
    dedup = deduplicator(table, dynamodb)
    evidence = {"evidence_bucket": "vigil-evidence", "s3_client": s3}
    start = run(topic, start_event(), deduplicator=dedup, **evidence)
    update = snapshot_update(start_event())
    first = run(topic, update, deduplicator=dedup, **evidence)
    again = run(topic, update, deduplicator=dedup, **evidence)
    assert (start["status"], first["status"], again["status"]) == ("notified", "notified", "duplicate")
    assert again["message_id"] == first["message_id"] != start["message_id"]
    subjects = [m["Subject"] for m in topic.received()]
    assert len(subjects) == 2 and subjects[1].startswith("[Vigil] Snapshot of intrusion")
    assert len(dynamodb.scan(TableName=table)["Items"]) == 2


def test_the_snapshot_of_a_throttled_start_stays_held(topic, table, dynamodb, s3):
    """A start the throttle held must not come through by its picture; an admitted
    start's follow-up goes out even though the camera's window is full now."""
    dedup = deduplicator(table, dynamodb)
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    options = {"deduplicator": dedup, "throttle": throttle, "evidence_bucket": "vigil-evidence", "s3_client": s3}
    admitted, held = new_start(), new_start()
    assert run(topic, admitted, now=WINDOW_START, **options)["status"] == "notified"
    assert run(topic, held, now=WINDOW_START, **options)["status"] == "throttled"

    silent = run(topic, snapshot_update(held), now=WINDOW_START, **options)
    sent = run(topic, snapshot_update(admitted), now=WINDOW_START, **options)

    assert (silent["status"], silent["snapshot"]) == ("throttled", "start_held")
    assert sent["status"] == "notified"
    bodies = [m["Message"] for m in topic.received()]
    assert len(bodies) == 2 and admitted["event_id"] in bodies[1] and held["event_id"] not in bodies[1]
    # The follow-up took no slot and was not counted as held: the next window reports one.
    report = run(topic, new_start(), now=WINDOW_START + timedelta(seconds=600), **options)
    assert report["held_reported"] == 1


def test_a_snapshot_arriving_before_its_start_is_held_even_if_the_start_is_let_through(topic, table, dynamodb, s3):
    """Messages can arrive out of order: an update seen before its start cannot know
    whether the throttle will hold that start, so it says nothing (``start_unseen``)."""
    dedup = deduplicator(table, dynamodb)
    throttle = CameraThrottle(table, dynamodb_client=dynamodb, max_per_window=1, window_s=600)
    options = {"deduplicator": dedup, "throttle": throttle, "evidence_bucket": "vigil-evidence", "s3_client": s3}
    admitted, held = new_start(), new_start()
    assert run(topic, admitted, now=WINDOW_START, **options)["status"] == "notified"
    early = run(topic, snapshot_update(held), now=WINDOW_START, **options)
    assert (early["status"], early["snapshot"]) == ("acknowledged", "start_unseen")
    assert run(topic, held, now=WINDOW_START, **options)["status"] == "throttled"
    again = run(topic, snapshot_update(held), now=WINDOW_START, **options)
    assert (again["status"], again["snapshot"]) == ("throttled", "start_held")
    assert len(topic.received()) == 1  # the admitted start only
    # Once the start has been notified, a resent update still sends the picture (not deduplicated away).
    late = new_start()
    run(topic, snapshot_update(late), now=WINDOW_START + timedelta(seconds=600), **options)
    assert run(topic, late, now=WINDOW_START + timedelta(seconds=600), **options)["status"] == "notified"
    sent = run(topic, snapshot_update(late), now=WINDOW_START + timedelta(seconds=600), **options)
    assert sent["status"] == "notified"
