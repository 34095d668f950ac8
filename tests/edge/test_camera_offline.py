"""A live camera that goes offline mid-event (edge_component/camera.py, capture/live.py):
its open events end at once with ``end_reason`` ``camera_offline``, not when the stream
comes back; motion after the stream returns opens a new event. Real OpenCV decoding of
the example clip, the real trained model."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import cv2
import pytest

from edge_component.camera import CameraPipeline
from edge_component.capture.frames import CaptureStats, Frame, StreamLost
from edge_component.capture.live import LiveSettings, live
from edge_component.capture.source import open_capture
from edge_component.config import parse_config
from edge_component.contracts.alerts import validate_alert
from edge_component.model.bundle import load_bundle
from edge_component.runtime import Supervisor
from edge_component.worker import EXIT_STOPPED
from tests.edge.conftest import clip_excerpt

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
SEED = REPO / "edge_component" / "models" / "seed"
READ_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def mid_event_clip(tmp_path_factory):
    """3 s to 10 s of the real clip (10 fps): an empty room, then the first person walks
    in at 6 s and is still there when the clip, played as a live stream, ends."""
    return clip_excerpt(tmp_path_factory.mktemp("offline") / "mid-event.avi", frames=70, start=30)


def _config(source: Path, motion_only: bool):
    zone = {"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "motion_only": motion_only}
    camera = {"name": "lab-room", "source": str(source), "mode": "live", "zones": [zone]}
    camera["read_timeout_s"], camera["backoff_max_s"] = READ_TIMEOUT_S, 1.0
    return parse_config(
        {
            "detection_fps": 5,
            "cameras": [camera],
            "decision": {"min_consecutive_windows": 2, "end_after_quiet_s": 2.0, "cooldown_s": 1.0},
        }
    )


class StopAfterOfflineEnds:
    """Records alerts; sets ``stop`` once ``count`` camera_offline ends came."""

    def __init__(self, stop: threading.Event, count: int):
        self.sent: list[dict] = []
        self.stop, self.count = stop, count

    def publish(self, topic, message):
        self.sent.append(message)
        if sum(m.get("end_reason") == "camera_offline" for m in self.sent) >= self.count:
            self.stop.set()

    def close(self):
        pass


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("motion_only", [True, False], ids=["motion", "objects"])
def test_an_event_open_when_the_stream_dies_ends_at_once_as_camera_offline(mid_event_clip, trained_bundle, motion_only):
    """The clip, a file in live mode, plays in real time and its stream ends mid-event
    (the reader's read fails, as an unplugged camera's does); it is reopened after the
    backoff and plays again. Each event open when the stream died gets its end before the
    stream returns, within one read timeout of the last frame, with end_reason
    camera_offline; the second play's person opens a new event."""
    config = _config(mid_event_clip, motion_only)
    camera = config.cameras[0]
    stop = threading.Event()
    rec = StopAfterOfflineEnds(stop, count=2)
    det = CameraPipeline(config, load_bundle(trained_bundle), rec, thing_name="vigil-test-cam")
    watchdog = threading.Timer(60.0, stop.set)  # a regression must fail, not hang
    watchdog.start()
    try:
        report = det.run_live(camera, stop)  # the worker's path: open_live, backoff 1 s
    finally:
        watchdog.cancel()
    assert report.stats.reconnects >= 2
    for m in rec.sent:
        validate_alert(m)
    offline = [m for m in rec.sent if m.get("end_reason") == "camera_offline"]
    assert len(offline) == 2, [(m["event_type"], m.get("end_reason")) for m in rec.sent]
    starts = [m for m in rec.sent if m["event_type"] == "start"]
    for end in offline:
        assert end["schema_version"] == "1.2" and end["event_type"] == "end"
        assert end["event_id"] in {m["event_id"] for m in starts}
        # ended_at is the last frame before the loss; sent_at when the loss was noticed.
        assert 0.0 <= _ts(end["sent_at"]) - _ts(end["ended_at"]) <= READ_TIMEOUT_S, end
        assert "features" in end and end["features"]["windows"]
        if not motion_only:
            assert end["label"] == "person"
    # The first play's event ended before the second play's frames: its end comes before
    # the new event's start, and the new event has a new id.
    first, second = offline
    i_first = rec.sent.index(first)
    later_starts = [m for m in rec.sent[i_first + 1 :] if m["event_type"] == "start"]
    assert later_starts and all(m["event_id"] != first["event_id"] for m in later_starts)
    assert second["event_id"] in {m["event_id"] for m in later_starts}
    # Every event ended exactly once, and none by the quiet rule while the stream was gone.
    ended = [m["event_id"] for m in rec.sent if m["event_type"] == "end"]
    assert sorted(ended) == sorted({m["event_id"] for m in starts})
    assert len(report.alerts) == len(rec.sent)


