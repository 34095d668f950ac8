"""The supervisor (edge_component/runtime.py): a crashing decoder is isolated to its
camera."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from edge_component.config import parse_config
from edge_component.runtime import Supervisor

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
SEED = REPO / "edge_component" / "models" / "seed"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


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
    config = parse_config(
        {
            "cameras": [
                # Motion-only zones: this is about crash isolation, and the detector would
                # make the good camera's replay several times longer on a loaded machine.
                {
                    "name": "good",
                    "source": str(CLIP),
                    "zones": [{"name": "room", "polygon": WHOLE, "motion_only": True}],
                },
                {"name": bad, "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE, "motion_only": True}]},
            ]
        }
    )
    out = Collect()
    from tests.edge.crashy import worker

    sup = Supervisor(
        config,
        model_dir=SEED,
        thing_name="site-1",
        publisher=out,
        snapshot_dir=tmp_path,
        telemetry_every_s=1.0,
        restart_backoff_s=0.2,
        restart_backoff_max_s=0.4,
        worker=worker,
    )
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


def _supervisor(tmp_path, config, out, **kw):
    from tests.edge.crashy import worker

    kw = {
        "telemetry_every_s": 1.0,
        "restart_backoff_s": 0.1,
        "restart_backoff_max_s": 0.2,
        "worker": worker,
    } | kw
    return Supervisor(config, model_dir=SEED, thing_name="site-1", publisher=out, snapshot_dir=tmp_path, **kw)


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_replay_whose_decoder_aborts_every_time_is_failed_and_the_run_ends(tmp_path):
    config = parse_config(
        {"cameras": [{"name": "abort-cam", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]}]}
    )
    out = Collect()
    sup = _supervisor(tmp_path, config, out, max_crashes_without_progress=3)
    result = {}
    runner = threading.Thread(target=lambda: result.update(sup.run()), daemon=True)
    runner.start()
    runner.join(timeout=90)
    assert not runner.is_alive(), "the run never ended: a replay that cannot make progress restarted forever"
    cam = result["cameras"]["abort-cam"]
    assert cam["state"] == "failed" and cam["crashes"] == 3 and cam["restarts"] == 2
    assert "SIGABRT" in cam["last_error"]
    assert cam["last_frame_at"] is None  # it never read a frame


def test_a_stopped_worker_is_stopped_not_crashed(tmp_path):
    """Greengrass stops a component by signalling its processes (SIGTERM): a stop, never a crash."""
    import os
    import signal

    config = parse_config(
        {"cameras": [{"name": "good", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]}]}
    )
    out = Collect()
    sup = _supervisor(tmp_path, config, out)
    stop = threading.Event()
    result = {}
    runner = threading.Thread(target=lambda: result.update(sup.run(stop)), daemon=True)
    runner.start()
    assert _wait(lambda: sup.cameras["good"].stats.get("frames_in", 0) > 0)
    stop.set()
    os.kill(sup.cameras["good"].process.pid, signal.SIGTERM)
    runner.join(timeout=30)
    cam = result["cameras"]["good"]
    assert cam["state"] == "stopped" and cam["crashes"] == 0 and cam["last_error"] == ""
    assert cam["frames_in"] > 0  # its last report got out before it exited


def test_live_state_follows_the_stream_and_the_error_clears_after_recovery(tmp_path, live_clip):
    source = tmp_path / "stream.avi"
    source.write_bytes(live_clip.read_bytes())
    config = parse_config(
        {
            "cameras": [
                {
                    "name": "door",
                    "source": str(source),
                    "mode": "live",
                    "read_timeout_s": 1.0,
                    "backoff_max_s": 0.5,
                    "zones": [{"name": "room", "polygon": WHOLE}],
                }
            ]
        }
    )
    sup = _supervisor(tmp_path, config, Collect())
    stop = threading.Event()
    runner = threading.Thread(target=lambda: sup.run(stop), daemon=True)
    runner.start()
    seen = []

    def state(want, error=None):
        def check():
            cam = sup.telemetry()["cameras"]["door"]
            seen.append((cam["state"], cam["last_error"]))
            return cam["state"] == want and (error is None or error(cam["last_error"]))

        return check

    try:
        assert _wait(state("connecting")), seen[-5:]  # the worker is up, no frame yet
        assert _wait(state("running")), seen[-5:]
        first_frame_at = sup.telemetry()["cameras"]["door"]["last_frame_at"]
        assert first_frame_at and first_frame_at.endswith("Z")
        source.rename(tmp_path / "gone.avi")  # the stream goes down: reopening fails
        assert _wait(state("reconnecting", lambda e: "not found" in e)), seen[-5:]
        (tmp_path / "gone.avi").rename(source)
        assert _wait(state("running", lambda e: e == "")), seen[-5:]
        assert sup.telemetry()["cameras"]["door"]["last_frame_at"] > first_frame_at
        assert sup.cameras["door"].crashes == 0
    finally:
        stop.set()
        runner.join(timeout=30)


def _live(name, source, zone=WHOLE):
    return {"name": name, "source": str(source), "mode": "live", "zones": [{"name": "room", "polygon": zone}]}


def _pid(cs):
    # None while the supervisor is between a worker's stop and its restart.
    return getattr(cs.process, "pid", None)


def test_a_configuration_update_restarts_only_the_cameras_it_changes(tmp_path, live_clip):
    config = parse_config({"cameras": [_live("cam0", live_clip), _live("cam1", live_clip)]})
    sup = _supervisor(tmp_path, config, Collect())
    stop = threading.Event()
    runner = threading.Thread(target=lambda: sup.run(stop), daemon=True)
    runner.start()
    try:
        assert _wait(lambda: all(cs.stats.get("frames_in", 0) > 0 for cs in sup.cameras.values()))
        pids = {name: cs.process.pid for name, cs in sup.cameras.items()}
        half = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
        sup.update_config(
            parse_config(
                {"cameras": [_live("cam0", live_clip), _live("cam1", live_clip, half), _live("cam2", live_clip)]}
            )
        )
        restarted = lambda: _pid(sup.cameras["cam1"]) not in (None, pids["cam1"])  # noqa: E731
        assert _wait(lambda: set(sup.cameras) == {"cam0", "cam1", "cam2"} and restarted())
        assert sup.cameras["cam0"].process.pid == pids["cam0"] and sup.cameras["cam0"].process.is_alive()
        assert sup.cameras["cam1"].camera.zones[0].polygon[1] == (0.5, 0.0)
        assert _wait(lambda: sup.cameras["cam2"].stats.get("frames_in", 0) > 0)
        removed = sup.cameras["cam2"].process
        sup.update_config(parse_config({"cameras": [_live("cam0", live_clip), _live("cam1", live_clip, half)]}))
        assert _wait(lambda: "cam2" not in sup.cameras and (removed is None or not removed.is_alive()))
        assert sup.cameras["cam0"].process.pid == pids["cam0"]
        assert sorted(sup.telemetry()["cameras"]) == ["cam0", "cam1"]
    finally:
        stop.set()
        runner.join(timeout=30)


def test_a_live_camera_that_keeps_crashing_shows_failed_and_is_still_retried(tmp_path, live_clip):
    config = parse_config({"cameras": [_live("segv-cam", live_clip)]})
    sup = _supervisor(tmp_path, config, Collect(), max_crashes_without_progress=2)
    stop = threading.Event()
    runner = threading.Thread(target=lambda: sup.run(stop), daemon=True)
    runner.start()
    try:
        assert _wait(lambda: sup.cameras["segv-cam"].crashes >= 3)  # retried past the limit
        cam = sup.telemetry()["cameras"]["segv-cam"]
        assert cam["state"] == "failed" and "SIGSEGV" in cam["last_error"]
        assert runner.is_alive()  # a live camera may come back: the run goes on
    finally:
        stop.set()
        runner.join(timeout=30)
