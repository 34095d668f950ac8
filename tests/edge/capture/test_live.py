"""Live capture (edge_component/capture/live.py): only the newest frame is analysed,
failing sources are reopened with backoff (also after a resolution change, a run of
unusable frames or an exception in the reader); a clean stop reopens nothing."""

from __future__ import annotations

import logging
import threading
import time
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_component.capture.frames import CaptureStats, Frame, StreamLost
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


class _FakeCamera:
    """A stream standing in for an RTSP camera's decoder: ``frame(n)`` is the image of
    the n-th frame grabbed over every opening (numpy, as cv2.VideoCapture.retrieve gives);
    ``opened`` counts openings."""

    def __init__(self, frame, grab_s=0.005):
        self.frame, self.grab_s = frame, grab_s
        self.grabbed = self.opened = 0
        self.lock = threading.Lock()

    def open(self, source, timeout_s):
        self.opened += 1
        return self

    def get(self, prop):
        return 25.0

    def grab(self):
        time.sleep(self.grab_s)
        self.grabbed += 1
        return True

    def retrieve(self):
        return True, self.frame(self.grabbed)

    def release(self):
        pass


def _textured(h, w, channels=3):
    rng = np.random.default_rng(h * w)
    shape = (h, w) if channels == 0 else (h, w, channels)
    return rng.integers(0, 255, shape, dtype=np.uint8)


def _run_until(gen, stop, done, timeout_s=30.0):
    """Items of ``gen`` until ``done(items)``; a watchdog stops a regression from hanging."""
    watchdog = threading.Timer(timeout_s, stop.set)
    watchdog.start()
    got = []
    try:
        for item in gen:
            got.append(item)
            if done(got):
                break
    finally:
        watchdog.cancel()
        stop.set()
        gen.close()
    return got


SMALL, LARGE = _textured(360, 640), _textured(720, 1280)


def test_a_resolution_change_is_a_lost_stream_reopened_at_the_new_size():
    """A camera switching stream profile (640x360 to 1280x720) mid-run: the stream is
    reopened, the loss is marked (the analysis starts over) and the frames at the new size
    are analysed; none is counted bad."""
    cam = _FakeCamera(lambda n: SMALL if n < 20 else LARGE)
    stop, stats = threading.Event(), CaptureStats()
    settings = LiveSettings(read_timeout_s=1.0, backoff_initial_s=0.3, backoff_max_s=0.3)
    gen = live("rtsp://cam/x", 25.0, stats, stop=stop, settings=settings, opener=cam.open, mark_losses=True)
    got = _run_until(gen, stop, lambda g: sum(isinstance(f, Frame) and f.image.shape == LARGE.shape for f in g) >= 5)
    lost = [i for i, f in enumerate(got) if isinstance(f, StreamLost)]
    assert len(lost) == 1 and got[lost[0]].error == "resolution changed from 640x360 to 1280x720"
    assert {f.image.shape for f in got[: lost[0]]} == {SMALL.shape}
    after = got[lost[0] + 1 :]
    assert len(after) >= 5 and {f.image.shape for f in after} == {LARGE.shape}
    assert cam.opened == 2 and stats.reconnects == 1 and stats.bad_frames == 0
    assert stats.state == "running" and stats.last_error == ""


def test_frames_that_cannot_be_used_make_a_reopen_after_max_bad_frames_in_a_row():
    """A decoder handing over 2-channel images (cvtColor cannot take them): each is
    counted bad, and ``max_bad_frames`` of them in a row reopen the stream with the
    reason shown, instead of the camera showing running while blind."""
    cam = _FakeCamera(lambda n: _textured(36, 64, 2))
    stop, stats = threading.Event(), CaptureStats()
    settings = LiveSettings(read_timeout_s=1.0, backoff_initial_s=5.0, backoff_max_s=5.0, max_bad_frames=6)
    gen = live("rtsp://cam/x", 50.0, stats, stop=stop, settings=settings, opener=cam.open)
    watchdog = threading.Thread(target=lambda: (_wait(lambda: stats.reconnects >= 1), stop.set()), daemon=True)
    watchdog.start()
    assert list(gen) == []
    assert stats.reconnects == 1 and stats.state == "reconnecting", stats
    assert stats.bad_frames == 6 and stats.analysed == 0
    assert stats.last_error == "6 bad frames in a row (not a BGR image: uint8 (36, 64, 2))"


@pytest.mark.parametrize("channels", [0, 1, 4], ids=["HxW", "HxWx1", "BGRA"])
def test_grey_and_bgra_frames_are_analysed_as_bgr(channels):
    cam = _FakeCamera(lambda n: _textured(36, 64, channels))
    stop, stats = threading.Event(), CaptureStats()
    gen = live("rtsp://cam/x", 50.0, stats, stop=stop, settings=LiveSettings(max_bad_frames=2), opener=cam.open)
    got = _run_until(gen, stop, lambda g: len(g) >= 3)
    assert all(f.image.shape == (36, 64, 3) and f.luma.shape == (36, 64) for f in got)
    assert stats.bad_frames == 0 and stats.reconnects == 0


class _ExplodingCamera(_FakeCamera):
    """Its first opening raises in ``retrieve`` after 5 frames, as a decoder bug would."""

    def retrieve(self):
        if self.opened == 1 and self.grabbed > 5:
            raise cv2.error("OpenCV(4.x) decoder went wrong")
        return super().retrieve()


def test_an_exception_in_the_reader_is_logged_and_the_stream_reopened(caplog):
    """The reader thread must not die (the camera would show running, blind, with no
    error): the exception is logged with its traceback, shown as the loss's error, and
    the stream is reopened after the backoff."""
    cam = _ExplodingCamera(lambda n: SMALL)
    stop, stats = threading.Event(), CaptureStats()
    settings = LiveSettings(read_timeout_s=1.0, backoff_initial_s=1.0, backoff_max_s=1.0)
    gen = live("rtsp://cam/x", 25.0, stats, stop=stop, settings=settings, opener=cam.open, mark_losses=True)
    with caplog.at_level(logging.WARNING, logger="edge_component.capture.live"):
        got = _run_until(gen, stop, lambda g: any(isinstance(f, StreamLost) for f in g) and isinstance(g[-1], Frame))
    lost = [f for f in got if isinstance(f, StreamLost)]
    assert (
        len(lost) == 1 and lost[0].error.startswith("capture failed: error(") and "decoder went wrong" in lost[0].error
    )
    assert cam.opened == 2 and stats.reconnects == 1 and stats.state == "running" and stats.last_error == ""
    failed = [r for r in caplog.records if "reading failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None


def test_a_clean_stop_logs_no_reopen(caplog):
    """Stopping a camera is no failure: no warning, and nothing is reopened."""
    cam = _FakeCamera(lambda n: SMALL)
    stop, stats = threading.Event(), CaptureStats()
    with caplog.at_level(logging.INFO, logger="edge_component.capture.live"):
        gen = live("rtsp://cam/x", 25.0, stats, stop=stop, opener=cam.open)
        _run_until(gen, stop, lambda g: len(g) >= 3)  # closing the generator joins the reader
    assert [r.getMessage() for r in caplog.records] == []
    assert cam.opened == 1 and stats.reconnects == 0


def _wait(predicate, timeout_s=30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False
