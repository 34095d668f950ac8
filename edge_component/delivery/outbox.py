"""Durable outbox: every alert is written to the device's disk before anything is sent,
and removed only after the broker has acknowledged it (DESIGN.md, decision 7).

One SQLite file in WAL mode (schema version :data:`SCHEMA_VERSION`, kept in
``PRAGMA user_version``) with three tables: ``outbox`` (``id`` autoincrement, ``topic``,
``payload`` as JSON text, ``created_at`` in Unix seconds, ``attempts``), ``meta`` (the
``dropped`` counter, kept across restarts) and ``dead_letters`` (rows that could not be
read back, with the reason). ``id`` order is send order; AUTOINCREMENT never reuses an
id, so a backlog read after a restart is still in order.

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
- A database file that SQLite calls corrupt, or whose tables are not this schema (an
  older or foreign file), is moved aside (``<name>.corrupt-<UTC time>`` or
  ``<name>.foreign-<UTC time>``, with its ``-wal``), the move is logged as an error
  naming both files, and a fresh outbox starts: a camera that refused to start would
  send no alert at all for weeks, and the old file is kept for whoever wants to recover
  it. ``on_corrupt="raise"`` raises :class:`OutboxCorruptError` instead. A file from
  before schema versions (``user_version`` 0 with exactly the first release's tables)
  is ours and is migrated in place, keeping its backlog.
- A stored row that cannot be read back (bit rot on an SD card: not UTF-8, not JSON, not
  a JSON object) is moved to ``dead_letters`` (kept, counted in :attr:`Outbox.dead`,
  logged with its id) so it never blocks the rows behind it.
- One process owns a file: an exclusive ``flock`` on ``<name>.lock`` is held for the
  Outbox's lifetime, so a second owner fails at once with :class:`OutboxError` instead
  of sending every message again. The kernel drops the lock when the process dies, so a
  crash leaves no stale lock. ``depth`` is counted from the file (``COUNT``) at open;
  with one owner, the count kept in memory from there on is exact.
- A full disk: ``put`` raises :class:`OutboxError` with SQLite's own reason ("database
  or disk is full"); the caller decides what to do with the message (the
  :class:`~edge_component.delivery.OutboxPublisher` holds it in memory). ``ack`` of a
  message the broker already has does not fail on a full disk: the row is hidden from
  :meth:`Outbox.peek` and deleted at the next write that succeeds (until then, a restart
  sends it again, which the Lambda's deduplication absorbs).

Any number of threads may use one :class:`Outbox`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
SCHEMA_VERSION = 2  # 1: outbox + meta (written with user_version 0); 2: + dead_letters
_CORRUPT_ERRORS = ("SQLITE_CORRUPT", "SQLITE_NOTADB")

_V1_TABLES = {
    "outbox": ("id", "topic", "payload", "created_at", "attempts"),
    "meta": ("key", "value"),
}
_TABLES = _V1_TABLES | {
    "dead_letters": ("id", "topic", "payload", "created_at", "attempts", "reason", "moved_at"),
}
_V1_SCHEMA = """
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
_V2_ADDITIONS = f"""
CREATE TABLE IF NOT EXISTS dead_letters (
    id         INTEGER PRIMARY KEY,  -- the id it had in outbox
    topic      BLOB,                 -- no type affinity: the bytes are kept as they were
    payload    BLOB,
    created_at REAL,
    attempts   INTEGER,
    reason     TEXT NOT NULL,
    moved_at   REAL NOT NULL
);
PRAGMA user_version = {SCHEMA_VERSION};
"""


class OutboxError(RuntimeError):
    """The outbox cannot store or read messages (closed, disk full, unreadable file, in use)."""


class OutboxCorruptError(OutboxError):
    """SQLite reports the outbox file as corrupt or not a database; ``path`` names it."""

    kind = "corrupt"  # the moved-aside file is named <name>.<kind>-<UTC time>

    def __init__(self, path: Path, reason: str):
        super().__init__(self.describe(path, reason))
        self.path = path
        self.reason = reason

    @staticmethod
    def describe(path: Path, reason: str) -> str:
        return f"outbox database {path} is corrupt: {reason}"


