"""edge_component/delivery/outbox_recovery.py: a damaged outbox's readable rows are
salvaged, and stored messages that a crash or a damaged file took are counted and logged.

Damaged files are made both ways: with SQLite's own API (``writable_schema``, a NOT NULL
column holding NULL) and with raw bytes (a page overwritten, a WAL deleted or bit-flipped,
a main file truncated to zero)."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge_component.contracts.topics import alert_topic
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.sender import OutboxPublisher

REPO = Path(__file__).resolve().parents[3]
TOPIC = alert_topic("cam-test-01")
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}
PAGE = 4096


def _messages(n: int, pad: int = 200) -> list[dict]:
    return [{"event_id": f"ev-{i:04d}", "i": i, "pad": f"marker-{i:04d}-" + "x" * pad} for i in range(n)]


def _store(path: Path, messages: list[dict]) -> None:
    with Outbox(path) as box:
        for m in messages:
            box.put(TOPIC, m)


def _crash_after_storing(path: Path, messages: list[dict]) -> None:
    """Store ``messages`` in a process that then dies without closing: they stay in the WAL."""
    script = (
        "import json, os, sys; sys.path.insert(0, sys.argv[1])\n"
        "from edge_component.delivery.outbox import Outbox\n"
        "box = Outbox(sys.argv[2])\n"
        "for m in json.loads(sys.argv[3]): box.put(sys.argv[4], m)\n"
        "os._exit(0)\n"
    )
    import json

    subprocess.run(
        [sys.executable, "-c", script, str(REPO), str(path), json.dumps(messages), TOPIC], check=True, timeout=60
    )


def _drain(box: Outbox) -> list[dict]:
    out = []
    while items := box.peek(50):
        for item in items:
            out.append(item.message)
            box.ack(item.id)
    return out


# ---------------------------------------------------------------- item 2: salvage


def test_a_file_failing_quick_check_whose_rows_all_read_keeps_every_row(tmp_path, caplog):
    """Raw bytes over a free page: quick_check fails, a plain SELECT reads every payload.
    Every message is kept and sent; the damaged file is still moved aside."""
    path = tmp_path / "outbox.sqlite"
    messages = _messages(300)
    _store(path, messages)
    with Outbox(path) as box:  # free pages: the first 200 sent
        for item in box.peek(200):
            box.ack(item.id)
    raw = bytearray(path.read_bytes())
    trunk = int.from_bytes(raw[32:36], "big")  # the first freelist trunk page (file header)
    assert trunk > 0
    raw[(trunk - 1) * PAGE : trunk * PAGE] = bytes(range(256)) * (PAGE // 256)
    path.write_bytes(raw)
    assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone()[0] != "ok"

    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    assert box.quarantined is not None and box.quarantined.exists()
    assert "copied the 100 messages it could read" in caplog.text
    assert box.depth == 100 and box.lost == 0
    assert _drain(box) == messages[200:]
    box.close()


def test_a_damaged_page_of_the_outbox_loses_only_its_own_rows_and_counts_them(tmp_path, caplog, Recorder):
    """Raw bytes over one leaf page of the outbox table: the rows on other pages are
    salvaged, in order; the ids on the damaged page are counted as lost, logged, and in
    telemetry (``stats()["lost"]``)."""
    path = tmp_path / "outbox.sqlite"
    messages = _messages(300)
    _store(path, messages)
    raw = bytearray(path.read_bytes())
    page = raw.find(b"marker-0150-") // PAGE
    raw[page * PAGE : (page + 1) * PAGE] = b"\xa5" * PAGE
    path.write_bytes(raw)

    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    lost = box.lost
    assert 0 < lost < 30  # one page of ~16 rows, not the whole file
    assert box.depth + lost == 300
    assert f"{lost} stored messages are gone" in caplog.text
    transport = Recorder()
    pub = OutboxPublisher(box, transport, **FAST)
    assert pub.flush(10)
    sent = [m for _, m in transport.sent]
    assert messages[150] not in sent and len(sent) == 300 - lost
    assert sent == [m for m in messages if m in sent]  # in order
    assert pub.stats()["lost"] == lost
    pub.close()
    with Outbox(path) as again:  # counted once, kept across restarts
        assert again.lost == lost and again.depth == 0


def test_a_null_in_a_not_null_column_written_with_sqlites_api_is_salvaged_around(tmp_path):
    """SQLite's writable_schema lets a row hold NULL in a NOT NULL column: quick_check
    reports it; the other rows are salvaged and the bad one is counted lost."""
    path = tmp_path / "outbox.sqlite"
    messages = _messages(5, pad=10)
    _store(path, messages)
    conn = sqlite3.connect(path, isolation_level=None)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'outbox'", (sql.replace("NOT NULL", ""),))
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE outbox SET payload = NULL WHERE id = 3")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'outbox'", (sql,))
    conn.close()
    assert "NULL value in outbox.payload" in sqlite3.connect(path).execute("PRAGMA quick_check").fetchone()[0]

    box = Outbox(path)
    assert box.quarantined is not None and (box.depth, box.lost) == (4, 1)
    assert _drain(box) == [messages[i] for i in (0, 1, 3, 4)]
    box.close()


# ---------------------------------------------------------------- item 3: loss after a crash


def test_a_deleted_wal_after_a_crash_is_counted_as_lost(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    messages = _messages(7, pad=10)
    _store(path, messages[:3])
    _crash_after_storing(path, messages[3:])
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0
    wal.unlink()
    path.with_name(path.name + "-shm").unlink(missing_ok=True)
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    assert (box.depth, box.lost) == (3, 4)
    assert "4 stored messages are gone (ids 4-7)" in caplog.text
    new_id = box.put(TOPIC, {"event_id": "after"})
    assert new_id == 8  # a lost id is never reused
    box.close()
    with Outbox(path) as again:
        assert (again.depth, again.lost) == (4, 4)  # reported once


def test_a_bit_flipped_wal_after_a_crash_is_counted_as_lost(tmp_path, caplog):
    """SQLite drops WAL frames from the first bad checksum on, silently; the marks notice."""
    path = tmp_path / "outbox.sqlite"
    messages = _messages(8, pad=10)
    _crash_after_storing(path, messages)
    wal = path.with_name(path.name + "-wal")
    raw = bytearray(wal.read_bytes())
    frame = 24 + PAGE  # WAL header 32 bytes, frame header 24, page 4096
    at = 32 + 5 * frame + 24 + 100  # inside the sixth frame's page
    raw[at] ^= 0xFF
    wal.write_bytes(raw)
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    assert box.lost > 0 and box.depth + box.lost == 8
    assert f"{box.lost} stored messages are gone" in caplog.text
    assert _drain(box) == messages[: box.depth]
    box.close()


def test_a_main_file_truncated_to_zero_counts_only_the_unsent(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    _store(path, _messages(6, pad=10))
    with Outbox(path) as box:
        for item in box.peek(2):
            box.ack(item.id)
    path.write_bytes(b"")
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    assert (box.depth, box.lost) == (0, 4)
    assert "4 stored messages are gone (ids 3-6)" in caplog.text
    box.close()


def test_a_missing_file_is_a_loss_too(tmp_path):
    path = tmp_path / "outbox.sqlite"
    _store(path, _messages(3, pad=10))
    path.unlink()
    with Outbox(path) as box:
        assert (box.depth, box.lost) == (0, 3)


def test_ordinary_use_reports_no_loss(tmp_path, caplog):
    """Sent, dropped (outbox full) and unreadable messages are not lost ones."""
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, max_messages=5) as box:
        for m in _messages(12, pad=10):
            box.put(TOPIC, m)
        for item in box.peek(2):
            box.ack(item.id)
        box._conn.execute("UPDATE outbox SET payload = CAST(x'ff' AS BLOB) WHERE id = (SELECT MAX(id) FROM outbox)")
        box.peek(10)  # buries the unreadable one
        assert (box.dropped, box.dead) == (7, 1)
    _crash_after_storing(path, _messages(2, pad=10))
    with caplog.at_level(logging.ERROR, logger="edge_component.delivery"):
        box = Outbox(path)
    assert box.lost == 0 and box.depth == 4 and "gone" not in caplog.text
    box.close()


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_missing_or_garbled_marks_file_starts_afresh(tmp_path, damage):
    path = tmp_path / "outbox.sqlite"
    _store(path, _messages(3, pad=10))
    marks = path.with_name(path.name + ".ids")
    if damage == "missing":
        marks.unlink()
    else:
        marks.write_bytes(b"\x00garbage")
    with Outbox(path) as box:
        assert (box.depth, box.lost) == (3, 0)
    assert marks.read_text().split() == ["00000000000000000003", "00000000000000000000"]
