"""The durable outbox (edge_component/delivery/outbox.py): order across restarts, bounds, a
full disk, rows that no longer decode."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from edge_component.contracts.topics import alert_topic
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.outbox_file import (
    OutboxCorruptError,
    OutboxError,
)
from edge_component.delivery.sender import OutboxPublisher

FULL = "database or disk is full"
THING = "cam-test-01"
TOPIC = alert_topic(THING)
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}  # backoff for tests; defaults are 0.5 s .. 30 s


def test_outbox_backlog_survives_reopen_in_order(tmp_path, make_alerts):
    alerts = make_alerts(2)
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        ids = [box.put(TOPIC, a) for a in alerts]
        assert ids == sorted(ids)
        assert box.ack(ids[0]) and not box.ack(ids[0])
        box.record_attempt(ids[1])
    with Outbox(path) as box:
        items = box.peek(100)
        assert [i.message for i in items] == alerts[1:]
        assert {i.topic for i in items} == {TOPIC}
        assert items[0].attempts == 1 and items[1].attempts == 0
        assert box.depth == len(alerts) - 1
        for item in items:
            box.ack(item.id)
        assert box.depth == 0
    with Outbox(path) as box:  # AUTOINCREMENT: an emptied outbox never reuses an id
        assert box.put(TOPIC, alerts[0]) > ids[-1]


def test_full_outbox_drops_the_oldest_and_reports_it(tmp_path, caplog, Down, make_alerts):
    alerts = make_alerts(3)  # 9 messages into room for 5
    path = tmp_path / "outbox.sqlite"
    with caplog.at_level(logging.WARNING, logger="edge_component.delivery"):
        with Outbox(path, max_messages=5) as box:
            for a in alerts:
                box.put(TOPIC, a)
            assert (box.depth, box.dropped) == (5, 4)
            assert [i.message for i in box.peek(10)] == alerts[4:]
    dropped_logs = [r.getMessage() for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert len(dropped_logs) == 4
    assert alerts[0]["event_id"] in dropped_logs[0]
    pub = OutboxPublisher(Outbox(path, max_messages=5), Down(), **FAST)  # the count is persisted
    assert pub.stats()["dropped"] == 4 and pub.stats()["depth"] == 5
    pub.close()


def test_unopenable_outbox_is_not_mistaken_for_corrupt(tmp_path):
    (tmp_path / "is-a-dir").mkdir()
    with pytest.raises(OutboxError, match="is-a-dir") as err:
        Outbox(tmp_path / "is-a-dir")
    assert not isinstance(err.value, OutboxCorruptError)
    assert (tmp_path / "is-a-dir").is_dir()  # nothing moved


def test_full_disk_put_reports_the_real_error(disk, padded):
    box = disk.attach(Outbox(disk.dir / "outbox.sqlite"))
    box.put(TOPIC, padded(1)[0])
    disk.fill()
    with pytest.raises(OutboxError, match=FULL) as err:
        box.put(TOPIC, padded(1)[1])
    assert "cannot rollback" not in str(err.value)
    assert box.depth == 1
    disk.free()
    box.put(TOPIC, padded(1)[2])  # the connection is still usable
    assert box.depth == 2
    box.close()


def test_undecodable_rows_go_to_dead_letters_and_never_block_the_rest(tmp_path, caplog, Recorder, make_alerts):
    path = tmp_path / "outbox.sqlite"
    alerts = make_alerts(1)
    with Outbox(path) as box:
        box.put(TOPIC, alerts[0])
    raw = sqlite3.connect(path)
    with raw:  # bit rot: not JSON, not UTF-8, JSON but not an object
        raw.execute("INSERT INTO outbox (topic, payload, created_at) VALUES (?, '{not json', 0)", (TOPIC,))
        raw.execute("INSERT INTO outbox (topic, payload, created_at) VALUES (?, CAST(x'7bff22' AS TEXT), 0)", (TOPIC,))
        raw.execute("INSERT INTO outbox (topic, payload, created_at) VALUES (?, '[1, 2]', 0)", (TOPIC,))
        bad_ids = [r[0] for r in raw.execute("SELECT id FROM outbox ORDER BY id").fetchall()[1:]]
    raw.close()
    with Outbox(path) as box:
        box.put(TOPIC, alerts[1])
        box.put(TOPIC, alerts[2])
    transport = Recorder()
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        pub = OutboxPublisher(Outbox(path), transport, batch=2, **FAST)
        assert pub.flush(5), pub.stats()
    assert [m for _, m in transport.sent] == alerts
    stats = pub.stats()
    assert stats["dead"] == 3 and stats["depth"] == 0 and stats["sender_alive"] is True
    for bad in bad_ids:
        assert any(f"id {bad}" in r.getMessage() and "dead_letters" in r.getMessage() for r in caplog.records)
    pub.close()
    raw = sqlite3.connect(path)  # kept on disk, bytes as they were
    kept = raw.execute("SELECT id, CAST(payload AS BLOB) FROM dead_letters ORDER BY id").fetchall()
    raw.close()
    assert [k[0] for k in kept] == bad_ids and kept[0][1] == b"{not json" and kept[1][1] == b'{\xff"'
    with Outbox(path) as box:
        assert box.dead == 3  # counted over the file's life


def test_peek_skips_dead_rows_and_still_fills_the_batch(tmp_path, make_alerts):
    path = tmp_path / "outbox.sqlite"
    alerts = make_alerts(1)
    with Outbox(path) as box:
        box.put(TOPIC, alerts[0])
    raw = sqlite3.connect(path)
    with raw:
        raw.executemany("INSERT INTO outbox (topic, payload, created_at) VALUES (?, '}', 0)", [(TOPIC,)] * 5)
    raw.close()
    with Outbox(path) as box:
        box.put(TOPIC, alerts[1])
        assert box.depth == 7
        assert [i.message for i in box.peek(2)] == alerts[:2]
        assert (box.depth, box.dead) == (2, 5)


def test_depth_is_counted_from_the_file_at_open(tmp_path, make_alerts):
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, max_messages=5) as box:
        for a in make_alerts(1):
            box.put(TOPIC, a)
    raw = sqlite3.connect(path)  # the file changed while nobody owned it
    with raw:
        raw.executemany("INSERT INTO outbox (topic, payload, created_at) VALUES (?, '{}', 0)", [(TOPIC,)] * 3)
    raw.close()
    with Outbox(path, max_messages=5) as box:
        assert box.depth == 6
        box.put(TOPIC, {"new": 1})  # the bound holds against what is really there
        assert (box.depth, box.dropped) == (5, 2)