class OutboxSchemaError(OutboxCorruptError):
    """A valid SQLite file whose tables are not this outbox's schema (older, newer or foreign)."""

    kind = "foreign"

    @staticmethod
    def describe(path: Path, reason: str) -> str:
        return f"outbox database {path} does not have the outbox schema (version {SCHEMA_VERSION}): {reason}"


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
    :class:`OutboxError` when the file cannot be used or another owner holds it.
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
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.max_messages = max_messages
        self.synchronous = synchronous
        self.quarantined: Path | None = None  # where a corrupt or foreign file was moved, if it was
        self._lock = threading.Lock()
        # id -> None (acknowledged) or the reason it is dead: rows a full disk kept us from
        # deleting or moving. peek() skips them; the next write that succeeds applies them.
        self._pending: dict[int, str | None] = {}
        self._write_failing = False
        self._conn: sqlite3.Connection | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owner = self._take_ownership()
        try:
            try:
                self._conn = self._open()
            except OutboxCorruptError as exc:
                if on_corrupt == "raise":
                    raise
                self.quarantined = self._quarantine(exc.kind)
                log.error("%s; moved it to %s and started an empty outbox (its messages are not sent)",
                          exc, self.quarantined)
                self._conn = self._open()
            self._depth, self._dropped, self._dead = self._read_counts()
        except BaseException:
            self.close()
            raise

    def _take_ownership(self):
        """Open ``<name>.lock`` and hold an exclusive flock on it (released by close() or
        by the kernel when the process dies); OutboxError if another owner holds it."""
        try:
            fh = open(self.lock_path, "a+", encoding="ascii")
        except OSError as exc:
            raise OutboxError(f"cannot open the lock file {self.lock_path} of outbox {self.path}: {exc}") from exc
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise OutboxError(
                f"outbox {self.path} is in use: another process (pid {holder}) or another Outbox in this one "
                f"holds its lock {self.lock_path}; one owner per file, or every message would be sent twice"
            ) from None
        except OSError as exc:
            fh.close()
            raise OutboxError(f"cannot lock {self.lock_path} for outbox {self.path}: {exc}") from exc
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
        except OSError:
            pass  # the pid is only for the message a second owner gets
        return fh

    def _open(self) -> sqlite3.Connection:
        try:
            # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below.
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox database {self.path}: {exc}") from exc
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxCorruptError(self.path, f"quick_check: {check}")
            migrate = self._check_schema(conn)  # before anything writes to a file that may not be ours
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OutboxError(f"outbox database {self.path}: journal_mode is {mode}, WAL is required")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            if migrate:
                conn.executescript(f"BEGIN IMMEDIATE; {_V1_SCHEMA} {_V2_ADDITIONS} COMMIT;")
        except sqlite3.DatabaseError as exc:
            _rollback(conn)
            conn.close()
            if getattr(exc, "sqlite_errorname", "") in _CORRUPT_ERRORS:
                raise OutboxCorruptError(self.path, str(exc)) from exc
            raise OutboxError(f"cannot use outbox database {self.path}: {exc}") from exc
        except OutboxError:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> bool:
        """True if the file needs the schema created or migrated; OutboxSchemaError if it
        is not an outbox of this or an earlier version."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'")]
        tables = {name: tuple(c[1] for c in conn.execute("PRAGMA table_info(\"%s\")" % name.replace('"', '""')))
                  for name in names}
        if version == SCHEMA_VERSION and tables == _TABLES:
            return False
        if version == 0 and tables in ({}, _V1_TABLES):  # new, or the first release's file
            return True
        found = ", ".join(f"{n}({', '.join(c)})" for n, c in sorted(tables.items())) or "no tables"
        raise OutboxSchemaError(self.path, f"found schema version {version} with {found}")

    def _quarantine(self, kind: str) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.{kind}-{stamp}")
        n = 1
        while target.exists():  # never overwrite an earlier moved-aside file
            n += 1
            target = self.path.with_name(f"{self.path.name}.{kind}-{stamp}-{n}")
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.replace(target.with_name(target.name + suffix))
        self.path.replace(target)
        return target

    def _read_counts(self) -> tuple[int, int, int]:
        with self._lock:
            conn = self._live()
            depth = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            dropped = conn.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]
            dead = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
        return int(depth), int(dropped), int(dead)

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    def put(self, topic: str, message: dict[str, Any]) -> int:
        """Store ``message`` (a JSON object) for ``topic`` durably; return its id.

        When the outbox already holds ``max_messages``, the oldest are deleted in the same
        transaction and added to ``dropped``. Raises ValueError/TypeError for a message
        that is not a JSON object, OutboxError (with SQLite's reason, e.g. "database or
        disk is full") when it cannot be stored.
        """
        if not isinstance(message, dict):
            raise TypeError(f"an outbox message must be a JSON object (dict), got {type(message).__name__}")
        try:
            payload = json.dumps(message, separators=(",", ":"), allow_nan=False)
        except RecursionError as exc:  # nested too deep for the encoder: not a storable message either
            raise ValueError(f"message is nested too deeply to encode as JSON: {exc}") from None
        with self._lock:
            conn = self._live()
            self._apply_pending(conn)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    new_id = conn.execute(
                        "INSERT INTO outbox (topic, payload, created_at) VALUES (?, ?, ?)",
                        (topic, payload, time.time()),
                    ).lastrowid
                    over = self._depth + 1 - self.max_messages  # exact: one owner, counted at open
                    victims: list[tuple[int, bytes]] = []
                    if over > 0:
                        rows = conn.execute("SELECT id, CAST(payload AS BLOB) FROM outbox ORDER BY id LIMIT ?",
                                            (over + len(self._pending),)).fetchall()
                        victims = [r for r in rows if r[0] not in self._pending][:over]
                        conn.executemany("DELETE FROM outbox WHERE id = ?", [(v[0],) for v in victims])
                        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (len(victims),))
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled the transaction back already (it does on a full
                    # disk); a second ROLLBACK would replace the real error with its own.
                    _rollback(conn)
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
        """Up to ``n`` stored messages, oldest first, without removing them. A row that
        cannot be read back is moved to ``dead_letters`` and the next one taken instead."""
        out: list[OutboxItem] = []
        with self._lock:
            conn = self._live()
            self._apply_pending(conn)
            after = 0
            while len(out) < n:
                try:
                    rows = conn.execute(
                        "SELECT id, CAST(topic AS BLOB), CAST(payload AS BLOB), created_at, attempts FROM outbox"
                        " WHERE id > ? ORDER BY id LIMIT ?", (after, n - len(out) + len(self._pending)),
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
                for item_id, topic, payload, created_at, attempts in rows:
                    after = item_id
                    if item_id in self._pending or len(out) == n:
                        continue
                    try:
                        message = json.loads(bytes(payload).decode("utf-8"))
                        if not isinstance(message, dict):
                            raise ValueError(f"payload is JSON {type(message).__name__}, not an object")
                        out.append(OutboxItem(item_id, bytes(topic).decode("utf-8"), message, created_at, attempts))
                    except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                        self._bury(conn, item_id, f"{type(exc).__name__}: {exc}")
                if not rows or len(out) == n:
                    break
        return out

    def _bury(self, conn: sqlite3.Connection, item_id: int, reason: str) -> None:
        """Move unreadable row ``item_id`` to dead_letters (or, if the disk refuses, hide it
        until a write succeeds). Called with the lock held."""
        self._pending[item_id] = reason
        self._dead += 1
        self._depth -= 1
        moved = self._apply_pending(conn)
        log.error("outbox %s: message id %d cannot be read (%s); %s (%d dead in all)", self.path, item_id, reason,
                  "moved it to the dead_letters table of that file" if moved else
                  "skipping it; it moves to the dead_letters table once the file can be written", self._dead)

    def _apply_pending(self, conn: sqlite3.Connection) -> bool:
        """Delete acknowledged rows and move dead ones that an earlier write failure left
        in place; True if none is left. Called with the lock held."""
        if not self._pending:
            return True
        now = time.time()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for item_id, reason in self._pending.items():
                    if reason is not None:
                        conn.execute(
                            "INSERT OR REPLACE INTO dead_letters (id, topic, payload, created_at, attempts, reason, moved_at)"
                            " SELECT id, topic, payload, created_at, attempts, ?, ? FROM outbox WHERE id = ?",
                            (reason, now, item_id))
                    conn.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            if not self._write_failing:
                log.warning("outbox %s cannot be written (%s): %d sent or unreadable messages stay in the file "
                            "until it can (a restart before then sends the sent ones again)",
                            self.path, exc, len(self._pending))
                self._write_failing = True
            return False
        if self._write_failing:
            log.info("outbox %s can be written again; removed %d sent or unreadable messages",
                     self.path, len(self._pending))
            self._write_failing = False
        self._pending.clear()
        return True

    def ack(self, item_id: int) -> bool:
        """Delete message ``item_id`` after the broker acknowledged it; False if it was
        already gone (acknowledged before, or dropped while it was being sent). On a full
        disk the row is kept but never returned by :meth:`peek` again (see the module doc)."""
        with self._lock:
            conn = self._live()
            if item_id in self._pending:
                return False
            try:
                exists = conn.execute("SELECT 1 FROM outbox WHERE id = ?", (item_id,)).fetchone() is not None
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
            if not exists:
                return False
            self._pending[item_id] = None
            self._depth -= 1
            self._apply_pending(conn)
        return True

    def record_attempt(self, item_id: int) -> None:
        """Count one failed send of ``item_id`` (shown as ``attempts`` by :meth:`peek`)."""
        with self._lock:
            try:
                self._live().execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot update outbox {self.path}: {exc}") from exc

    @property
    def depth(self) -> int:
        """Messages stored and not yet acknowledged (the last count, also after close)."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox was full, over the file's whole life."""
        return self._dropped

    @property
    def dead(self) -> int:
        """Stored messages that could not be read back (in ``dead_letters``), over the file's life."""
        return self._dead

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Close the file and release its lock (idempotent). Unsent messages stay in it
        for the next start."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._owner is not None:
                self._owner.close()  # closing the descriptor releases the flock
                self._owner = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done so itself."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the error that brought us here is the one to report


def _describe(payload: bytes) -> str:
    """``event_id/event_type#sequence`` of an alert payload, for the log of what was dropped."""
    try:
        msg = json.loads(payload)
        return f"{msg.get('event_id')}/{msg.get('event_type')}#{msg.get('sequence')}"
    except (ValueError, AttributeError):
        return "(unreadable payload)"