class _HangingCapture:
    """A real VideoCapture of the clip whose ``grab`` hangs after ``frames`` frames, as a
    network read that never returns would; ``release_hang`` lets it return False."""

    def __init__(self, cap: cv2.VideoCapture, frames: int, hang: threading.Event):
        self.cap, self.left, self.hang = cap, frames, hang

    def grab(self) -> bool:
        if self.left <= 0:
            self.hang.wait()
            return False
        self.left -= 1
        return self.cap.grab()

    def __getattr__(self, name):
        return getattr(self.cap, name)


def test_a_stream_whose_read_hangs_is_marked_lost_after_the_read_timeout(mid_event_clip):
    """A read that hangs leaves the reader stuck: the consumer's clock marks the loss once
    no frame came for the read timeout, once per loss."""
    hang, stop, stats = threading.Event(), threading.Event(), CaptureStats()
    opened = []

    def opener(source, timeout_s):
        opened.append(source)
        return _HangingCapture(open_capture(source, timeout_s), 15, hang)

    settings = LiveSettings(read_timeout_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.1)
    gen = live(str(mid_event_clip), 5.0, stats, stop=stop, settings=settings, opener=opener, mark_losses=True)
    got: list[Frame | StreamLost] = []
    try:
        for item in gen:
            got.append(item)
            if isinstance(item, StreamLost):
                break
    finally:
        stop.set()
        hang.set()
        gen.close()
    frames, lost = got[:-1], got[-1]
    assert isinstance(lost, StreamLost) and frames and all(isinstance(f, Frame) for f in frames)
    assert lost.last_frame_s == frames[-1].time_s
    assert lost.time_s - lost.last_frame_s >= settings.read_timeout_s
    assert "no frame for" in lost.error
    assert len(opened) == 1  # the reader was still stuck in its read: only the clock saw it


def test_a_camera_that_never_connected_marks_no_loss():
    """Nothing flowed, so nothing can be open: no StreamLost, however long it is down."""
    stop, stats = threading.Event(), CaptureStats()
    settings = LiveSettings(read_timeout_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.1)
    gen = live("rtsp://127.0.0.1:9/nothing-listens-here", 5.0, stats, stop=stop, settings=settings, mark_losses=True)
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    assert list(gen) == []
    timer.join()
    assert stats.reconnects >= 2


class _Collect:
    """The supervisor's publisher: records (topic, message)."""

    def __init__(self):
        self.sent: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def publish(self, topic, message):
        with self.lock:
            self.sent.append((topic, message))

    def alerts(self) -> list[dict]:
        with self.lock:
            return [m for t, m in self.sent if t.endswith("/alerts")]

    def close(self):
        pass


