"""The outbox's file (edge_component/delivery/outbox_file.py): corrupt and foreign files,
migration, one owner."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge_component.contracts.topics import alert_topic
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.outbox_file import (
    SCHEMA_VERSION,
    OutboxCorruptError,
    OutboxError,
)
from edge_component.delivery.sender import OutboxPublisher

REPO = Path(__file__).resolve().parents[3]
THING = "cam-test-01"
TOPIC = alert_topic(THING)
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}  # backoff for tests; defaults are 0.5 s .. 30 s
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from edge_component.delivery.outbox import Outbox
box = Outbox(sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


def test_corrupt_outbox_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"not a database, a camera's bad day " * 200)
    with pytest.raises(OutboxCorruptError, match=str(path)) as err:
        Outbox(path, on_corrupt="raise")
    assert err.value.path == path and "not a database" in err.value.reason

    with Outbox(tmp_path / "pages.sqlite") as box:  # a real outbox with a damaged page
        for i in range(300):
            box.put(TOPIC, {"i": i, "pad": "x" * 200})
    with (tmp_path / "pages.sqlite").open("r+b") as fh:
        fh.seek(4096 * 3)
        fh.write(bytes(range(256)) * 32)
    with pytest.raises(OutboxCorruptError, match="pages.sqlite"):
        Outbox(tmp_path / "pages.sqlite", on_corrupt="raise")


def test_corrupt_outbox_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog, make_alerts):
    path = tmp_path / "outbox.sqlite"
    garbage = b"\x00garbage" * 1000
    path.write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    assert box.quarantined is not None and box.quarantined.read_bytes() == garbage  # kept, not deleted
    assert any(str(path) in r.getMessage() and str(box.quarantined) in r.getMessage() for r in caplog.records)
    box.put(TOPIC, make_alerts(1)[0])
    assert box.depth == 1
    box.close()


def test_foreign_schema_is_moved_aside_and_a_fresh_outbox_started(tmp_path, caplog, Recorder, make_alerts):
    path = tmp_path / "outbox.sqlite"
    raw = sqlite3.connect(path)  # someone else's table called outbox, without our columns
    raw.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, topic TEXT, payload TEXT)")
    raw.execute("INSERT INTO outbox (topic, payload) VALUES ('t', '{\"event_id\": \"old\"}')")
    raw.commit()
    raw.close()
    original = path.read_bytes()
    with pytest.raises(OutboxCorruptError, match="schema"):
        Outbox(path, on_corrupt="raise")
    assert path.read_bytes() == original  # refused without writing to it
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    assert box.quarantined is not None and box.quarantined.read_bytes() == original
    assert any(str(path) in r.getMessage() and str(box.quarantined) in r.getMessage() for r in caplog.records)
    transport = Recorder()
    pub = OutboxPublisher(box, transport, **FAST)
    alert = make_alerts(1)[0]
    pub.publish(TOPIC, alert)
    assert pub.flush(5)
    assert [m for _, m in transport.sent] == [alert]
    pub.close()


def test_schema_from_a_newer_version_is_not_used(tmp_path):
    path = tmp_path / "outbox.sqlite"
    Outbox(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(OutboxCorruptError, match=f"version {SCHEMA_VERSION + 1}"):
        Outbox(path, on_corrupt="raise")


def test_outbox_from_before_schema_versions_is_migrated_keeping_its_backlog(tmp_path):
    path = tmp_path / "outbox.sqlite"
    raw = sqlite3.connect(path)  # what the first release wrote (user_version 0)
    raw.executescript("""
        PRAGMA journal_mode=WAL;
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload TEXT NOT NULL,
                             created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta (key, value) VALUES ('dropped', 7);
        INSERT INTO outbox (topic, payload, created_at) VALUES ('vigil/cam-test-01/alerts', '{"k": 1}', 0);
    """)
    raw.close()
    with Outbox(path) as box:
        assert box.quarantined is None
        assert (box.depth, box.dropped, box.dead) == (1, 7, 0)
        assert [i.message for i in box.peek(5)] == [{"k": 1}]
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_a_second_owner_is_refused_and_a_dead_owner_leaves_no_stale_lock(tmp_path, make_alerts):
    path = tmp_path / "outbox.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(REPO), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(OutboxError, match="another process") as err:
            Outbox(path)
        assert str(path) in str(err.value) and str(holder.pid) in str(err.value)
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        holder.wait(10)
    with Outbox(path) as box:
        with pytest.raises(OutboxError, match="another process"):
            Outbox(path)  # a second Outbox in the same process is a second owner too
        box.put(TOPIC, make_alerts(1)[0])
    with Outbox(path) as box:  # released by close()
        assert box.depth == 1
