"""The outbox's file (edge_component/delivery/outbox_file.py): corrupt and foreign files,
migration, one owner."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

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


# ---------------------------------------------------------------- starting on a full disk


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 400 KiB tmpfs (a real filesystem that fills up), and ``fill()`` / ``free()`` for it."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.decode().strip()}")
    filler = mount / "filler"

    def fill() -> None:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)

    try:
        yield SimpleNamespace(dir=mount, fill=fill, free=filler.unlink)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_an_empty_state_dir_on_a_full_disk_starts_and_holds_alerts_in_memory(tiny_tmpfs, Recorder, make_alerts, caplog):
    """No outbox file yet and no byte free: the outbox opens (no raw OSError from the
    lock file's pid line), alerts are held in memory and sent, and once there is room
    the outbox stores again."""
    tiny_tmpfs.fill()
    alerts = make_alerts(2)
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(tiny_tmpfs.dir / "outbox.sqlite")
    assert box.depth == 0 and box.peek(5) == []
    assert "cannot write outbox database" in caplog.text and "opened it without writing" in caplog.text
    transport = Recorder()
    pub = OutboxPublisher(box, transport, **FAST)
    for a in alerts[:3]:
        pub.publish(TOPIC, a)
    assert pub.flush(10) and [m for _, m in transport.sent] == alerts[:3]
    tiny_tmpfs.free()
    pub.publish(TOPIC, alerts[3])  # the schema is created now, and the alert stored
    assert pub.stats()["unstored"] == 0
    assert pub.flush(10) and [m for _, m in transport.sent] == alerts[:4]
    pub.close()
    with Outbox(tiny_tmpfs.dir / "outbox.sqlite") as again:
        assert again.depth == 0  # the acknowledged one is gone


def test_a_backlog_on_a_full_disk_is_sent_and_new_alerts_held(tiny_tmpfs, Recorder, make_alerts):
    """Alerts stored by an earlier run, then the disk filled while the device was off:
    the outbox opens without writing, the backlog goes out first, new alerts are held in
    memory and go out after it."""
    path = tiny_tmpfs.dir / "outbox.sqlite"
    alerts = make_alerts(3)
    with Outbox(path) as box:
        for a in alerts[:6]:
            box.put(TOPIC, a)
    tiny_tmpfs.fill()
    box = Outbox(path)
    assert box.depth == 6
    transport = Recorder()
    pub = OutboxPublisher(box, transport, **FAST)
    pub.publish(TOPIC, alerts[6])
    assert pub.stats()["unstored"] == 1
    assert pub.flush(10)
    assert [m for _, m in transport.sent] == alerts[:7]
    pub.close()


def test_a_new_process_opens_a_full_disks_backlog_without_a_traceback(tiny_tmpfs, make_alerts):
    """The lock file cannot take its pid line, the outbox cannot be migrated or checkpointed:
    the process still starts, not exit 2 and not a traceback."""
    path = tiny_tmpfs.dir / "outbox.sqlite"
    with Outbox(path) as box:
        for a in make_alerts(1):
            box.put(TOPIC, a)
    path.with_name(path.name + ".lock").unlink()  # a fresh lock file needs a block
    tiny_tmpfs.fill()
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from edge_component.delivery.outbox import Outbox\n"
        "box = Outbox(sys.argv[2]); print(box.depth, [i.message['event_type'] for i in box.peek(5)]); box.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(REPO), str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 ['start', 'update', 'end']"
    assert "Traceback" not in proc.stderr
