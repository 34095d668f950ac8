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
