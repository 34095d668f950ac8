"""The handover journal: alerts the outbox let go because the Greengrass nucleus took
them, kept a while longer so that a restart can hand them over again.

Why: IPC ``PublishToIoTCore`` returns once the nucleus's spooler has stored the message,
not on IoT Core's PUBACK (aws-greengrass-nucleus ``MqttClient.java`` ``publish``), and
that spooler is in memory: ``aws.greengrass.DiskSpooler`` needs a nucleus older than
2.16 and the deployment pins 2.16.1 (README, "Disk spooler";
docs/research/greengrass-iot-facts.md). So an alert handed over while the device is
offline is lost if the nucleus or the device restarts before it reconnects. The
component is a child process of the nucleus, so such a restart always restarts it too.

What it does: the sender records each message in the journal after the transport took
it and before the outbox removes it (:class:`~edge_component.delivery.sender.OutboxPublisher`).
At start (``__main__``), before anything is sent, every entry handed over less than
``replay_s`` ago (``handover_replay_s`` in the component configuration, default one day)
is stored again ahead of the outbox's backlog, oldest first
(:meth:`~edge_component.delivery.outbox.Outbox.put_first`), and older entries are
deleted. The journal is also bounded by count (``handover_max_messages``, default
10 000; the oldest go) and pruned by age at every record. An entry keeps the time it was
first handed over: a message replayed and sent again does not get a new entry, so a
crash loop cannot keep an alert alive past ``replay_s``.

This gives at least once across a nucleus restart, and costs duplicates: after every
start the last day's alerts reach IoT Core again, most of them a second time. That is
harmless because of the alert Lambda (lambda/vigil_alerts/processing.py):

- a ``start`` notifies only through ``EventDeduplicator`` (Powertools idempotency keyed on
  ``(thing_name, event_id)``, lambda/vigil_alerts/delivery.py), whose records last
  ``IDEMPOTENCY_TTL_S`` = 7 days from the first copy's arrival; the throttle runs inside
  it, so a repeat takes no throttle slot either. The first copy arrives after it was
  handed over, so a replay younger than ``replay_s`` falls in that window as long as
  ``replay_s`` is at most 7 days (the configuration's upper bound) and the replayed copy
  is not then held offline for the rest of the week;
- ``update`` and ``end`` are validated and acknowledged, nobody is told (``ACKNOWLEDGED``),
  and the topic rule has no other action; a repeat changes nothing.

The age is measured with the wall clock (it must survive a reboot). A clock that jumps
back makes entries look young (replayed again: harmless); one that jumps forward makes
them look old (not replayed: as without the journal).

The file: SQLite with the outbox's discipline (:func:`~.outbox_file.open_database`: WAL,
``synchronous``, one owner by ``flock``). A corrupt or foreign journal is moved aside
(``<name>.corrupt-<UTC time>`` / ``.foreign-``), logged as an error naming both files,
and a fresh one starts; one that cannot be opened for writing (a full disk, a read-only
file) is opened read-only, its young entries are replayed (held in memory if the outbox
cannot store them either) and nothing is purged, then the component runs without it; a
lock it cannot take (another owner) is logged and the component runs without it. A row
that cannot be read (a text time, a blob) is logged and deleted. On replay only entries
on this thing's topics whose alerts pass the current schema go out (others are logged).
The journal never stops an alert from going out, or the component from starting; it
only adds a second chance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .outbox_file import (
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

JOURNAL_SCHEMA_VERSION = 1
DEFAULT_REPLAY_S = 86_400.0
DEFAULT_MAX_MESSAGES = 10_000
WHAT = "handover journal"
_COLUMNS = ("id", "digest", "topic", "payload", "created_at", "handed_at")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS handover (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    digest     TEXT    NOT NULL UNIQUE,  -- sha256 of topic and payload: one entry per message
    topic      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,         -- JSON text, as the outbox stores it
    created_at REAL    NOT NULL,         -- when the outbox first stored it (Unix s)
    handed_at  REAL    NOT NULL          -- when the transport first took it (Unix s)
);
PRAGMA user_version = {JOURNAL_SCHEMA_VERSION};
"""


