"""What the outbox does so that no stored alert vanishes unreported: it salvages the
readable rows of a damaged file, and it keeps a record of stored ids outside the
database to notice rows that a crash took with it.

- ``<name>.ids`` holds two numbers, rewritten in place: the highest id ever stored, and
  the id below which every message has left the outbox (acknowledged or dropped). The
  first is synced after each ``put`` (unless ``synchronous=NORMAL``, which does not sync
  the WAL either), so it survives what the database may not: a WAL deleted or damaged
  after a crash, a main file truncated to zero, a file moved aside. At open, an id
  between the two that is neither in ``outbox`` nor in ``dead_letters`` was stored and is
  gone: it is logged as an error and recorded as a row of ``dead_letters`` with no
  payload (reason ``lost: ...``), which :attr:`Outbox.lost` counts and telemetry reports.
  New ids continue above the highest stored one, so a lost id is never reused.
- A file that fails ``quick_check`` may still read, row by row: :func:`salvage_rows`
  copies every row it can read, stepping over unreadable ones by id, into the new file
  before the damaged one is moved aside; the ids it could not read are then lost as above.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("edge_component.delivery.outbox")

_COLUMNS = "id, topic, payload, created_at, attempts"
_MARKS = "{:020d} {:020d}\n"  # fixed width: rewritten in place, never grows
MAX_ACCOUNTED = 1_000_000  # a gap wider than this is a damaged marks file, not lost alerts


class IdMarks:
    """The ``<name>.ids`` file: ``(highest id stored, every id up to this one has left)``."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._warned = False

    def read(self) -> tuple[int, int] | None:
        """The two marks, or None when the file is missing or does not hold them."""
        try:
            stored, done = (int(v) for v in self.path.read_text(encoding="ascii").split())
        except (OSError, ValueError):
            return None
        return (stored, done) if 0 <= done <= stored and stored - done <= MAX_ACCOUNTED else None

    def write(self, stored: int, done: int, *, sync: bool) -> None:
        """Rewrite both marks; fsync when ``sync`` (after a put). A failure is logged once:
        without the marks a later loss goes unnoticed, but alerts still go out."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            os.pwrite(self._fd, _MARKS.format(stored, done).encode("ascii"), 0)
            if sync:
                os.fsync(self._fd)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot write %s (%s): a loss of stored alerts would not be detected", self.path, exc)
                self._warned = True
            return
        self._warned = False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_counts(conn: sqlite3.Connection) -> tuple[int, int, int, int, int]:
    """The outbox's ``(depth, dropped, dead, lost, highest id stored)``; lost ones are
    the dead letters without a payload (:func:`account_for_loss`)."""
    one = conn.execute
    depth = one("SELECT COUNT(*) FROM outbox").fetchone()[0]
    dropped = one("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]
    dead = one("SELECT COUNT(*) FROM dead_letters WHERE payload IS NOT NULL").fetchone()[0]
    lost = one("SELECT COUNT(*) FROM dead_letters WHERE payload IS NULL").fetchone()[0]
    stored = one("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(depth), int(dropped), int(dead), int(lost), int(stored[0] if stored else 0)


def done_through(conn: sqlite3.Connection, stored: int) -> int:
    """The id below which nothing is left in ``outbox``: every message up to it was sent or dropped."""
    low = conn.execute("SELECT MIN(id) FROM outbox").fetchone()[0]
    return stored if low is None else min(stored, low - 1)


def account_for_loss(conn: sqlite3.Connection, marks: IdMarks, path: Path) -> int:
    """Record every id the marks say was stored and is in neither table (see the module
    docstring); returns how many. Raises sqlite3.Error if the file cannot be written."""
    seq_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    seq = seq_row[0] if seq_row else 0
    known = marks.read()
    if known is None:  # first start with marks, or the marks file was damaged
        marks.write(seq, done_through(conn, seq), sync=True)
        return 0
    stored, done = known
    ids = range(done + 1, stored + 1)
    present = {
        r[0]
        for table in ("outbox", "dead_letters")
        for r in conn.execute(f"SELECT id FROM {table} WHERE id > ? AND id <= ?", (done, stored))
    }
    missing = [i for i in ids if i not in present]
    if missing:
        reason = f"lost: stored, then gone from {path.name} when it was opened (crash, damaged or missing file)"
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO dead_letters (id, reason, moved_at) VALUES (?, ?, ?)",
                [(i, reason, time.time()) for i in missing],
            )
            if seq < stored:  # new ids continue above the highest stored one
                _set_sequence(conn, stored)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.error(
            "outbox %s: %d stored messages are gone (ids %s), lost to a crash or a damaged file; "
            "recorded in its dead_letters table as lost",
            path,
            len(missing),
            _ranges(missing),
        )
    stored = max(stored, seq)
    marks.write(stored, done_through(conn, stored), sync=True)
    return len(missing)


def salvage_rows(damaged: Path, into: sqlite3.Connection, marks: IdMarks) -> int:
    """Copy every row of ``damaged``'s outbox that can be read into ``into`` (same ids,
    in order), and its ``dropped`` count and dead letters where they read; returns the
    rows copied. Rows that cannot be read are left to :func:`account_for_loss`."""
    try:
        src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        log.error("cannot open damaged outbox %s to salvage it: %s", damaged, exc)
        return 0
    try:
        last = _highest_id(src, marks)
        rows = list(_readable(src, "outbox", last))
        into.execute("BEGIN IMMEDIATE")
        into.executemany(f"INSERT OR IGNORE INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", _not_null(rows))
        dead = list(_readable(src, "dead_letters", None, f"{_COLUMNS}, reason, moved_at"))
        into.executemany("INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)", dead)
        try:
            dropped = src.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
            if dropped:
                into.execute("UPDATE meta SET value = ? WHERE key = 'dropped'", (int(dropped[0]),))
        except (sqlite3.Error, TypeError, ValueError):
            pass
        if last:
            _set_sequence(into, last)
        into.execute("COMMIT")
        return into.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        src.close()


def _set_sequence(conn: sqlite3.Connection, seq: int) -> None:
    """Make AUTOINCREMENT's next outbox id ``seq + 1`` or more (sqlite_sequence has no
    key on name: a row is updated, or added if there is none)."""
    if conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'outbox'", (seq,)).rowcount == 0:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (seq,))


def _not_null(rows: list[tuple]) -> list[tuple]:
    """Rows the outbox's NOT NULL columns take; the others stay unread (and so, lost)."""
    return [r for r in rows if None not in r[1:]]


