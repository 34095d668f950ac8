"""Live capture (edge_component/capture/live.py): only the newest frame is analysed,
failing sources are reopened with backoff."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path

import cv2
import pytest

from edge_component.capture.frames import CaptureStats
from edge_component.capture.live import LiveSettings, live

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"


def _consume(gen, stop, seconds, per_frame_s=0.0):
    got = []
    deadline = time.monotonic() + seconds
    for frame in gen:
        got.append(frame)
        if per_frame_s:
            time.sleep(per_frame_s)
        if time.monotonic() > deadline:
            stop.set()
    return got


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """The first 2 s (20 frames) of the real clip, re-encoded."""
    path = tmp_path_factory.mktemp("clips") / "short.avi"
    cap = cv2.VideoCapture(str(CLIP))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 432))
    for _ in range(20):
        ok, frame = cap.read()
        w.write(frame)
    w.release()
    cap.release()
    return path


def test_live_analyses_only_the_newest_frame_and_counts_the_stale_ones(short_clip):
    stop, stats = threading.Event(), CaptureStats()
    gen = live(str(short_clip), 10.0, stats, stop=stop, settings=LiveSettings(backoff_initial_s=0.05))
    got = _consume(gen, stop, 1.6, per_frame_s=0.4)  # analysis slower than the camera
    assert stats.dropped >= 2
    assert stats.analysed == len(got)
    assert all(b.index > a.index for a, b in pairwise(got))  # always forward, never a backlog


def test_a_stream_that_ends_is_reopened_with_backoff(short_clip):
    stop, stats = threading.Event(), CaptureStats()
    gen = live(str(short_clip), 5.0, stats, stop=stop, settings=LiveSettings(backoff_initial_s=0.05, backoff_max_s=0.1))
    _consume(gen, stop, 3.0)
    assert stats.reconnects >= 1
    assert stats.frames_in > 20  # it went on reading after the first end


def test_a_dead_camera_is_retried_and_never_raises():
    stop, stats = threading.Event(), CaptureStats()
    gen = live(
        "rtsp://127.0.0.1:9/nothing-listens-here",
        5.0,
        stats,
        stop=stop,
        settings=LiveSettings(read_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.2),
    )
    timer = threading.Timer(2.0, stop.set)
    timer.start()
    assert list(gen) == []
    timer.join()
    assert stats.reconnects >= 2
    assert stats.last_error


def test_each_live_frame_carries_the_wall_clock_when_it_was_read(short_clip):
    """A device clock that steps (NTP after boot): frames read after the step carry the new
    wall time, while ``time_s`` stays monotonic for intervals."""
    step_at, step_s = 4, 3600.0
    calls = []

    def clock() -> float:  # the wall clock, stepped forward an hour at its 5th reading
        calls.append(None)
        return time.time() + (step_s if len(calls) > step_at else 0.0)

    stop, stats = threading.Event(), CaptureStats()
    gen = live(str(short_clip), 10.0, stats, stop=stop, settings=LiveSettings(backoff_initial_s=0.05), wall_clock=clock)
    got = _consume(gen, stop, 1.5)
    assert len(got) >= step_at + 2 and all(f.wall_s is not None for f in got)
    assert all(b.time_s > a.time_s for a, b in zip(got, got[1:], strict=False))  # monotonic, unaffected by the step
    origins = [f.wall_s - f.time_s for f in got]  # the wall time of monotonic 0, per frame
    before = [o for o in origins if o < origins[0] + step_s / 2]
    after = [o for o in origins if o >= origins[0] + step_s / 2]
    assert before and after, origins
    assert max(before) - min(before) < 0.5 and max(after) - min(after) < 0.5
    assert abs((after[0] - before[0]) - step_s) < 0.5
