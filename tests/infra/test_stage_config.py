"""Stage config: cdk.json's stages load, and every bad value fails naming the stage and the key."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from infra.config import ConfigError, EdgeConfig, load_stages

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_cdk_json_stages_load(raw_stages):
    stages = load_stages(raw_stages)
    assert {"dev", "prod"} <= set(stages)
    for name, stage in stages.items():
        assert stage.name == name
        assert 0 < stage.edge.detection_fps


def test_config_is_frozen(raw_stages):
    stage = load_stages(raw_stages)["dev"]
    with pytest.raises(pydantic.ValidationError):
        stage.site_name = "elsewhere"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        stage.edge.cooldown_s = 0  # type: ignore[misc]


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value


BAD = {
    # case id: (dotted key to set, value, key expected in the message)
    "unknown top-level key": ("colour", "blue", "colour"),
    "unknown nested key": ("edge.sensitivity", 0.5, "edge.sensitivity"),
    "malformed e-mail": ("alert_emails", ["alerts.example.com"], "alert_emails[0]"),
    "e-mail with space": ("ops_emails", ["ops @example.com"], "ops_emails[0]"),
    "phone not E.164": ("alert_sms", ["07700 900123"], "alert_sms[0]"),
    "phone too long": ("alert_sms", ["+1234567890123456"], "alert_sms[0]"),
    "threshold above 1": ("edge.threshold", 1.5, "edge.threshold"),
    "threshold below 0": ("edge.threshold", -0.01, "edge.threshold"),
    "negative cooldown": ("edge.cooldown_s", -1, "edge.cooldown_s"),
    "empty thing name": ("things", [""], "things[0]"),
    "thing name with slash": ("things", ["cam/1"], "things[0]"),
    "duplicate thing": ("things", ["cam-1", "cam-1"], "things"),
    "unknown time zone": ("time_zone", "Mars/Olympus", "time_zone"),
    "log retention not offered": ("log_retention_days", 10, "log_retention_days"),
    "spot wait shorter than runtime": ("training.max_wait_s", 60, "training.max_wait_s"),
    "bad region": ("region", "europe", "region"),
    "missing key": ("edge", {"cooldown_s": 1, "end_after_quiet_s": 1, "detection_fps": 5}, "edge.min_consecutive_windows"),
    "reserved hyperparameter": ("training.hyperparameters", {"sagemaker_program": "x.py"}, "training.hyperparameters"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_names_stage_and_key(raw_stages, case):
    dotted, value, expected_key = BAD[case]
    raw = copy.deepcopy(raw_stages)
    _set(raw["prod"], dotted, value)
    with pytest.raises(ConfigError) as info:
        load_stages(raw)
    message = str(info.value)
    assert f"stage 'prod': {expected_key}:" in message, message


def test_same_thing_in_two_stages_is_refused(raw_stages):
    raw = copy.deepcopy(raw_stages)
    raw["prod"]["things"] = list(raw["dev"]["things"])
    assert raw["prod"]["things"], "dev lists a thing"
    with pytest.raises(ConfigError, match=r"stage 'prod': things: .* already listed by stage 'dev'"):
        load_stages(raw)


def test_bad_stage_name_and_missing_context():
    with pytest.raises(ConfigError, match="vigil:stages"):
        load_stages(None)
    with pytest.raises(ConfigError, match=r"stage 'Prod!': name:"):
        load_stages({"Prod!": {}})


def test_threshold_reset_when_not_overridden():
    base = dict(min_consecutive_windows=2, cooldown_s=1.0, end_after_quiet_s=2.0, detection_fps=5)
    merge, reset = EdgeConfig(**base).configuration_update()
    assert "threshold" not in merge and reset == ["/threshold"]
    merge, reset = EdgeConfig(**base, threshold=0.7).configuration_update()
    assert merge["threshold"] == 0.7 and reset == []
    assert merge["decision"] == {"min_consecutive_windows": 2, "end_after_quiet_s": 2.0, "cooldown_s": 1.0}


def test_app_exits_naming_stage_and_key(raw_stages, tmp_path):
    """The real entry point: a bad value in the context stops synth before any construct."""
    raw = copy.deepcopy(raw_stages)
    raw["dev"]["edge"]["cooldown_s"] = -5
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"vigil:stages": raw}), "CDK_OUTDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "stage 'dev': edge.cooldown_s:" in done.stderr
    assert not list(tmp_path.glob("assembly-*"))


def test_cdk_json_runs_the_venv_app_with_current_feature_flags(context):
    cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
    assert cdk_json["app"] == ".venv/bin/python app.py"
    # A few of the flags `cdk init` sets for a new v2 app; all are in cdk.json.
    for flag in ("@aws-cdk/core:checkSecretUsage", "@aws-cdk/aws-iam:minimizePolicies", "@aws-cdk/core:enablePartitionLiterals"):
        assert context[flag] is True
