"""The outbox's SQLite file: its schema and migration, what happens to a file that is
corrupt or not ours, and who may own it.

Choices, and why:

- A database file that SQLite calls corrupt, or whose tables are not this schema (an
  older or foreign file), is moved aside (``<name>.corrupt-<UTC time>`` or
  ``<name>.foreign-<UTC time>``, with its ``-wal``), the move is logged as an error
  naming both files, and a fresh outbox starts: a camera that refused to start would
  send no alert at all for weeks, and the old file is kept for whoever wants to recover
  it. ``on_corrupt="raise"`` raises :class:`OutboxCorruptError` instead. A file from
  before schema versions (``user_version`` 0 with exactly the first release's tables)
  is ours and is migrated in place, keeping its backlog.
- A file that cannot be written (a full disk; SQLite: "database or disk is full", or an
  I/O error growing the WAL index) is opened without writing: with
  ``locking_mode=EXCLUSIVE`` set first, SQLite keeps the WAL index in memory instead of
  the ``-shm`` file, so the stored backlog can be read and sent; ``put`` fails with
  SQLite's reason until there is room (the publisher holds new alerts in memory), and a
  new file gets its schema at the first ``put`` that can write.
- One process owns a file: an exclusive ``flock`` on ``<name>.lock`` is held for the
  Outbox's lifetime, so a second owner fails at once with :class:`OutboxError` instead
  of sending every message again. The kernel drops the lock when the process dies, so a
  crash leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .outbox_recovery import IdMarks, account_for_loss, salvage_rows

log = logging.getLogger("edge_component.delivery.outbox")

SCHEMA_VERSION = 2  # 1: outbox + meta (written with user_version 0); 2: + dead_letters
_CORRUPT_ERRORS = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_UNWRITABLE_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY")  # prefixes of sqlite_errorname

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

    def __init__(self, path: Path, reason: str, what: str = "outbox database"):
        super().__init__(self.describe(path, reason, what))
        self.path = path
        self.reason = reason

    @staticmethod
    def describe(path: Path, reason: str, what: str = "outbox database") -> str:
        return f"{what} {path} is corrupt: {reason}"


class OutboxUnwritableError(OutboxError):
    """The outbox file cannot be written now (disk full, I/O error, read-only)."""


class OutboxSchemaError(OutboxCorruptError):
    """A valid SQLite file whose tables are not this outbox's schema (older, newer or foreign)."""

    kind = "foreign"

    @staticmethod
    def describe(path: Path, reason: str, what: str = "outbox database") -> str:
        return f"{what} {path} does not have the outbox schema (version {SCHEMA_VERSION}): {reason}"


