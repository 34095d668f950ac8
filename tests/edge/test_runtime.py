"""Live capture and the per-camera process supervisor: stale frames dropped, dead and
ending streams reopened with backoff, a crashing decoder isolated to its camera."""

from __future__ import annotations

import threading
import time

import cv2
import pytest

from edge_component.capture.frames import CaptureStats
from edge_component.capture.live import LiveSettings, live
from edge_component.config import parse_config
from edge_component.runtime import Supervisor
from tests.conftest import CLIP, REPO

SEED = REPO / "edge_component" / "models" / "seed"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


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


def test_live_analyses_only_the_newest_frame_and_counts_the_stale_ones(short_clip):
    stop, stats = threading.Event(), CaptureStats()
    gen = live(str(short_clip), 10.0, stats, stop=stop, settings=LiveSettings(backoff_initial_s=0.05))
    got = _consume(gen, stop, 1.6, per_frame_s=0.4)  # analysis slower than the camera
    assert stats.dropped >= 2
    assert stats.analysed == len(got)
    assert all(b.index > a.index for a, b in zip(got, got[1:]))  # always forward, never a backlog


def test_a_stream_that_ends_is_reopened_with_backoff(short_clip):
    stop, stats = threading.Event(), CaptureStats()
    gen = live(str(short_clip), 5.0, stats, stop=stop, settings=LiveSettings(backoff_initial_s=0.05, backoff_max_s=0.1))
    _consume(gen, stop, 3.0)
    assert stats.reconnects >= 1
    assert stats.frames_in > 20  # it went on reading after the first end


def test_a_dead_camera_is_retried_and_never_raises():
    stop, stats = threading.Event(), CaptureStats()
    gen = live("rtsp://127.0.0.1:9/nothing-listens-here", 5.0, stats, stop=stop,
               settings=LiveSettings(read_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.2))
    timer = threading.Timer(2.0, stop.set)
    timer.start()
    assert list(gen) == []
    timer.join()
    assert stats.reconnects >= 2
    assert stats.last_error


class Collect:
    def __init__(self):
        self.sent = []
        self.lock = threading.Lock()

    def publish(self, topic, message):
        with self.lock:
            self.sent.append((topic, message))

    def close(self):
        pass


@pytest.mark.parametrize("bad", ["segv-cam", "abort-cam"])
def test_a_crashing_decoder_leaves_the_other_cameras_alerts_flowing(tmp_path, bad):
    config = parse_config({"cameras": [
        {"name": "good", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]},
        {"name": bad, "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]},
    ]})
    out = Collect()
    from tests.edge.crashy import worker

    sup = Supervisor(config, model_dir=SEED, thing_name="site-1", publisher=out, snapshot_dir=tmp_path,
                     telemetry_every_s=1.0, restart_backoff_s=0.2, restart_backoff_max_s=0.4, worker=worker)
    stop = threading.Event()
    runner = threading.Thread(target=lambda: sup.run(stop))
    runner.start()
    deadline = time.monotonic() + 90
    while sup.cameras["good"].state != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    runner.join(timeout=30)
    assert sup.cameras["good"].state == "done"
    starts = [m for t, m in out.sent if t.endswith("/alerts") and m["event_type"] == "start"]
    assert len(starts) == 6 and {m["camera"] for m in starts} == {"good"}
    assert sup.cameras[bad].crashes >= 2 and sup.cameras[bad].restarts >= 1
    assert sup.cameras[bad].last_exit < 0  # killed by a signal, as a native crash is
    telemetry = [m for t, m in out.sent if t == "vigil/site-1/telemetry"]
    assert telemetry and telemetry[-1]["cameras"][bad]["crashes"] >= 2
    assert telemetry[-1]["cameras"]["good"]["events"] == 6
    assert telemetry[-1]["cameras"]["good"]["blank_frames"] == 0