class JournalSchemaError(OutboxSchemaError):
    """A valid SQLite file that is not a handover journal of this version."""

    @staticmethod
    def describe(path: Path, reason: str, what: str = WHAT) -> str:
        return f"{what} {path} does not have the journal schema (version {JOURNAL_SCHEMA_VERSION}): {reason}"


_TABLE = OneTableSchema("handover", _COLUMNS, JOURNAL_SCHEMA_VERSION, _SCHEMA, JournalSchemaError, WHAT)


def _is_time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _unreadable(topic: object, payload: object, created_at: object, handed_at: object) -> str:
    """Why a journal row cannot be replayed ("" if it can): SQLite keeps any type in any column."""
    if not isinstance(topic, str) or not topic:
        return f"topic is {type(topic).__name__} {topic!r:.40}, not text"
    if not isinstance(payload, str):
        return f"payload is {type(payload).__name__}, not JSON text"
    for name, value in (("created_at", created_at), ("handed_at", handed_at)):
        if not _is_time(value):
            return f"{name} is {type(value).__name__} {value!r:.40}, not a finite number of seconds"
    return ""


def encode(message: dict[str, Any]) -> str:
    """The JSON text the outbox stores for ``message`` (same separators, so equal messages compare equal)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


class HandoverJournal:
    """Messages handed to the transport in the last ``replay_s`` seconds, in the SQLite file ``path``.

    ``record(topic, message, created_at)`` after the transport took a message;
    ``replay()`` at start returns the young entries, oldest first, as
    ``(topic, payload JSON text, created_at)``, and deletes the old ones. ``replay_s``
    0 turns the journal off (nothing recorded or replayed). Neither the constructor nor
    these methods raise for the file or its lock: failures are logged and the journal
    runs read-only or off (see the module docstring; :attr:`enabled`). ValueError for
    bad arguments.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        replay_s: float = DEFAULT_REPLAY_S,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
    ):
        if replay_s < 0:
            raise ValueError(f"replay_s must be 0 (off) or more seconds, got {replay_s}")
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        self.path = Path(path)
        self.replay_s = float(replay_s)
        self.max_messages = max_messages
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._owner: IO[str] | None = None
        self._failing = False
        self._lock = threading.Lock()  # the sender thread records; start and close run on another
        self.quarantined: Path | None = None
        if not self.replay_s:
            return
        self._read_only = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._owner = take_ownership(self.path, self.path.with_name(self.path.name + ".lock"), WHAT)
        except (OSError, OutboxError) as exc:  # a lock it cannot take: never a reason to stop
            log.error("%s; running without the handover journal: nothing is replayed or recorded", exc)
            return
        try:
            self._conn = open_database(
                self.path, synchronous.upper(), check=_TABLE.check, create=_TABLE.create, what=WHAT
            )
        except OutboxCorruptError as exc:  # corrupt, or not a journal (JournalSchemaError)
            self.quarantined = quarantine(self.path, exc.kind)
            log.error(
                "%s; moved it to %s and started an empty journal (its alerts are not replayed)", exc, self.quarantined
            )
            self._conn = self._try_open(synchronous)
        except OutboxError as exc:
            # A full disk or a read-only file: what it holds can still be read and replayed.
            self._conn = self._open_read_only()
            self._read_only = self._conn is not None
            log.error(
                "%s; %s; alerts handed over from now on are not replayed after a restart",
                exc,
                "opened it read-only to replay what it holds" if self._read_only else "running without it",
            )

    def _open_read_only(self) -> sqlite3.Connection | None:
        """The file opened without writing (``mode=ro``; else ``immutable=1``, which needs no
        ``-shm`` on a full disk), if it is a journal with entries; else None."""
        base = "file:" + urllib.parse.quote(str(self.path.absolute()))
        for uri in (f"{base}?mode=ro", f"{base}?mode=ro&immutable=1"):
            conn = None
            try:
                conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
                if conn.execute("PRAGMA quick_check").fetchone()[0] == "ok" and not _TABLE.check(conn, self.path):
                    return conn
                conn.close()
                return None  # new (no tables) or damaged: nothing to replay
            except (sqlite3.Error, OutboxError):
                if conn is not None:
                    conn.close()
        return None

    def _try_open(self, synchronous: str) -> sqlite3.Connection | None:
        try:
            return open_database(self.path, synchronous.upper(), check=_TABLE.check, create=_TABLE.create, what=WHAT)
        except OutboxError as exc:
            log.error("%s; running without the handover journal", exc)
            return None

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    def record(self, topic: str, message: dict[str, Any], created_at: float) -> bool:
        """Keep ``message`` (as the transport took it) for replay; False if it could not be
        written (logged at the first failure of a streak). A message already in the
        journal keeps its first entry."""
        payload = encode(message)
        digest = hashlib.sha256(f"{topic}\0{payload}".encode()).hexdigest()
        with self._lock:
            return self._record(digest, topic, payload, created_at)

    def _record(self, digest: str, topic: str, payload: str, created_at: float) -> bool:
        conn = self._conn
        if conn is None:
            return False
        now = self._clock()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR IGNORE INTO handover (digest, topic, payload, created_at, handed_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (digest, topic, payload, created_at, now),
                )
                conn.execute("DELETE FROM handover WHERE handed_at < ?", (now - self.replay_s,))
                conn.execute(
                    "DELETE FROM handover WHERE id <= (SELECT MAX(id) FROM handover) - ?", (self.max_messages,)
                )
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        except sqlite3.Error as exc:
            if not self._failing:
                log.warning(
                    "%s %s cannot be written (%s): alerts handed over now are not replayed after a restart",
                    WHAT,
                    self.path,
                    exc,
                )
                self._failing = True
            return False
        if self._failing:
            log.info("%s %s can be written again", WHAT, self.path)
            self._failing = False
        return True

    def replay(self) -> list[tuple[str, str, float]]:
        """At start: delete entries handed over ``replay_s`` or more ago and return the
        rest, oldest first, as ``(topic, payload JSON text, created_at)``."""
        with self._lock:
            return self._replay()

    def _replay(self) -> list[tuple[str, str, float]]:
        conn = self._conn
        if conn is None:
            return []
        cutoff = self._clock() - self.replay_s
        try:
            rows = conn.execute("SELECT id, topic, payload, created_at, handed_at FROM handover ORDER BY id").fetchall()
        except sqlite3.Error as exc:
            log.error("%s %s cannot be read (%s): nothing replayed", WHAT, self.path, exc)
            return []
        young: list[tuple[str, str, float]] = []
        old: list[int] = []
        bad: list[tuple[int, str]] = []
        for row_id, topic, payload, created_at, handed_at in rows:
            reason = _unreadable(topic, payload, created_at, handed_at)
            if reason:
                bad.append((row_id, reason))
            elif handed_at < cutoff:
                old.append(row_id)
            else:
                young.append((topic, payload, float(created_at)))
        if bad:
            # A row another program (or bit rot) wrote must not stop the component from starting.
            log.error(
                "%s %s: %d entries cannot be read and are deleted, not replayed: %s",
                WHAT,
                self.path,
                len(bad),
                "; ".join(f"id {i}: {r}" for i, r in bad[:10]),
            )
        if self._read_only:  # never purge what cannot be written; the next start that can will
            log.info(
                "%s %s is read-only: replaying %d entries handed over in the last %.0f s, keeping %d old or unreadable",
                WHAT,
                self.path,
                len(young),
                self.replay_s,
                len(old) + len(bad),
            )
            conn.close()
            self._conn = None
            return young
        self._purge([i for i, _ in bad] + old)
        return young

    def _purge(self, ids: list[int]) -> None:
        """Delete the rows ``ids``; a failure (a full disk) is logged and keeps them."""
        if not ids or self._conn is None:
            return
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM handover WHERE id = ?", [(i,) for i in ids])
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        except sqlite3.Error as exc:
            log.warning(
                "%s %s: cannot delete %d old or unreadable entries now (%s); kept", WHAT, self.path, len(ids), exc
            )

    def __len__(self) -> int:
        """Entries in the file now (0 when the journal is off or closed)."""
        with self._lock:
            if self._conn is None:
                return 0
            return int(self._conn.execute("SELECT COUNT(*) FROM handover").fetchone()[0])

    def close(self) -> None:
        """Close the file and release its lock (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._owner is not None:
                self._owner.close()
                self._owner = None


def replay_into(
    journal: HandoverJournal,
    outbox: Any,
    *,
    thing_name: str | None = None,
    unstored: list[tuple[str, str, float]] | None = None,
) -> int:
    """Store the journal's young entries in ``outbox`` ahead of its backlog (before the
    sender starts); returns how many. A failure is logged: the component still starts.
    If the outbox cannot store them (a full disk) and ``unstored`` is given, they are
    appended to it instead (to be held in memory by
    :meth:`~edge_component.delivery.sender.OutboxPublisher.hold_replayed`) and counted.

    With ``thing_name`` only what this thing may send now is replayed: entries on its
    alert or telemetry topic (one on another thing's topic, say from before a rename,
    would be refused by the nucleus), and alerts that pass the current alert schema
    (:func:`~edge_component.contracts.alerts.validate_alert`); the others are dropped
    with a log."""
    try:
        entries = journal.replay()
        if thing_name is not None:
            entries = _sendable(journal, entries, thing_name)
    except Exception:  # noqa: BLE001 - the journal only adds a second chance; it never stops a start
        log.exception("%s %s: replay failed; nothing replayed", WHAT, journal.path)
        return 0
    if not entries:
        return 0
    try:
        stored = outbox.put_first(entries)
    except OutboxError as exc:
        if unstored is not None:
            unstored.extend(entries)
            log.error(
                "%s %s: the outbox cannot store the %d alerts handed over earlier (%s); holding them in memory",
                WHAT,
                journal.path,
                len(entries),
                exc,
            )
            return len(entries)
        log.error(
            "%s %s: %d alerts handed over earlier could not be replayed: %s", WHAT, journal.path, len(entries), exc
        )
        return 0
    log.info(
        "%s %s: %d alerts handed over in the last %.0f s stored again to be sent (the alert Lambda drops repeats)",
        WHAT,
        journal.path,
        stored,
        journal.replay_s,
    )
    return stored


def _sendable(
    journal: HandoverJournal, entries: list[tuple[str, str, float]], thing_name: str
) -> list[tuple[str, str, float]]:
    """The entries on this thing's topics that are valid now; the rest logged and left out."""
    from edge_component.contracts.alerts import AlertValidationError, validate_alert
    from edge_component.contracts.topics import alert_topic, telemetry_topic

    alerts, telemetry = alert_topic(thing_name), telemetry_topic(thing_name)
    keep: list[tuple[str, str, float]] = []
    dropped: list[str] = []
    for topic, payload, created_at in entries:
        if topic not in (alerts, telemetry):
            dropped.append(f"on {topic!r}, not a topic of thing {thing_name}")
            continue
        if topic == alerts:
            message: Any = None
            try:
                message = json.loads(payload)
                if not isinstance(message, dict):
                    raise AlertValidationError(f"payload is JSON {type(message).__name__}, not an object")
                validate_alert(message)
            except (ValueError, TypeError) as exc:  # JSONDecodeError and AlertValidationError are ValueErrors
                event = message.get("event_id") if isinstance(message, dict) else None
                dropped.append(f"alert {event or '?'} no longer valid: {exc}")
                continue
        keep.append((topic, payload, created_at))
    if dropped:
        log.warning(
            "%s %s: %d entries not replayed: %s%s",
            WHAT,
            journal.path,
            len(dropped),
            "; ".join(dropped[:10]),
            f"; and {len(dropped) - 10} more" if len(dropped) > 10 else "",
        )
    return keep