def take_ownership(path: Path, lock_path: Path, what: str = "outbox") -> IO[str]:
    """Open ``lock_path`` (``<name>.lock``) and hold an exclusive flock on it (released by close() or
    by the kernel when the process dies); OutboxError if another owner holds it. ``what``
    names the file in errors."""
    try:
        fh = open(lock_path, "a+", encoding="ascii")
    except OSError as exc:
        raise OutboxError(f"cannot open the lock file {lock_path} of {what} {path}: {exc}") from exc
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise OutboxError(
            f"{what} {path} is in use: another process (pid {holder}) or another owner in this one "
            f"holds its lock {lock_path}; one owner per file, or every message would be sent twice"
        ) from None
    except OSError as exc:
        fh.close()
        raise OutboxError(f"cannot lock {lock_path} for {what} {path}: {exc}") from exc
    try:  # unbuffered: a pid line left in the buffer on a full disk would fail close() later
        os.ftruncate(fh.fileno(), 0)
        os.pwrite(fh.fileno(), f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # the pid is only for the message a second owner gets
    return fh


def open_database(
    path: Path,
    synchronous: str,
    *,
    check: Callable[[sqlite3.Connection, Path], bool] | None = None,
    create: Callable[[sqlite3.Connection], None] | None = None,
    what: str = "outbox database",
) -> sqlite3.Connection:
    """Connect to the SQLite file ``path``, check it and create or migrate its schema.

    ``check(conn, path)`` (default :func:`check_schema`) says whether ``create(conn)``
    (default :func:`create_schema`) must run, or raises OutboxSchemaError; other files
    with the same discipline (WAL, ``synchronous``, corrupt-file errors), such as the
    handover journal (:mod:`.handover`), pass their own, and ``what`` names the file in
    errors. Raises OutboxCorruptError (SQLite calls it corrupt), OutboxSchemaError (not
    this schema) or OutboxError (cannot be opened or used)."""
    check = check or check_schema
    create = create or create_schema
    try:
        # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below.
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open {what} {path}: {exc}") from exc
    try:
        quick = conn.execute("PRAGMA quick_check").fetchone()[0]
        if quick != "ok":
            raise OutboxCorruptError(path, f"quick_check: {quick}", what)
        migrate = check(conn, path)  # before anything writes to a file that may not be ours
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise OutboxError(f"{what} {path}: journal_mode is {mode}, WAL is required")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        if migrate:
            create(conn)
    except sqlite3.DatabaseError as exc:
        rollback(conn)
        conn.close()
        name = getattr(exc, "sqlite_errorname", "")
        if name in _CORRUPT_ERRORS:
            raise OutboxCorruptError(path, str(exc), what) from exc
        if name.startswith(_UNWRITABLE_ERRORS):
            raise OutboxUnwritableError(f"cannot write {what} {path}: {exc}") from exc
        raise OutboxError(f"cannot use {what} {path}: {exc}") from exc
    except OutboxError:
        conn.close()
        raise
    return conn


def open_outbox(
    path: Path, synchronous: str, on_corrupt: str, marks: IdMarks
) -> tuple[sqlite3.Connection, bool, Path | None]:
    """Open the outbox file ``path`` as the module docstring says: a corrupt file's readable
    rows are salvaged (:mod:`.outbox_recovery`) and the file moved aside, as is a foreign
    one (or, with ``on_corrupt="raise"``, either is raised); a file that cannot be
    written is opened without writing. Returns the connection, whether the schema is
    still to be created (:func:`create_schema`), and where a bad file was moved (or None)."""
    conn, needs_schema, quarantined = _open(path, synchronous, on_corrupt, marks)
    if not needs_schema:
        try:
            account_for_loss(conn, marks, path)
        except sqlite3.Error as exc:  # a full disk: counted at the next start that can write
            log.warning("outbox %s: cannot check it for lost messages now: %s", path, exc)
    return conn, needs_schema, quarantined


def _open(
    path: Path, synchronous: str, on_corrupt: str, marks: IdMarks
) -> tuple[sqlite3.Connection, bool, Path | None]:
    quarantined = None
    try:
        try:
            return open_database(path, synchronous), False, None
        except OutboxCorruptError as exc:
            if on_corrupt == "raise":
                raise
            if exc.kind != "corrupt":  # a foreign file's rows are not alerts of ours
                quarantined = quarantine(path, exc.kind)
                log.error("%s; moved it to %s and started an empty outbox", exc, quarantined)
                return open_database(path, synchronous), False, quarantined
            quarantined, saved = salvage(path, synchronous, marks)
            log.error(
                "%s; copied the %d messages it could read into a new outbox and moved it to %s",
                exc,
                saved,
                quarantined,
            )
            return open_database(path, synchronous), False, quarantined
    except OutboxUnwritableError as exc:
        conn, needs_schema = open_without_writing(path, synchronous)
        log.error(
            "%s; opened it without writing: sending the %d messages it holds; new alerts are held in memory "
            "until it can be written",
            exc,
            0 if needs_schema else conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
        )
        return conn, needs_schema, quarantined


def salvage(path: Path, synchronous: str, marks: IdMarks) -> tuple[Path, int]:
    """Copy the readable rows of the corrupt file ``path`` into ``<name>.salvage``, move
    ``path`` aside, and put the salvaged file in its place; returns where the corrupt file
    went and how many rows were copied."""
    fresh = path.with_name(path.name + ".salvage")
    for leftover in (fresh, *(fresh.with_name(fresh.name + s) for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)  # from a salvage a crash interrupted: redone from the start
    conn = open_database(fresh, synchronous)
    try:
        saved = salvage_rows(path, conn, marks)
    except sqlite3.Error as exc:
        log.error("salvaging outbox %s stopped: %s", path, exc)
        saved = 0
    finally:
        conn.close()  # the last connection: SQLite checkpoints and removes the -wal
    target = quarantine(path, "corrupt")
    os.replace(fresh, path)
    return target, saved


def open_without_writing(path: Path, synchronous: str) -> tuple[sqlite3.Connection, bool]:
    """Connect to ``path`` on a disk that cannot be written: read it, write nothing.
    Returns the connection and whether the schema is still to be created
    (:func:`create_schema`, once the disk has room). Raises as :func:`open_database`."""
    try:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox database {path}: {exc}") from exc
    try:
        # Before the first read: the WAL index then lives in this process's memory, not in
        # the -shm file a full disk cannot grow (https://www.sqlite.org/wal.html#noshm).
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise OutboxCorruptError(path, f"quick_check: {check}")
        migrate = check_schema(conn, path)
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorname", "") in _CORRUPT_ERRORS:
            raise OutboxCorruptError(path, str(exc)) from exc
        raise OutboxError(f"cannot read outbox database {path}: {exc}") from exc
    except OutboxError:
        conn.close()
        raise
    return conn, migrate


def create_schema(conn: sqlite3.Connection) -> None:
    """Switch a new or first-release file to WAL and create or migrate its tables.
    Raises sqlite3.Error (e.g. on a full disk, with nothing changed)."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is required")
    try:
        conn.executescript(f"BEGIN IMMEDIATE; {_V1_SCHEMA} {_V2_ADDITIONS} COMMIT;")
    except BaseException:
        rollback(conn)
        raise


def check_schema(conn: sqlite3.Connection, path: Path) -> bool:
    """True if the file needs the schema created or migrated; OutboxSchemaError if it
    is not an outbox of this or an earlier version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
        )
    ]
    tables = {
        name: tuple(c[1] for c in conn.execute('PRAGMA table_info("{}")'.format(name.replace('"', '""'))))
        for name in names
    }
    if version == SCHEMA_VERSION and tables == _TABLES:
        return False
    if version == 0 and tables in ({}, _V1_TABLES):  # new, or the first release's file
        return True
    found = ", ".join(f"{n}({', '.join(c)})" for n, c in sorted(tables.items())) or "no tables"
    raise OutboxSchemaError(path, f"found schema version {version} with {found}")


