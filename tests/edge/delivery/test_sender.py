"""The sender (edge_component/delivery/sender.py): drains the outbox in order, retries with
backoff, holds what a full disk cannot store, never dies."""

from __future__ import annotations

import logging
import random
import threading
import time

import pytest

from edge_component.contracts.topics import alert_topic
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.publisher import PublishError
from edge_component.delivery.sender import OutboxPublisher

FULL = "database or disk is full"
THING = "cam-test-01"
TOPIC = alert_topic(THING)
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}  # backoff for tests; defaults are 0.5 s .. 30 s


def test_sender_drains_a_backlog_left_by_an_earlier_process(tmp_path, Down, Recorder, healthy, make_alerts):
    alerts = make_alerts(3)
    path = tmp_path / "outbox.sqlite"
    offline = OutboxPublisher(Outbox(path), Down(), **FAST)
    for a in alerts:
        offline.publish(TOPIC, a)
    time.sleep(0.1)
    assert offline.stats()["retries"] >= 1
    offline.close()

    transport = Recorder()
    online = OutboxPublisher(Outbox(path), transport, **FAST)
    assert online.flush(5)
    assert [m for _, m in transport.sent] == alerts
    assert online.stats() == healthy(sent=len(alerts))
    online.close()
    assert transport.closed


def test_closed_outbox_refusal_reaches_the_detector_as_publish_error(tmp_path, Recorder, make_alerts):
    box = Outbox(tmp_path / "outbox.sqlite")
    pub = OutboxPublisher(box, Recorder(), **FAST)
    box.close()
    with pytest.raises(PublishError, match="outbox.sqlite"):
        pub.publish(TOPIC, make_alerts(1)[0])
    pub.close()


