"""From window scores to events: threshold, debounce, end after quiet, cooldown.

One tracker per (camera, zone). An event *starts* when ``min_consecutive_windows``
windows in a row score at or above the threshold (and the cooldown after the previous
event has passed); it stays open while windows keep crossing the threshold, sends an
*update* every ``update_every_s``, and *ends* once no window has crossed it for
``end_after_quiet_s``. One intrusion, one event, one 'start' alert.

Times are seconds on one clock (media time for replays, monotonic time for live).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from edge_component.config import DecisionSettings

Kind = Literal["start", "update", "end"]

# Why an event ended: the ``end_reason`` of its end message (schema 1.2), one vocabulary
# for every path that ends an event.
END_QUIET = "quiet"  # the zone fell below its threshold for end_after_quiet_s
END_OBJECT_LOST = "object_lost"  # the tracker lost the object
END_CAMERA_OFFLINE = "camera_offline"  # the live source was lost (failed, ended or stalled)
END_STOPPED = "stopped"  # the component stopped watching the camera, or a replay ended


@dataclass(slots=True)
class Event:
    event_id: str
    started_s: float  # time of the first window of the run that started it
    peak_score: float
    sequence: int = 0
    last_above_s: float = 0.0
    last_update_s: float = 0.0
    ended_s: float | None = None


@dataclass(slots=True)
class Transition:
    kind: Kind
    event: Event
    time_s: float
    score: float
    reason: str | None = None  # an end's END_* reason; None on start and update


def random_event_id(started_s: float) -> str:
    return uuid.uuid4().hex


@dataclass
class EventTracker:
    """``event_id_for(started_s)`` names a new event: random for live sources; for
    replays the camera pipeline derives it from the source and the start time, so a worker
    that restarts a replay after a crash re-sends the same ids, which the Lambda drops."""

    settings: DecisionSettings
    threshold: float
    event_id_for: Callable[[float], str] = random_event_id
    active: Event | None = None
    _run: int = 0
    _run_start_s: float = 0.0
    _cooldown_until_s: float = float("-inf")
    events_started: int = field(default=0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} is outside 0..1")

    def update(self, time_s: float, score: float) -> list[Transition]:
        """Feed one window's score (0..1, float); returns what changed (possibly nothing)."""
        s = self.settings
        above = score >= self.threshold
        out: list[Transition] = []
        ev = self.active
        if ev is not None:
            if above:
                ev.last_above_s = time_s
                ev.peak_score = max(ev.peak_score, score)
                if time_s - ev.last_update_s >= s.update_every_s:
                    ev.sequence += 1
                    ev.last_update_s = time_s
                    out.append(Transition("update", ev, time_s, score))
            elif time_s - ev.last_above_s >= s.end_after_quiet_s:
                ev.sequence += 1
                ev.ended_s = time_s
                self.active = None
                self._cooldown_until_s = time_s + s.cooldown_s
                self._run = 0
                out.append(Transition("end", ev, time_s, score, END_QUIET))
            return out

        if not above:
            self._run = 0
            return out
        if self._run == 0:
            self._run_start_s = time_s
        self._run += 1
        if self._run >= s.min_consecutive_windows and time_s >= self._cooldown_until_s:
            ev = Event(self.event_id_for(self._run_start_s), self._run_start_s, score, 0, time_s, time_s)
            self.active = ev
            self.events_started += 1
            out.append(Transition("start", ev, time_s, score))
        return out

    def close(self, time_s: float, reason: str = END_STOPPED, ended_s: float | None = None) -> list[Transition]:
        """End an open event now (``time_s``) for ``reason`` (an END_* word): the source
        ended or stopped, or a live source was lost. ``ended_s`` (default ``time_s``,
        not after it) is when the event was last seen, e.g. the last frame before the
        loss. No cooldown follows: the next motion opens a new event."""
        if self.active is None:
            return []
        if ended_s is not None and ended_s > time_s:
            raise ValueError(f"ended_s {ended_s} is after the closing time {time_s}")
        ev = self.active
        ev.sequence += 1
        ev.ended_s = time_s if ended_s is None else max(ended_s, ev.started_s)
        self.active = None
        self._run = 0
        return [Transition("end", ev, time_s, ev.peak_score, reason)]
