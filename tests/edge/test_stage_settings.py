"""Every stage's edge settings in cdk.json, as the deployment merges them into the
component configuration, still give one alert per intrusion on the real clip: a
stage's tuning cannot silently merge two intruders or miss one."""

from __future__ import annotations

import json

import pytest

from edge_component.config import parse_config
from edge_component.detector import Detector
from edge_component.evaluate import match_alerts
from edge_component.model import load_bundle
from tests.conftest import CLIP, REPO, ground_truth

STAGES = json.loads((REPO / "cdk.json").read_text())["context"]["vigil:stages"]


class Discard:
    def publish(self, topic, message):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_edge_settings_give_one_timely_alert_per_intrusion(stage):
    edge = STAGES[stage]["edge"]
    decision = {k: edge[k] for k in ("min_consecutive_windows", "end_after_quiet_s", "cooldown_s") if k in edge}
    if edge.get("threshold") is not None:
        decision["threshold"] = edge["threshold"]
    config = parse_config({"detection_fps": edge.get("detection_fps", 5), "decision": decision,
                           "cameras": [{"name": "lab", "source": str(CLIP),
                                        "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}]})
    bundle = load_bundle(REPO / "edge_component" / "models" / "seed")
    report = Detector(config, bundle, Discard(), thing_name="t").run_replay(config.cameras[0])
    result = match_alerts([a["media_offset_s"] for a in report.starts], ground_truth(), 139.4, max_delay_s=2.0)
    assert (result.found, result.late, result.missed, result.duplicates) == (6, 0, 0, 0), result.summary()
    assert result.false_alerts_at_s == []
