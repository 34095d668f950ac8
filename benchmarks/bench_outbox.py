"""Outbox throughput: messages per second through put() then ack() (two commits each,
what one delivered alert costs the outbox) with SQLite ``synchronous=NORMAL`` and
``FULL`` side by side, on the disk that holds ``--dir``.

    .venv/bin/python benchmarks/bench_outbox.py [--messages 2000] [--dir /tmp]

FULL syncs the WAL on every commit (an alert that put() accepted survives a power cut);
NORMAL does not. The ratio says what that guarantee costs on this disk; a camera raises
a few alerts a minute, so either rate is far above need. No assertions: numbers differ
by machine and disk (tmpfs hides fsync entirely, an SD card makes it dominant).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_component.delivery.outbox import Outbox  # noqa: E402

ALERT = {  # the size and shape of a real alert message
    "schema_version": "1.0",
    "event_id": "0" * 32,
    "event_type": "start",
    "sequence": 0,
    "thing_name": "cam-bench-01",
    "camera": "porch",
    "zone": "door",
    "started_at": "2026-01-01T00:00:00.000Z",
    "sent_at": "2026-01-01T00:00:00.400Z",
    "score": 0.93,
    "threshold": 0.5,
    "model_sha256": "f" * 64,
    "snapshot": {"file": "porch-0001.jpg"},
}


def put_ack_rate(directory: Path, synchronous: str, messages: int) -> float:
    """Messages per second for ``messages`` rounds of put() then ack() of the same message."""
    path = directory / f"bench-{synchronous.lower()}.sqlite"
    with Outbox(path, synchronous=synchronous) as box:
        for _ in range(20):  # warm up: file created, pages allocated
            box.ack(box.put("vigil/cam-bench-01/alerts", ALERT))
        t0 = time.perf_counter()
        for i in range(messages):
            box.ack(box.put("vigil/cam-bench-01/alerts", ALERT | {"sequence": i}))
        elapsed = time.perf_counter() - t0
    return messages / elapsed


def backlog_rate(directory: Path, synchronous: str, messages: int) -> tuple[float, float]:
    """(puts/s, drain/s): a backlog built while offline, then drained in order (peek 64, ack each)."""
    path = directory / f"backlog-{synchronous.lower()}.sqlite"
    with Outbox(path, synchronous=synchronous) as box:
        t0 = time.perf_counter()
        for i in range(messages):
            box.put("vigil/cam-bench-01/alerts", ALERT | {"sequence": i})
        t1 = time.perf_counter()
        while items := box.peek(64):
            for item in items:
                box.ack(item.id)
        t2 = time.perf_counter()
    return messages / (t1 - t0), messages / (t2 - t1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--dir", default=None, help="where the outbox files go (default: a temporary directory)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        where = Path(tmp)
        print(f"outbox put+ack, {args.messages} alert-sized messages, files in {where}")
        rates = {mode: put_ack_rate(where, mode, args.messages) for mode in ("NORMAL", "FULL")}
        backlog = {mode: backlog_rate(where, mode, args.messages) for mode in ("NORMAL", "FULL")}
    print(f"{'synchronous':<12}{'put+ack msg/s':>16}{'put msg/s':>12}{'drain msg/s':>14}")
    for mode in ("NORMAL", "FULL"):
        print(f"{mode:<12}{rates[mode]:>16,.0f}{backlog[mode][0]:>12,.0f}{backlog[mode][1]:>14,.0f}")
    print(f"FULL / NORMAL put+ack throughput: {rates['FULL'] / rates['NORMAL']:.2f}")


if __name__ == "__main__":
    main()