def _highest_id(src: sqlite3.Connection, marks: IdMarks) -> int:
    """The highest id the damaged file may hold: its AUTOINCREMENT counter, the marks, its last row."""
    candidates = [(marks.read() or (0, 0))[0]]
    for sql in ("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", "SELECT MAX(id) FROM outbox"):
        try:
            candidates.append(int(src.execute(sql).fetchone()[0] or 0))
        except (sqlite3.Error, TypeError, ValueError):
            pass
    return max(candidates)


def _readable(src: sqlite3.Connection, table: str, last: int | None, columns: str = _COLUMNS):
    """Yield the rows of ``table`` in id order; where a scan breaks, try each id up to
    ``last`` alone (an unreadable page fails the lookups of its own rows only)."""
    after = 0
    while True:
        try:
            for row in src.execute(f"SELECT {columns} FROM {table} WHERE id > ? ORDER BY id", (after,)):
                yield row
                after = row[0]
            return
        except sqlite3.DatabaseError:
            pass
        probe, found = after + 1, False
        while last is not None and probe <= last and not found:
            try:
                row = src.execute(f"SELECT {columns} FROM {table} WHERE id = ?", (probe,)).fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is not None:
                yield row
                found = True
            after = probe
            probe += 1
        if not found:
            return


def _ranges(ids: list[int]) -> str:
    """``1-3, 7`` for [1, 2, 3, 7]."""
    out, start = [], ids[0]
    for prev, cur in zip(ids, [*ids[1:], None], strict=True):
        if cur is None or cur != prev + 1:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
            if cur is not None:
                start = cur
    return ", ".join(out)
