"""Telemetry 1.1's per-camera ``recent`` counts (edge_component/camera_state.py): frames
analysed and blank since the previous message, which the cloud's BlankFrameRatio
(lambda/vigil_health/metrics.py) divides. A covered camera on the real room clip gives a
ratio of 1, the uncovered room 0, and the counts add up to the totals: none lost or
counted twice, across messages and across a worker restart."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_component.camera_state import CameraState
from edge_component.config import parse_config
from edge_component.runtime import TELEMETRY_SCHEMA_VERSION, Supervisor

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
SEED = REPO / "edge_component" / "models" / "seed"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]
if str(REPO / "lambda") not in sys.path:
    sys.path.append(str(REPO / "lambda"))
from vigil_health.metrics import BLANK_FRAME_RATIO, metric_data  # noqa: E402

BLANK_RATIO_ALARM = 0.95  # HealthConfig.blank_ratio's default (infra/health_config.py), both stages' value


def ratios(message: dict, thing: str) -> dict[str, float]:
    """The BlankFrameRatio per camera the health Lambda would put for ``message``."""
    data = metric_data({**message, "topic_thing_name": thing}, "dev")
    return {
        next(d["Value"] for d in m["Dimensions"] if d["Name"] == "Camera"): m["Value"]
        for m in data
        if m["MetricName"] == BLANK_FRAME_RATIO
    }


def camera_state() -> CameraState:
    config = parse_config(
        {"cameras": [{"name": "door", "source": str(CLIP), "zones": [{"name": "z", "polygon": WHOLE}]}]}
    )
    return CameraState(config.cameras[0], state="running")


def test_recent_counts_are_since_the_previous_message_and_survive_a_worker_restart():
    cs = camera_state()
    cs.report({"analysed": 50, "blank_frames": 0})
    assert cs.telemetry(1.0)["recent"] == {"analysed": 50, "blank_frames": 0}
    cs.report({"analysed": 80, "blank_frames": 30})  # the lens covered: the next 30 analysed frames blank
    first = cs.telemetry(1.0)
    assert first["recent"] == {"analysed": 30, "blank_frames": 30}
    assert (first["analysed"], first["blank_frames"]) == (80, 30)  # the totals stay totals
    cs.retire()  # the worker crashed; its counters carry into the camera's
    cs.report({"analysed": 10, "blank_frames": 10})  # the new worker's own counters start at 0
    assert cs.telemetry(1.0)["recent"] == {"analysed": 10, "blank_frames": 10}
    assert cs.telemetry(1.0)["recent"] == {"analysed": 0, "blank_frames": 0}  # nothing new: no ratio in the cloud


def clip_variant(path: Path, frames: list[np.ndarray], covered: bool) -> Path:
    """``frames`` as an MJPG file; ``covered``: a hand over the lens, 2% of the scene's
    light leaking through and sensor noise (std 3 grey levels) on top."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 432))
    for frame in frames:
        if covered:
            frame = np.clip(frame * 0.02 + rng.normal(8.0, 3.0, frame.shape), 0, 255).astype(np.uint8)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def room_run(tmp_path_factory):
    """The first 20 s of the real room clip on two cameras, ``room`` as recorded and
    ``covered``, through the supervisor with telemetry every second: (every telemetry
    message, the final one)."""
    tmp = tmp_path_factory.mktemp("covered")
    cap = cv2.VideoCapture(str(CLIP))
    frames = [cap.read()[1] for _ in range(200)]
    cap.release()
    zones = [{"name": "room", "polygon": WHOLE, "motion_only": True}]
    config = parse_config(
        {
            "cameras": [
                {"name": "room", "source": str(clip_variant(tmp / "room.avi", frames, False)), "zones": zones},
                {"name": "covered", "source": str(clip_variant(tmp / "covered.avi", frames, True)), "zones": zones},
            ]
        }
    )

    class Collect:
        def __init__(self):
            self.sent, self.lock = [], threading.Lock()

        def publish(self, topic, message):
            with self.lock:
                self.sent.append((topic, message))

        def close(self):
            pass

    out = Collect()
    sup = Supervisor(
        config, model_dir=SEED, thing_name="vigil-dev-cam-01", publisher=out, snapshot_dir=tmp, telemetry_every_s=1.0
    )
    result = {}
    runner = threading.Thread(target=lambda: result.update(sup.run()), daemon=True)
    runner.start()
    runner.join(timeout=120)
    assert not runner.is_alive(), "the replays never ended"
    telemetry = [m for t, m in out.sent if t == "vigil/vigil-dev-cam-01/telemetry"]
    return telemetry, result


def test_a_covered_camera_reports_a_blank_ratio_of_one_and_the_room_zero(room_run):
    telemetry, final = room_run
    assert final["schema_version"] == TELEMETRY_SCHEMA_VERSION == "1.1"
    assert final["cameras"]["covered"]["analysed"] > 50  # it ran the clip, and analysed it
    assert final["cameras"]["covered"]["blank_frames"] == final["cameras"]["covered"]["analysed"]
    assert final["cameras"]["room"]["blank_frames"] == 0
    seen = {"room": [], "covered": []}
    for message in telemetry:
        for camera, ratio in ratios(message, "vigil-dev-cam-01").items():
            seen[camera].append(ratio)
    assert seen["covered"] and all(r == 1.0 for r in seen["covered"])  # at or above the alarm's 0.95
    assert seen["room"] and all(r == 0.0 for r in seen["room"])
    assert min(seen["covered"]) >= BLANK_RATIO_ALARM > max(seen["room"])


def test_recent_counts_add_up_to_the_totals(room_run):
    telemetry, final = room_run
    assert telemetry[-1] == final  # the run's last message is the one it returns
    # How many messages carry frames depends on the machine's speed (a 20 s replay takes a
    # few seconds): the split across messages is pinned by the CameraState test above.
    for camera in ("room", "covered"):
        for key in ("analysed", "blank_frames"):
            assert sum(m["cameras"][camera]["recent"][key] for m in telemetry) == final["cameras"][camera][key]
