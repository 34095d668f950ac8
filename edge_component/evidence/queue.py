"""The durable queue of snapshot uploads: one small SQLite file next to the outbox
(``<state-dir>/evidence.sqlite``), opened with the outbox's discipline
(:func:`~edge_component.delivery.outbox_file.open_database` with this file's schema
check: quick_check, schema check before any write, WAL, ``synchronous=FULL``; one owner
per file through :func:`~edge_component.delivery.outbox_file.take_ownership`).

Table ``uploads``: ``id`` (autoincrement: order of arrival), ``event_id`` and ``file``
(unique together: later messages of an event name the same snapshot again), ``alert``
(the JSON of the alert that named the file; the update message is built from it),
``attempts`` (failed uploads so far), ``next_at`` (Unix seconds before which it is not
tried), ``created_at`` and ``finished_at`` (when it landed or was given up; NULL while
queued). A finished row is kept for :data:`KEEP_FINISHED_S` so that a later message of
the event naming the same file does not upload it again, then deleted.

A file SQLite calls corrupt, or whose tables are not this schema, is moved aside
(``<name>.corrupt-<UTC time>`` / ``.foreign-``) with an error log line and a fresh
queue starts: lost uploads cost evidence, never an alert.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_component.delivery.outbox_file import (
    OneTableSchema,
    OutboxCorruptError,
    OutboxError,
    OutboxSchemaError,
    open_database,
    quarantine,
    rollback,
    take_ownership,
)

log = logging.getLogger(__name__)

KEEP_FINISHED_S = 86400.0  # far longer than any event: its later messages name the file again

QUEUE_SCHEMA_VERSION = 1
WHAT = "evidence queue"
_COLUMNS = ("id", "event_id", "file", "alert", "attempts", "next_at", "created_at", "finished_at")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS uploads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL,
    file        TEXT    NOT NULL,
    alert       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     REAL    NOT NULL,
    created_at  REAL    NOT NULL,
    finished_at REAL,
    UNIQUE (event_id, file)
);
PRAGMA user_version = {QUEUE_SCHEMA_VERSION};
"""


class QueueSchemaError(OutboxSchemaError):
    """A valid SQLite file that is not an evidence queue of this version."""

    @staticmethod
    def describe(path: Path, reason: str, what: str = WHAT) -> str:
        return f"{what} {path} does not have the queue schema (version {QUEUE_SCHEMA_VERSION}): {reason}"


_TABLE = OneTableSchema("uploads", _COLUMNS, QUEUE_SCHEMA_VERSION, _SCHEMA, QueueSchemaError, WHAT)


def _open(path: Path, synchronous: str) -> sqlite3.Connection:
    return open_database(path, synchronous, check=_TABLE.check, create=_TABLE.create, what=WHAT)


@dataclass(frozen=True)
class Upload:
    """One queued upload: the snapshot ``file`` of ``event_id``, named by ``alert``."""

    id: int
    event_id: str
    file: str
    alert: dict[str, Any]
    attempts: int
    next_at: float


class UploadQueue:
    """The uploads still to do, in the SQLite file ``path``; any thread may use it.

    Raises :class:`~edge_component.delivery.outbox_file.OutboxError` when the file
    cannot be opened or used, or another owner holds its lock.
    """

    def __init__(self, path: str | Path, synchronous: str = "FULL"):
        self.path = Path(path)
        self._owner = take_ownership(self.path, self.path.with_name(self.path.name + ".lock"))
        try:
            try:
                self._conn = _open(self.path, synchronous)
            except OutboxCorruptError as exc:
                moved = quarantine(self.path, exc.kind)
                log.error("%s; moved it to %s and started an empty queue", exc, moved)
                self._conn = _open(self.path, synchronous)
        except BaseException:
            self._owner.close()
            raise
        self._lock = threading.Lock()

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                cur = self._conn.execute(sql, args)
                self._conn.execute("COMMIT")
                return cur.rowcount
            except sqlite3.Error as exc:
                rollback(self._conn)
                raise OutboxError(f"evidence queue {self.path}: {exc}") from exc

    def add(self, event_id: str, file: str, alert: dict[str, Any], now: float | None = None) -> bool:
        """Queue the upload of ``file`` for ``event_id`` (committed on return); False if
        it is already queued or finished."""
        now = time.time() if now is None else now
        return (
            self._write(
                "INSERT OR IGNORE INTO uploads (event_id, file, alert, next_at, created_at) VALUES (?, ?, ?, ?, ?)",
                (event_id, file, json.dumps(alert, separators=(",", ":")), now, now),
            )
            == 1
        )

    def due(self, now: float | None = None, limit: int = 8) -> list[Upload]:
        """Up to ``limit`` uploads whose ``next_at`` has come, earliest first."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, event_id, file, alert, attempts, next_at FROM uploads"
                " WHERE finished_at IS NULL AND next_at <= ? ORDER BY next_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
        out = []
        for id_, event_id, file, alert, attempts, next_at in rows:
            try:
                message = json.loads(alert)
            except (TypeError, ValueError):
                message = None
            if not isinstance(message, dict):
                log.error("evidence queue %s: upload %d (%s) is unreadable; dropped", self.path, id_, file)
                self.done(id_)
                continue
            out.append(Upload(id_, event_id, file, message, attempts, next_at))
        return out

    def next_at(self) -> float | None:
        """When the earliest queued upload is due (Unix seconds), or None if none is queued."""
        with self._lock:
            value = self._conn.execute("SELECT MIN(next_at) FROM uploads WHERE finished_at IS NULL").fetchone()[0]
        return None if value is None else float(value)

    def retry_at(self, upload_id: int, attempts: int, next_at: float) -> None:
        """Record a failed attempt: try again at ``next_at`` (Unix seconds)."""
        self._write("UPDATE uploads SET attempts = ?, next_at = ? WHERE id = ?", (attempts, next_at, upload_id))

    def done(self, upload_id: int, now: float | None = None) -> None:
        """Mark an upload that landed or was given up as finished; forget those finished
        more than :data:`KEEP_FINISHED_S` ago."""
        now = time.time() if now is None else now
        self._write("UPDATE uploads SET finished_at = ? WHERE id = ?", (now, upload_id))
        self._write("DELETE FROM uploads WHERE finished_at < ?", (now - KEEP_FINISHED_S,))

    def depth(self) -> int:
        """Uploads still to do."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM uploads WHERE finished_at IS NULL").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._owner.close()