def _held_open_config(**camera):
    """The whole real clip as a live camera, one motion-only zone; an event, once open,
    stays open (no quiet end) until the camera is stopped: what the stop must close."""
    zone = {"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "motion_only": True}
    cam = {"name": "lab-room", "source": str(CLIP), "mode": "live", "zones": [zone], "read_timeout_s": 5.0} | camera
    return parse_config(
        {
            "detection_fps": 5,
            "cameras": [cam],
            "decision": {"min_consecutive_windows": 2, "end_after_quiet_s": 3600.0, "cooldown_s": 1.0},
        }
    )


def _wait_for(predicate, timeout_s=90.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _assert_every_start_ended_as_stopped(alerts: list[dict]) -> None:
    for m in alerts:
        validate_alert(m)
    starts = {m["event_id"] for m in alerts if m["event_type"] == "start"}
    ends = [m for m in alerts if m["event_type"] == "end"]
    assert starts and sorted(m["event_id"] for m in ends) == sorted(starts), [
        (m["event_type"], m.get("end_reason")) for m in alerts
    ]
    assert {m["end_reason"] for m in ends} == {"stopped"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_live_worker_signalled_with_its_process_group_ends_its_open_event_as_stopped(tmp_path, signum):
    """Greengrass stops a component by signalling its whole process tree, Ctrl-C signals
    the terminal's process group: the worker gets the signal as the supervisor stops. The
    event open then still gets its end (end_reason stopped) through the pipe, and the
    supervisor forwards it before it returns; the camera is stopped, not crashed."""
    out = _Collect()
    sup = Supervisor(_held_open_config(), model_dir=SEED, thing_name="site-1", publisher=out, snapshot_dir=tmp_path)
    stop, result = threading.Event(), {}
    runner = threading.Thread(target=lambda: result.update(sup.run(stop)), daemon=True)
    runner.start()
    try:
        assert _wait_for(lambda: any(m["event_type"] == "start" for m in out.alerts())), out.alerts()
        pid = sup.cameras["lab-room"].process.pid
        os.kill(pid, signum)  # the worker first, as a group signal may reach it
        stop.set()  # the main process's handler sets this
    finally:
        stop.set()
        runner.join(timeout=60)
    assert not runner.is_alive()
    _assert_every_start_ended_as_stopped(out.alerts())
    cam = result["cameras"]["lab-room"]
    assert cam["state"] == "stopped" and cam["crashes"] == 0 and cam["last_exit"] == EXIT_STOPPED


@pytest.mark.parametrize("mode", ["live", "replay"])
def test_a_camera_restarted_by_a_config_update_ends_its_open_event_as_stopped(tmp_path, mode):
    """A configuration update that changes (or removes) a camera stops its worker: the
    event it had open ends (stopped) and reaches the publisher; the new worker runs on."""
    out = _Collect()
    config = _held_open_config(mode=mode)
    sup = Supervisor(config, model_dir=SEED, thing_name="site-1", publisher=out, snapshot_dir=tmp_path)
    stop = threading.Event()
    runner = threading.Thread(target=lambda: sup.run(stop), daemon=True)
    runner.start()
    try:
        assert _wait_for(lambda: any(m["event_type"] == "start" for m in out.alerts())), out.alerts()
        old = sup.cameras["lab-room"]
        sup.update_config(_held_open_config(mode=mode, read_timeout_s=4.0))
        # The supervisor swaps in the new camera state only after the old worker exited.
        assert _wait_for(lambda: sup.cameras.get("lab-room", old) is not old)
        assert not old.process.is_alive()
        first = list(out.alerts())
    finally:
        stop.set()
        runner.join(timeout=60)
    _assert_every_start_ended_as_stopped(first)


def test_a_replay_worker_signalled_ends_its_open_event_as_stopped(tmp_path):
    """A replay stopped by a signal mid-event (the component stopped) ends that event as
    stopped too, and exits as stopped (the replay did not finish: its first event starts
    about 5 s into a replay of 8 s here, and the signal follows the start at once)."""
    config = _held_open_config(mode="replay")
    out = _Collect()
    sup = Supervisor(config, model_dir=SEED, thing_name="site-1", publisher=out, snapshot_dir=tmp_path)
    stop, result = threading.Event(), {}
    runner = threading.Thread(target=lambda: result.update(sup.run(stop)), daemon=True)
    runner.start()
    try:
        assert _wait_for(lambda: any(m["event_type"] == "start" for m in out.alerts())), out.alerts()
        os.kill(sup.cameras["lab-room"].process.pid, signal.SIGTERM)
        stop.set()
    finally:
        stop.set()
        runner.join(timeout=60)
    _assert_every_start_ended_as_stopped(out.alerts())
    cam = result["cameras"]["lab-room"]
    assert cam["state"] == "stopped" and cam["crashes"] == 0 and cam["last_exit"] == EXIT_STOPPED


class _ProfileSwitchingCamera:
    """The real clip as an RTSP camera whose stream switches profile, 768x432 to
    1280x720, after ``switch_at`` frames (a day/night profile, a setting changed)."""

    def __init__(self, switch_at: int):
        self.cap, self.switch_at = cv2.VideoCapture(str(CLIP)), switch_at
        self.grabbed = self.opened = 0

    def open(self, source, timeout_s):
        self.opened += 1
        return self

    def get(self, prop):
        return 10.0

    def grab(self):
        time.sleep(0.02)
        self.grabbed += 1
        return self.cap.grab()

    def retrieve(self):
        ok, image = self.cap.retrieve()
        if ok and self.grabbed > self.switch_at:
            image = cv2.resize(image, (1280, 720))
        return ok, image

    def release(self):
        pass


def test_a_live_camera_whose_resolution_changes_keeps_being_analysed(trained_bundle, monkeypatch):
    """Before the fix every frame after the change was "bad" and the camera, shown
    running, analysed nothing more. Now the stream is reopened (one reconnect, the loss
    marked) and the pipeline, object stage included, analyses the frames at the new size."""
    import functools

    import edge_component.capture.feed as feed_module

    cam = _ProfileSwitchingCamera(switch_at=100)
    monkeypatch.setattr(feed_module, "live", functools.partial(live, opener=cam.open))
    config = _config(Path("rtsp://cam/lab"), motion_only=False)
    stop, counts = threading.Event(), {}
    det = CameraPipeline(config, load_bundle(trained_bundle), StopAfterOfflineEnds(stop, 99), thing_name="t1")

    def watch():  # stop once 25 frames were analysed after the reconnect (watchdog: 90 s)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not stop.is_set():
            report = det.reports.get("lab-room")
            if report is not None and report.stats.reconnects >= 1:
                counts.setdefault("at_reconnect", report.windows)
                if report.windows - counts["at_reconnect"] >= 25:
                    break
            time.sleep(0.02)
        stop.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    report = det.run_live(config.cameras[0], stop)
    watcher.join()
    assert cam.opened == 2 and report.stats.reconnects == 1 and report.stats.bad_frames == 0
    assert report.windows - counts["at_reconnect"] >= 25  # one zone: a window per analysed frame
