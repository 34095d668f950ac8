"""What the supervisor (edge_component/runtime.py) knows of one camera: its worker
process, crashes and restarts, the counters of earlier workers, and the state shown in
telemetry.

Progress: a worker has made progress once it reports frames beyond what any earlier
worker of the camera reached (a replay starts from the beginning again) or, live, any
frame. Crashes without progress in a row are counted in ``stalled``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from .backoff import Backoff
from .config import CameraConfig, is_live, redact_source

# Per-camera counters a worker reports; a crashed worker's are carried into its successor's.
COUNTERS = (
    "frames_in",
    "analysed",
    "dropped",
    "bad_frames",
    "reconnects",
    "windows",
    "events",
    "snapshot_errors",
    "invalid_scores",
    "blank_frames",
    "recalibrations",
)


def iso_utc(unix_s: float) -> str | None:
    """``2026-01-01T00:00:00.000Z`` for a Unix time (s); None for 0 (never)."""
    if not unix_s:
        return None
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CameraState:
    camera: CameraConfig
    process: Any = None
    conn: Connection | None = None
    state: str = "starting"  # running | restarting | done | failed | stopped
    crashes: int = 0
    restarts: int = 0
    last_exit: int | None = None
    last_error: str = ""
    restart_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 60.0))  # restarts after crashes
    stats: dict[str, Any] = field(default_factory=dict)  # the current worker's latest report
    totals: dict[str, float] = field(default_factory=dict)  # counters of earlier workers
    stalled: int = 0  # crashes in a row without progress
    best_frames: int = 0  # most frames any earlier worker reached
    progressed: bool = False  # the current worker got further than any before it
    given_up: bool = False  # live, after too many crashes without progress: failed, still retried
    last_frame_at: float = 0.0  # Unix s, newest frame of an earlier worker
    started_at: float = 0.0  # Unix s, when the current worker started
    sent: dict[str, float] = field(default_factory=dict)  # counters in the previous telemetry message

    @property
    def replay(self) -> bool:
        return self.camera.mode == "replay" or (self.camera.mode == "auto" and not is_live(self.camera.source))

    def report(self, stats: dict[str, Any]) -> None:
        """Take the worker's latest stats; the first that show progress clear the past failures."""
        self.stats = stats
        frames = stats.get("frames_in", 0)
        if self.progressed or frames <= (self.best_frames if self.replay else 0):
            return
        self.progressed = True
        self.stalled, self.given_up, self.last_error = 0, False, ""
        self.backoff.reset()

    def retire(self) -> None:
        """Carry an exited worker's counters, newest frame and error into the camera's."""
        for key in COUNTERS:
            self.totals[key] = self.totals.get(key, 0) + self.stats.get(key, 0)
        self.best_frames = max(self.best_frames, self.stats.get("frames_in", 0))
        self.last_frame_at = max(self.last_frame_at, self.stats.get("last_frame_at", 0.0))
        self.last_error = redact_source(self.stats.get("last_error") or self.last_error)
        self.stats = {}

    def shown_state(self, stats_every_s: float) -> str:
        """connecting | running | reconnecting (a live worker's capture), restarting,
        failed, done or stopped."""
        if self.given_up:
            return "failed"
        if self.state != "running":
            return self.state
        state = self.stats.get("state", "connecting")
        last = self.stats.get("last_frame_at", 0.0)
        # Reports come every stats_every_s: no newer frame than the read timeout allows is a stalled stream.
        if state == "running" and not self.replay and last:
            if time.time() - last > self.camera.read_timeout_s + stats_every_s:
                return "reconnecting"
        return state

    def telemetry(self, stats_every_s: float) -> dict[str, Any]:
        counters = {k: self.totals.get(k, 0) + self.stats.get(k, 0) for k in COUNTERS}
        # Since the previous message: what the cloud's blank-frame ratio needs (totals would hide a covered camera).
        recent = {k: max(0, counters[k] - self.sent.get(k, 0)) for k in ("analysed", "blank_frames")}
        self.sent = {k: counters[k] for k in recent}
        return {
            "state": self.shown_state(stats_every_s),
            "crashes": self.crashes,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "inference_ms_mean": self.stats.get("inference_ms_mean", 0.0),
            # Telemetry goes upstream: never a camera password, whatever message carried the source.
            "last_error": redact_source(self.stats.get("last_error") or self.last_error),
            "worker_started_at": iso_utc(self.started_at),
            "last_frame_at": iso_utc(max(self.last_frame_at, self.stats.get("last_frame_at", 0.0))),
            **counters,
            "recent": recent,
        }
