"""The outbox and its sender when things go wrong on the device: a full disk, a stored
row that no longer decodes, a file with someone else's schema, a second process on the
same file, a shutdown with the network down, and a bug in the sender's own code.

The full disk is real where the tests may mount a 400 KiB tmpfs (root, as in CI); it
is also simulated everywhere with SQLite's ``max_page_count``, which makes SQLite
report the same ``SQLITE_FULL`` ("database or disk is full").
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_component.delivery.sender import OutboxPublisher
from edge_component.delivery.outbox_file import SCHEMA_VERSION, OutboxCorruptError, OutboxError
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.publisher import PublishError
from tests.edge.test_edge_delivery import FAST, TOPIC, Down, Recorder, Switch, make_alerts

REPO = Path(__file__).resolve().parents[2]
FULL = "database or disk is full"
PAD = "x" * 5000  # every padded alert needs new pages: a full database cannot take it


def padded(n_events: int) -> list[dict]:
    return [a | {"pad": PAD} for a in make_alerts(n_events)]


# ---------------------------------------------------------------- a full disk

class RealFullDisk:
    """The outbox on a 400 KiB tmpfs; ``fill()`` writes a file until ENOSPC."""

    def __init__(self, mount: Path):
        self.dir = mount
        self._filler = mount / "filler"

    def attach(self, box: Outbox) -> Outbox:
        return box

    def fill(self) -> None:
        with self._filler.open("wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            except OSError:
                pass
            try:
                fh.close()
            except OSError:
                pass

    def free(self) -> None:
        self._filler.unlink()


class PageLimit:
    """The outbox's own connection limited to the pages it has (``PRAGMA max_page_count``)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.box: Outbox | None = None

    def attach(self, box: Outbox) -> Outbox:
        self.box = box
        return box

    def fill(self) -> None:
        conn = self.box._conn
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")

    def free(self) -> None:
        self.box._conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture(params=["tmpfs", "max_page_count"])
def disk(request, tmp_path):
    if request.param == "max_page_count":
        yield PageLimit(tmp_path)
        return
    mount = tmp_path / "tiny"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a 400 KiB tmpfs for a real full disk ({exc}); max_page_count covers it")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 400 KiB tmpfs for a real full disk (needs root): {done.stderr.strip()}; "
                    "the max_page_count variant covers the same code")
    try:
        yield RealFullDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def test_full_disk_put_reports_the_real_error(disk):
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


def test_full_disk_alerts_are_held_in_memory_and_all_delivered_in_order(disk, caplog):
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


def test_full_disk_overflow_is_bounded_and_stored_at_close_if_it_can_be(disk, caplog):
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


def test_held_alerts_that_cannot_be_stored_at_close_are_reported_lost(tmp_path, caplog):
    disk = PageLimit(tmp_path)
    alert = padded(1)[0]
    pub = OutboxPublisher(disk.attach(Outbox(tmp_path / "outbox.sqlite")), Down(), **FAST)
    disk.fill()
    pub.publish(TOPIC, alert)
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        pub.close()
    lost = [r.getMessage() for r in caplog.records if "could not be stored" in r.getMessage()]
    assert len(lost) == 1 and alert["event_id"] in lost[0] and FULL in lost[0]


# ---------------------------------------------------------------- unreadable rows

def test_undecodable_rows_go_to_dead_letters_and_never_block_the_rest(tmp_path, caplog):
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
    with caplog.at_level(logging.ERROR, logger="edge_component.outbox"):
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
    assert [k[0] for k in kept] == bad_ids and kept[0][1] == b"{not json" and kept[1][1] == b"{\xff\""
    with Outbox(path) as box:
        assert box.dead == 3  # counted over the file's life


def test_peek_skips_dead_rows_and_still_fills_the_batch(tmp_path):
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


def test_sender_thread_survives_any_exception(tmp_path, caplog):
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


# ---------------------------------------------------------------- the file's schema

def test_foreign_schema_is_moved_aside_and_a_fresh_outbox_started(tmp_path, caplog):
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
    with caplog.at_level(logging.ERROR, logger="edge_component.outbox"):
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


# ---------------------------------------------------------------- one owner per file

HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from edge_component.delivery.outbox import Outbox
box = Outbox(sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


def test_a_second_owner_is_refused_and_a_dead_owner_leaves_no_stale_lock(tmp_path):
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


def test_depth_is_counted_from_the_file_at_open(tmp_path):
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


# ---------------------------------------------------------------- shutdown

def test_close_with_the_network_down_says_what_stays_queued(tmp_path, caplog):
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


def test_a_message_too_deep_to_encode_is_refused_as_publish_error(tmp_path):
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