def test_backoff_doubles_with_jitter_and_is_bounded(tmp_path, Down):
    pub = OutboxPublisher(
        Outbox(tmp_path / "o.sqlite"), Down(), retry_initial_s=0.5, retry_max_s=30, rng=random.Random(7)
    )
    delays = [pub.backoff_s(n) for n in range(1, 40)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(30.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling
    assert len({round(d, 6) for d in delays[10:]}) > 1  # jittered, not in lock step
    pub.close()


def test_concurrent_publishers_lose_nothing_and_keep_each_threads_order(tmp_path, Recorder):
    transport = Recorder(fail_calls={1, 2, 7, 30, 31, 32, 100})
    pub = OutboxPublisher(Outbox(tmp_path / "o.sqlite"), transport, **FAST)

    def raise_alerts(worker: int) -> None:
        for i in range(50):
            pub.publish(TOPIC, {"worker": worker, "i": i})

    threads = [threading.Thread(target=raise_alerts, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pub.flush(10)
    got = [m for _, m in transport.sent]
    assert len(got) == 200
    for w in range(4):
        assert [m["i"] for m in got if m["worker"] == w] == list(range(50))
    assert pub.stats()["retries"] == 7
    pub.close()


def test_telemetry_waits_for_alerts_and_never_takes_their_place(tmp_path, Switch, make_alerts):
    alerts = make_alerts(1)
    transport = Switch()
    pub = OutboxPublisher(Outbox(tmp_path / "o.sqlite", max_messages=3), transport, **FAST)
    for beat in range(20):  # a long outage: many heartbeats, three alerts
        pub.publish_latest("vigil/cam-test-01/telemetry", {"beat": beat})
        if beat in (3, 9, 15):
            pub.publish(TOPIC, alerts[beat // 6])
    assert pub.stats()["depth"] == 3 and pub.stats()["dropped"] == 0  # heartbeats took no outbox room
    transport.up = True
    assert pub.flush(5)
    assert transport.sent == [(TOPIC, a) for a in alerts] + [("vigil/cam-test-01/telemetry", {"beat": 19})]
    pub.close()


def test_full_disk_alerts_are_held_in_memory_and_all_delivered_in_order(disk, caplog, Switch, padded):
    alerts = padded(3)  # 9 messages
    transport = Switch()
    box = disk.attach(Outbox(disk.dir / "outbox.sqlite"))
    pub = OutboxPublisher(box, transport, **FAST)
    for a in alerts[:3]:
        pub.publish(TOPIC, a)  # stored
    disk.fill()
    with caplog.at_level(logging.INFO, logger="edge_component.delivery"):
        for a in alerts[3:6]:
            pub.publish(TOPIC, a)  # not storable, but accepted: never PublishError
        stats = pub.stats()
        assert (stats["depth"], stats["unstored"]) == (3, 3)
        transport.up = True
        assert pub.flush(5), pub.stats()
        # stored backlog first, then what was held in memory, in arrival order, each once
        assert [m for _, m in transport.sent] == alerts[:6]
        assert pub.stats()["unstored"] == 0 and pub.stats()["depth"] == 0
        disk.free()
        for a in alerts[6:]:
            pub.publish(TOPIC, a)  # stored again
        assert pub.flush(5)
    assert [m for _, m in transport.sent] == alerts
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once per failure streak
    assert FULL in errors[0].getMessage() and "outbox.sqlite" in errors[0].getMessage()
    assert any("again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert pub.stats()["sent"] == len(alerts)
    pub.close()
    with Outbox(disk.dir / "outbox.sqlite") as box:  # every delivered message is gone from the file
        assert box.depth == 0 and box.peek(10) == []


def test_full_disk_overflow_is_bounded_and_stored_at_close_if_it_can_be(disk, caplog, Down, padded):
    alerts = padded(2)  # 6 messages
    box = disk.attach(Outbox(disk.dir / "outbox.sqlite"))
    pub = OutboxPublisher(box, Down(), overflow_max_messages=4, **FAST)
    disk.fill()
    with caplog.at_level(logging.WARNING, logger="edge_component.delivery"):
        for a in alerts:
            pub.publish(TOPIC, a)
    stats = pub.stats()
    assert (stats["unstored"], stats["dropped"], stats["depth"]) == (4, 2, 0)
    assert any(alerts[0]["event_id"] in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
    disk.free()  # space again before the process stops: what is held is written down
    pub.close()
    with Outbox(disk.dir / "outbox.sqlite") as box:
        assert [i.message for i in box.peek(10)] == alerts[2:]


def test_held_alerts_that_cannot_be_stored_at_close_are_reported_lost(tmp_path, caplog, Down, padded, PageLimit):
    disk = PageLimit(tmp_path)
    alert = padded(1)[0]
    pub = OutboxPublisher(disk.attach(Outbox(tmp_path / "outbox.sqlite")), Down(), **FAST)
    disk.fill()
    pub.publish(TOPIC, alert)
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        pub.close()
    lost = [r.getMessage() for r in caplog.records if "could not be stored" in r.getMessage()]
    assert len(lost) == 1 and alert["event_id"] in lost[0] and FULL in lost[0]


def test_sender_thread_survives_any_exception(tmp_path, caplog, Recorder, make_alerts):
    box = Outbox(tmp_path / "outbox.sqlite")
    transport = Recorder()
    real_peek, calls = box.peek, []

    def flaky_peek(n=1):
        calls.append(n)
        if len(calls) <= 2:
            raise KeyError("a bug in the sender's path")
        return real_peek(n)

    box.peek = flaky_peek
    alert = make_alerts(1)[0]
    box.put(TOPIC, alert)
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        pub = OutboxPublisher(box, transport, **FAST)
        assert pub.flush(5), pub.stats()
    assert [m for _, m in transport.sent] == [alert]
    assert pub.stats()["sender_alive"] is True
    logged = [r for r in caplog.records if "a bug in the sender" in r.getMessage()]
    assert logged and all(r.exc_info for r in logged)  # with its traceback
    pub.close()
    assert pub.stats()["sender_alive"] is False


def test_close_with_the_network_down_says_what_stays_queued(tmp_path, caplog, Down, make_alerts):
    path = tmp_path / "outbox.sqlite"
    pub = OutboxPublisher(Outbox(path), Down(), **FAST)
    for a in make_alerts(1):
        pub.publish(TOPIC, a)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="edge_component.delivery"):
        pub.close(drain_timeout_s=0.3)
    assert time.monotonic() - t0 < 5
    assert f"3 alerts still queued in {path}; they will be sent on the next start" in caplog.text
    assert pub.stats()["depth"] == 3  # still reported after close
    with Outbox(path) as box:
        assert box.depth == 3


def test_a_message_too_deep_to_encode_is_refused_as_publish_error(tmp_path, Recorder):
    deep: list = []
    inner = deep
    for _ in range(100_000):  # deeper than the JSON encoder can recurse
        inner.append([])
        inner = inner[0]
    pub = OutboxPublisher(Outbox(tmp_path / "outbox.sqlite"), Recorder(), **FAST)
    with pytest.raises(PublishError, match="nested too deeply"):
        pub.publish(TOPIC, {"event_id": "x", "d": deep})
    assert pub.stats()["depth"] == 0 and pub.stats()["unstored"] == 0
    pub.close()


def test_telemetry_refused_for_good_is_dropped_and_does_not_hold_the_sender(tmp_path, Recorder, make_alerts, caplog):
    """PublishRefusedError (e.g. not authorized for the topic) on telemetry: dropped with a
    log, not retried forever; the alerts and later telemetry still go out."""
    from edge_component.delivery.publisher import PublishRefusedError

    class Refusing(Recorder):
        def publish(self, topic, message):
            if topic == "vigil/oldthing/telemetry":
                raise PublishRefusedError(f"UnauthorizedError: not authorized to publish to {topic}")
            super().publish(topic, message)

    transport = Refusing()
    pub = OutboxPublisher(Outbox(tmp_path / "outbox.sqlite"), transport, **FAST)
    with caplog.at_level(logging.ERROR):
        pub.publish_latest("vigil/oldthing/telemetry", {"n": 1})
        assert pub.flush(5)
        alert = make_alerts(1)[0]
        pub.publish(TOPIC, alert)
        pub.publish_latest("vigil/cam-test-01/telemetry", {"n": 2})
        assert pub.flush(5)
    assert transport.sent == [(TOPIC, alert), ("vigil/cam-test-01/telemetry", {"n": 2})]
    assert "telemetry on vigil/oldthing/telemetry refused for good, dropped" in caplog.text
    assert pub.stats()["retries"] == 0
    pub.close()
