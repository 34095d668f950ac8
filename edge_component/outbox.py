"""Durable outbox: every alert is written to the device's disk before anything is sent,
and removed only after the broker has acknowledged it (DESIGN.md, decision 7).

One SQLite file in WAL mode with one table of messages (``id`` autoincrement, ``topic``,
``payload`` as JSON text, ``created_at`` in Unix seconds, ``attempts``) and a ``meta``
table that keeps the ``dropped`` counter across restarts. ``id`` order is send order;
AUTOINCREMENT never reuses an id, so a backlog read after a restart is still in order.

Choices, and why:

- ``synchronous=FULL`` by default. In WAL mode ``NORMAL`` survives a crash of the
  process but can lose the last commits when the power goes (the WAL is not synced on
  each commit); ``FULL`` syncs it, so a ``put()`` that returned survives a power cut.
  A camera's power is cut often enough (by storms, by unplugging, by an intruder), and
  alerts come a few a minute at most, so the cost of one fsync per alert does not matter
  here (``benchmarks/bench_outbox.py`` measures it).
- Bounded by ``max_messages``; when full, the OLDEST messages are dropped, counted and
  logged by ``event_id``. A device that has queued 10,000 alerts has been offline for a
  long time; what its user needs when it comes back is what is happening now. Refusing
  new messages would keep days-old alerts and lose the intrusion in progress.
- A database file that SQLite calls corrupt is moved aside (``<name>.corrupt-<UTC time>``,
  with its ``-wal``), the move is logged as an error naming both files, and a fresh
  outbox starts: a camera that refused to start would send no alert at all for weeks,
  and the old file is kept for whoever wants to recover it. ``on_corrupt="raise"``
  raises :class:`OutboxCorruptError` instead.

One process owns a file (the depth is counted in memory); any number of threads may
use one :class:`Outbox`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
_CORRUPT_ERRORS = ("SQLITE_CORRUPT", "SQLITE_NOTADB")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at REAL    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0);
"""


class OutboxError(RuntimeError):
    """The outbox cannot store or read messages (closed, disk full, unreadable file)."""


