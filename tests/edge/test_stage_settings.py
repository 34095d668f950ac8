"""Every stage's edge settings in cdk.json, as the deployment merges them into the
component configuration, still give one alert per intrusion on the real clip: a
stage's tuning cannot silently merge two intruders or miss one."""

from __future__ import annotations

import json

import pytest

from edge_component.config import parse_config
from edge_component.camera import CameraPipeline
from training.evaluate import match_alerts
from edge_component.model.bundle import load_bundle
from tests.conftest import CLIP, REPO, ground_truth

from infra.config import load_stages

STAGES = load_stages(json.loads((REPO / "cdk.json").read_text())["context"]["vigil:stages"])


class Discard:
    def publish(self, topic, message):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_edge_settings_give_one_timely_alert_per_intrusion(stage):
    # Exactly what the deployment merges into the component configuration.
    merge, _reset = STAGES[stage].edge.configuration_update()
    config = parse_config({**merge, "cameras": [{"name": "lab", "source": str(CLIP),
                                                 "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}]})
    bundle = load_bundle(REPO / "edge_component" / "models" / "seed")
    report = CameraPipeline(config, bundle, Discard(), thing_name="t").run_replay(config.cameras[0])
    result = match_alerts([a["media_offset_s"] for a in report.starts], ground_truth(), 139.4, max_delay_s=2.0)
    assert (result.found, result.late, result.missed, result.duplicates) == (6, 0, 0, 0), result.summary()
    assert result.false_alerts_at_s == []
