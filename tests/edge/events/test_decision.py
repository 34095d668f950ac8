"""From window scores to events (edge_component/events/decision.py)."""

from __future__ import annotations

from edge_component.config import DecisionSettings
from edge_component.events.decision import EventTracker


def _tracker(**kw):
    return EventTracker(DecisionSettings(**kw), threshold=0.5)


def test_decision_needs_consecutive_windows_then_ends_after_quiet_then_cools_down():
    tr = _tracker(min_consecutive_windows=3, end_after_quiet_s=1.0, cooldown_s=2.0)
    kinds = []
    scores = [
        0.9,
        0.9,
        0.1,
        0.9,
        0.9,
        0.9,
        0.2,
        0.2,
        0.2,
        0.2,
        0.2,
        0.2,
        0.9,
        0.9,
        0.9,
        0.9,
        0.9,
        0.9,
        0.9,
        0.9,
        0.9,
        0.9,
    ]
    for i, s in enumerate(scores):
        for t in tr.update(i * 0.2, s):
            kinds.append((t.kind, round(t.time_s, 1)))
    # start after 3 in a row (t=1.0, run began at 0.6); end 1 s after the last high window
    # (0.8 + 1.0 = 1.8 -> first quiet window at >= 2.0);
    # cooldown until 2.0 + 2.0 = 4.0: the run starting at 2.4 may only start an event at 4.0
    assert kinds == [("start", 1.0), ("end", 2.0), ("start", 4.0)]


def test_decision_sends_updates_while_an_event_lasts_and_closes_at_end_of_source():
    tr = _tracker(min_consecutive_windows=1, update_every_s=1.0)
    kinds = [t.kind for i in range(12) for t in tr.update(i * 0.2, 0.9)]
    kinds += [t.kind for t in tr.close(2.4)]
    assert kinds == ["start", "update", "update", "end"]
