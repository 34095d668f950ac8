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


def test_each_end_says_why_and_a_close_starts_afresh():
    """Ends carry their reason (the end message's end_reason): quiet after the quiet
    time, the caller's on close (stopped by default). A close leaves no cooldown and no
    half-counted run: the next event needs its min_consecutive_windows again."""
    import pytest

    tr = _tracker(min_consecutive_windows=2, end_after_quiet_s=1.0, cooldown_s=5.0)
    assert [t.kind for t in tr.update(0.0, 0.9) + tr.update(0.5, 0.9)] == ["start"]
    [quiet] = tr.update(2.0, 0.1)
    assert (quiet.kind, quiet.reason) == ("end", "quiet")
    assert [t.reason for t in tr.close(2.5)] == []  # nothing open
    tr.update(8.0, 0.9), tr.update(8.5, 0.9)
    with pytest.raises(ValueError, match="after the closing time"):
        tr.close(9.0, "camera_offline", ended_s=9.5)
    [lost] = tr.close(9.0, "camera_offline", ended_s=8.5)
    assert (lost.kind, lost.reason, lost.time_s, lost.event.ended_s) == ("end", "camera_offline", 9.0, 8.5)
    assert tr.update(9.5, 0.9) == []  # one window is not an event, even right after a close
    [start] = tr.update(10.0, 0.9)  # no cooldown after a close: the stream came back
    assert start.kind == "start" and start.event.event_id != lost.event.event_id
    [stopped] = tr.close(11.0)
    assert stopped.reason == "stopped" and stopped.event.ended_s == 11.0