class OutboxCorruptError(OutboxError):
    """SQLite reports the outbox file as corrupt or not a database; ``path`` names it."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"outbox database {path} is corrupt: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class OutboxItem:
    """One stored message. ``created_at`` is Unix seconds; ``attempts`` counts failed sends."""

    id: int
    topic: str
    message: dict[str, Any]
    created_at: float
    attempts: int


class Outbox:
    """A bounded, durable FIFO of ``(topic, message)`` in the SQLite file ``path``.

    ``put`` commits before it returns; ``peek`` reads oldest first without removing;
    ``ack`` removes one message once the broker has acknowledged it. Raises
    :class:`OutboxCorruptError` (only with ``on_corrupt="raise"``) or
    :class:`OutboxError` when the file cannot be used.
    """

    def __init__(
        self,
        path: str | Path,
        max_messages: int = 10_000,
        *,
        synchronous: str = "FULL",
        on_corrupt: Literal["quarantine", "raise"] = "quarantine",
    ):
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        if on_corrupt not in ("quarantine", "raise"):
            raise ValueError(f"on_corrupt must be 'quarantine' or 'raise', got {on_corrupt!r}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.synchronous = synchronous
        self.quarantined: Path | None = None  # where a corrupt file was moved, if it was
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn: sqlite3.Connection | None = self._open()
        except OutboxCorruptError as exc:
            if on_corrupt == "raise":
                raise
            self.quarantined = self._quarantine()
            log.error("%s; moved it to %s and started an empty outbox (its messages are not sent)",
                      exc, self.quarantined)
            self._conn = self._open()
        self._depth, self._dropped = self._read_counts()

    def _open(self) -> sqlite3.Connection:
        try:
            # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below.
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox database {self.path}: {exc}") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OutboxError(f"outbox database {self.path}: journal_mode is {mode}, WAL is required")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxCorruptError(self.path, f"quick_check: {check}")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if getattr(exc, "sqlite_errorname", "") in _CORRUPT_ERRORS:
                raise OutboxCorruptError(self.path, str(exc)) from exc
            raise OutboxError(f"cannot use outbox database {self.path}: {exc}") from exc
        except OutboxError:
            conn.close()
            raise
        return conn

    def _quarantine(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():  # never overwrite an earlier corrupt file
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.replace(target.with_name(target.name + suffix))
        self.path.replace(target)
        return target

    def _read_counts(self) -> tuple[int, int]:
        with self._lock:
            conn = self._live()
            depth = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            dropped = conn.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]
        return int(depth), int(dropped)

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    def put(self, topic: str, message: dict[str, Any]) -> int:
        """Store ``message`` (JSON-serialisable) for ``topic`` durably; return its id.

        When the outbox already holds ``max_messages``, the oldest are deleted in the same
        transaction and added to ``dropped``. Raises ValueError/TypeError for a message
        that is not JSON, OutboxError when it cannot be stored.
        """
        payload = json.dumps(message, separators=(",", ":"), allow_nan=False)
        with self._lock:
            conn = self._live()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    new_id = conn.execute(
                        "INSERT INTO outbox (topic, payload, created_at) VALUES (?, ?, ?)",
                        (topic, payload, time.time()),
                    ).lastrowid
                    over = self._depth + 1 - self.max_messages
                    victims: list[tuple[int, str]] = []
                    if over > 0:
                        victims = conn.execute(
                            "SELECT id, payload FROM outbox ORDER BY id LIMIT ?", (over,)).fetchall()
                        conn.executemany("DELETE FROM outbox WHERE id = ?", [(v[0],) for v in victims])
                        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (len(victims),))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot store message in outbox {self.path}: {exc}") from exc
            self._depth += 1 - len(victims)
            self._dropped += len(victims)
            dropped_total = self._dropped
        for victim_id, victim_payload in victims:
            log.warning("outbox %s full (%d messages): dropped the oldest, id %d %s (%d dropped in all)",
                        self.path, self.max_messages, victim_id, _describe(victim_payload), dropped_total)
        return int(new_id)

    def peek(self, n: int = 1) -> list[OutboxItem]:
        """Up to ``n`` stored messages, oldest first, without removing them."""
        with self._lock:
            try:
                rows = self._live().execute(
                    "SELECT id, topic, payload, created_at, attempts FROM outbox ORDER BY id LIMIT ?", (n,)
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
        return [OutboxItem(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def ack(self, item_id: int) -> bool:
        """Delete message ``item_id`` after the broker acknowledged it; False if it was
        already gone (acknowledged before, or dropped while it was being sent)."""
        with self._lock:
            try:
                deleted = self._live().execute("DELETE FROM outbox WHERE id = ?", (item_id,)).rowcount
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot delete message {item_id} from outbox {self.path}: {exc}") from exc
            self._depth -= deleted
        return deleted == 1

    def record_attempt(self, item_id: int) -> None:
        """Count one failed send of ``item_id`` (shown as ``attempts`` by :meth:`peek`)."""
        with self._lock:
            try:
                self._live().execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot update outbox {self.path}: {exc}") from exc

    @property
    def depth(self) -> int:
        """Messages stored and not yet acknowledged."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox was full, over the file's whole life."""
        return self._dropped

    def close(self) -> None:
        """Close the file (idempotent). Unsent messages stay in it for the next start."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(payload: str) -> str:
    """``event_id/event_type#sequence`` of an alert payload, for the log of what was dropped."""
    try:
        msg = json.loads(payload)
        return f"{msg.get('event_id')}/{msg.get('event_type')}#{msg.get('sequence')}"
    except (ValueError, AttributeError):
        return "(unreadable payload)"
