"""Durable outbox: every alert is written to the device's disk before anything is sent,
and removed only after the broker has acknowledged it.

One SQLite file in WAL mode (schema version
:data:`~edge_component.delivery.outbox_file.SCHEMA_VERSION`, kept in
``PRAGMA user_version``) with three tables: ``outbox`` (``id`` autoincrement, ``topic``,
``payload`` as JSON text, ``created_at`` in Unix seconds, ``attempts``), ``meta`` (the
``dropped`` counter, kept across restarts) and ``dead_letters`` (rows that could not be
read back, with the reason, and ids found lost, without payload). ``id`` order is send
order; AUTOINCREMENT never reuses an id, so a backlog read after a restart is in order.

Choices, and why:

- ``synchronous=FULL`` by default: in WAL mode ``NORMAL`` can lose the last commits when
  the power goes (the WAL is not synced per commit); ``FULL`` syncs it, so a ``put()``
  that returned survives a power cut, which a camera sees often (storms, unplugging, an
  intruder). Alerts come a few a minute at most: one fsync each does not matter here.
- Bounded by ``max_messages``; when full, the OLDEST messages are dropped, counted and
  logged by ``event_id``. A device that has queued 10,000 alerts has been offline for a
  long time; what its user needs when it comes back is what is happening now. Refusing
  new messages would keep days-old alerts and lose the intrusion in progress.
- A stored row that cannot be read back (bit rot on an SD card: not UTF-8, not JSON, not
  a JSON object) is moved to ``dead_letters`` (kept, counted in :attr:`Outbox.dead`,
  logged with its id) so it never blocks the rows behind it.
- One process owns a file (see :mod:`.outbox_file`, which also says what happens to a
  corrupt, foreign or unwritable file): ``depth`` is counted from the file at open; with
  one owner, the count in memory is exact. :mod:`.outbox_recovery` finds lost messages.
- A full disk: ``put`` raises :class:`OutboxError` with SQLite's reason ("database or
  disk is full"); the :class:`~edge_component.delivery.sender.OutboxPublisher` holds the
  message in memory. ``ack`` does not fail: the row is hidden from :meth:`Outbox.peek` and
  deleted at the next write that succeeds (a restart before then sends it again, which
  the Lambda's deduplication absorbs).

Any number of threads may use one :class:`Outbox`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .outbox_file import OutboxError, create_schema, open_outbox, rollback, take_ownership
from .outbox_recovery import IdMarks, done_through, read_counts

log = logging.getLogger(__name__)

SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")


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
        self._lock = threading.Lock()
        # id -> None (acknowledged) or the reason it is dead: rows a full disk kept us from
        # deleting or moving. peek() skips them; the next write that succeeds applies them.
        self._pending: dict[int, str | None] = {}
        self._write_failing = False
        self._conn: sqlite3.Connection | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owner = take_ownership(self.path, self.lock_path)
        self._marks = IdMarks(self.path.with_name(self.path.name + ".ids"))
        try:
            # quarantined: where a corrupt or foreign file was moved; needs_schema: a new file on a full disk
            opened = open_outbox(self.path, synchronous, on_corrupt, self._marks)
            self._conn, self._needs_schema, self.quarantined = opened
            counts = (0,) * 5 if self._needs_schema else read_counts(self._conn)  # depth, dropped, dead, lost, ids
            self._depth, self._dropped, self._dead, self._lost, self._stored = counts
        except BaseException:
            self.close()
            raise

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
                if self._needs_schema:
                    create_schema(conn)
                    self._needs_schema = False
                conn.execute("BEGIN IMMEDIATE")
                try:
                    new_id = conn.execute(
                        "INSERT INTO outbox (topic, payload, created_at) VALUES (?, ?, ?)",
                        (topic, payload, time.time()),
                    ).lastrowid
                    over = self._depth + 1 - self.max_messages  # exact: one owner, counted at open
                    victims: list[tuple[int, bytes]] = []
                    if over > 0:
                        rows = conn.execute(
                            "SELECT id, CAST(payload AS BLOB) FROM outbox ORDER BY id LIMIT ?",
                            (over + len(self._pending),),
                        ).fetchall()
                        victims = [r for r in rows if r[0] not in self._pending][:over]
                        conn.executemany("DELETE FROM outbox WHERE id = ?", [(v[0],) for v in victims])
                        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (len(victims),))
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled the transaction back already (it does on a full
                    # disk); a second ROLLBACK would replace the real error with its own.
                    rollback(conn)
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot store message in outbox {self.path}: {exc}") from exc
            self._depth += 1 - len(victims)
            self._dropped += len(victims)
            dropped_total = self._dropped
            self._stored = int(new_id)
            self._marks.write(self._stored, done_through(conn, self._stored), sync=self.synchronous != "NORMAL")
        for victim_id, victim_payload in victims:
            log.warning(
                "outbox %s full (%d messages): dropped the oldest, id %d %s (%d dropped in all)",
                self.path,
                self.max_messages,
                victim_id,
                _describe(victim_payload),
                dropped_total,
            )
        return int(new_id)

    def put_first(self, messages: list[tuple[str, str, float]]) -> int:
        """Store ``messages`` (``(topic, payload JSON text, created_at)``, oldest first)
        ahead of the backlog the file holds, in one transaction: the backlog's rows are
        stored again after them with new ids (keeping their bytes, ``created_at`` and
        ``attempts``). A message whose topic and payload equal a backlog row's is skipped
        (it is still to be sent). For the handover journal's replay at start
        (:mod:`.handover`), before anything is sent. If the total is over
        ``max_messages`` the oldest replayed messages are left out (logged), never the
        backlog. Returns how many were stored; OutboxError if they cannot be."""
        with self._lock:
            conn = self._live()
            if self._pending or self._needs_schema:
                # Only at start: a new file on a full disk cannot take them, and rows
                # waiting to be deleted must not be stored again.
                if self._needs_schema and messages:
                    raise OutboxError(f"outbox {self.path} cannot be written: replayed messages not stored")
                if self._pending:
                    raise OutboxError(f"outbox {self.path}: put_first is for the start, before anything is sent")
                return 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    backlog = conn.execute(
                        "SELECT id, topic, payload, created_at, attempts FROM outbox ORDER BY id"
                    ).fetchall()
                    waiting = {(t, p) for _, t, p, _, _ in backlog}
                    fresh = [m for m in messages if (m[0], m[1]) not in waiting]
                    room = max(0, self.max_messages - len(backlog))
                    left_out = len(fresh) - room if len(fresh) > room else 0
                    fresh = fresh[left_out:]
                    if fresh:
                        # The backlog's old ids leave the file: mark them done first, so a
                        # crash around the commit is not counted as a loss (outbox_recovery).
                        self._marks.write(self._stored, self._stored, sync=True)
                        conn.execute("DELETE FROM outbox")
                        conn.executemany("INSERT INTO outbox (topic, payload, created_at) VALUES (?, ?, ?)", fresh)
                        conn.executemany(
                            "INSERT INTO outbox (topic, payload, created_at, attempts) VALUES (?, ?, ?, ?)",
                            [row[1:] for row in backlog],
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    rollback(conn)
                    raise
            except sqlite3.Error as exc:
                self._marks.write(self._stored, done_through(conn, self._stored), sync=True)  # rolled back
                raise OutboxError(f"cannot store replayed messages in outbox {self.path}: {exc}") from exc
            if fresh:
                self._depth += len(fresh)
                self._stored = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0]
                self._marks.write(self._stored, done_through(conn, self._stored), sync=self.synchronous != "NORMAL")
        if left_out:
            log.warning(
                "outbox %s: %d replayed messages left out, the oldest: no room beside the %d stored (at most %d)",
                self.path,
                left_out,
                len(backlog),
                self.max_messages,
            )
        return len(fresh)

    def peek(self, n: int = 1) -> list[OutboxItem]:
        """Up to ``n`` stored messages, oldest first, without removing them. A row that
        cannot be read back is moved to ``dead_letters`` and the next one taken instead."""
        out: list[OutboxItem] = []
        with self._lock:
            conn = self._live()
            if self._needs_schema:
                return out
            self._apply_pending(conn)
            after = 0
            while len(out) < n:
                try:
                    rows = conn.execute(
                        "SELECT id, CAST(topic AS BLOB), CAST(payload AS BLOB), created_at, attempts FROM outbox"
                        " WHERE id > ? ORDER BY id LIMIT ?",
                        (after, n - len(out) + len(self._pending)),
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
        log.error(
            "outbox %s: message id %d cannot be read (%s); %s (%d dead in all)",
            self.path,
            item_id,
            reason,
            "moved it to the dead_letters table of that file"
            if moved
            else "skipping it; it moves to the dead_letters table once the file can be written",
            self._dead,
        )

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
                            "INSERT OR REPLACE INTO dead_letters"
                            " (id, topic, payload, created_at, attempts, reason, moved_at)"
                            " SELECT id, topic, payload, created_at, attempts, ?, ? FROM outbox WHERE id = ?",
                            (reason, now, item_id),
                        )
                    conn.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        except sqlite3.Error as exc:
            if not self._write_failing:
                log.warning(
                    "outbox %s cannot be written (%s): %d sent or unreadable messages stay in the file "
                    "until it can (a restart before then sends the sent ones again)",
                    self.path,
                    exc,
                    len(self._pending),
                )
                self._write_failing = True
            return False
        if self._write_failing:
            log.info(
                "outbox %s can be written again; removed %d sent or unreadable messages", self.path, len(self._pending)
            )
            self._write_failing = False
        self._pending.clear()
        return True

    def ack(self, item_id: int) -> bool:
        """Delete message ``item_id`` after the broker acknowledged it; False if it was
        already gone (acknowledged before, or dropped while it was being sent). On a full
        disk the row is kept but never returned by :meth:`peek` again (see the module doc)."""
        return self._settle(item_id, None)

    def dead_letter(self, item_id: int, reason: str) -> bool:
        """Move message ``item_id`` to ``dead_letters`` with ``reason`` (the transport
        refused it for good); False if it was already gone. Counted in :attr:`dead`. On a
        full disk the row is hidden from :meth:`peek` and moved once a write succeeds."""
        return self._settle(item_id, reason)

    def _settle(self, item_id: int, reason: str | None) -> bool:
        """Remove message ``item_id`` (``reason`` None: acknowledged; otherwise moved to
        ``dead_letters`` with it), or hide it until a write succeeds; False if it was already gone."""
        with self._lock:
            conn = self._live()
            if item_id in self._pending or self._needs_schema:
                return False
            try:
                exists = conn.execute("SELECT 1 FROM outbox WHERE id = ?", (item_id,)).fetchone() is not None
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
            if not exists:
                return False
            self._pending[item_id] = reason
            if reason is not None:
                self._dead += 1
            self._depth -= 1
            if self._apply_pending(conn):
                self._marks.write(self._stored, done_through(conn, self._stored), sync=False)
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
        """Stored messages that could not be read back or that the transport refused for
        good (in ``dead_letters``), over the file's life."""
        return self._dead

    @property
    def lost(self) -> int:
        """Stored messages found gone after a crash or in a damaged file, over the file's life."""
        return self._lost

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
            self._marks.close()
            if self._owner is not None:
                self._owner.close()  # closing the descriptor releases the flock
                self._owner = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(payload: bytes) -> str:
    """``event_id/event_type#sequence`` of an alert payload, for the log of what was dropped."""
    try:
        msg = json.loads(payload)
        return f"{msg.get('event_id')}/{msg.get('event_type')}#{msg.get('sequence')}"
    except (ValueError, AttributeError):
        return "(unreadable payload)"