@dataclass(frozen=True)
class OneTableSchema:
    """The schema of a one-table SQLite file kept with the outbox's discipline (the
    handover journal, the evidence queue): pass :meth:`check` and :meth:`create` to
    :func:`open_database`. ``ddl`` creates ``table`` with exactly ``columns`` and sets
    ``PRAGMA user_version`` to ``version``; a file neither new nor of this schema raises
    ``error`` (an :class:`OutboxSchemaError`), its message naming ``what``."""

    table: str
    columns: tuple[str, ...]
    version: int
    ddl: str
    error: type[OutboxSchemaError]
    what: str

    def check(self, conn: sqlite3.Connection, path: Path) -> bool:
        """True if the file is new (no tables, version 0) and needs :meth:`create`;
        False if it already has this schema; ``error`` otherwise."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        names = [n for n in names if not n.startswith("sqlite_")]
        if version == 0 and not names:
            return True
        columns = tuple(c[1] for c in conn.execute(f"PRAGMA table_info({self.table})"))
        if version == self.version and names == [self.table] and columns == self.columns:
            return False
        raise self.error(path, f"found version {version} with tables {sorted(names) or 'none'}", self.what)

    def create(self, conn: sqlite3.Connection) -> None:
        """Run ``ddl`` in one transaction; raises sqlite3.Error with nothing changed."""
        try:
            conn.executescript(f"BEGIN IMMEDIATE; {self.ddl} COMMIT;")
        except BaseException:
            rollback(conn)
            raise


def quarantine(path: Path, kind: str) -> Path:
    """Move ``path`` (with its ``-wal`` and ``-shm``) aside to ``<name>.<kind>-<UTC time>``; returns the new path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{kind}-{stamp}")
    n = 1
    while target.exists():  # never overwrite an earlier moved-aside file
        n += 1
        target = path.with_name(f"{path.name}.{kind}-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    path.replace(target)
    return target


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done so itself."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the error that brought us here is the one to report
