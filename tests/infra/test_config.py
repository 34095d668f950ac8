"""infra/config.py: cdk.json's stages load, and every bad value fails naming the stage and the key."""

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

from infra.config import ConfigError, load_stages

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
    "e-mail with control character": ("alert_emails", ["alerts\x07@example.com"], "alert_emails[0]"),
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
    "missing key": (
        "edge",
        {"cooldown_s": 1, "end_after_quiet_s": 1, "detection_fps": 5},
        "edge.min_consecutive_windows",
    ),
    "reserved hyperparameter": ("training.hyperparameters", {"sagemaker_program": "x.py"}, "training.hyperparameters"),
    # Text that ends up in notification subjects and bodies.
    "site name with newline": ("site_name", "Shop\nURGENT click http://evil", "site_name"),
    "site name with control character": ("site_name", "Shop\x07", "site_name"),
    "site name with line separator": ("site_name", "Shop\u2028Bcc", "site_name"),
    "site name with bidi override": ("site_name", "Shop\u202egnp.exe", "site_name"),
    # JSON types are not coerced: "14", 14.0 and true are not 14, "false" is not false.
    "retention as string": ("log_retention_days", "14", "log_retention_days"),
    "retention as float": ("log_retention_days", 14.0, "log_retention_days"),
    "retention as boolean": ("log_retention_days", True, "log_retention_days"),
    "retain_data as string": ("retain_data", "false", "retain_data"),
    "retain_data as number": ("retain_data", 0, "retain_data"),
    "fleet_provisioning as string": ("fleet_provisioning", "yes", "fleet_provisioning"),
    "epochs as string": ("training.epochs", "40", "training.epochs"),
    "use_spot as string": ("training.use_spot", "true", "training.use_spot"),
    "throttle as float": ("alerts.throttle_max_per_window", 5.5, "alerts.throttle_max_per_window"),
    "threshold as string": ("edge.threshold", "0.5", "edge.threshold"),
    "threshold as boolean": ("edge.threshold", True, "edge.threshold"),
    "manage_system_log_group as string": (
        "greengrass.manage_system_log_group",
        "false",
        "greengrass.manage_system_log_group",
    ),
    "rollout maximum below base": ("rollout.maximum_per_minute", 1, "rollout.maximum_per_minute"),
    # training.hyperparameters is the list of names; train.py refuses unknown ones.
    "unknown hyperparameter": ("training.hyperparameters", {"learnin-rate": 0.1}, "training.hyperparameters"),
    "hyperparameter with underscores": ("training.hyperparameters", {"learning_rate": 0.1}, "training.hyperparameters"),
    "hyperparameter set by SageMaker": ("training.hyperparameters", {"model-dir": "/tmp"}, "training.hyperparameters"),
    "epochs as hyperparameter": ("training.hyperparameters", {"epochs": 3}, "training.hyperparameters"),
    "integer hyperparameter as string": ("training.hyperparameters", {"batch-size": "64x"}, "training.hyperparameters"),
    "number hyperparameter as boolean": (
        "training.hyperparameters",
        {"learning-rate": True},
        "training.hyperparameters",
    ),
    # train.py trains on one host: a second would repeat the job and clash in /opt/ml/model.
    "two training instances": ("training.instance_count", 2, "training.instance_count"),
    # The same ranges train.py checks at parse time (training.hyperparameters).
    "hyperparameter below its range": ("training.hyperparameters", {"min-recall": -3}, "training.hyperparameters"),
    "hyperparameter above its range": ("training.hyperparameters", {"min-auc": 5}, "training.hyperparameters"),
    "negative seed": ("training.hyperparameters", {"seed": -1}, "training.hyperparameters"),
    "hidden layer of size zero": ("training.hyperparameters", {"hidden": "64,0"}, "training.hyperparameters"),
    # The edge component's own limits (edge_component/config.py), not looser ones.
    "detection_fps above the component's": ("edge.detection_fps", 60, "edge.detection_fps"),
    "min_consecutive_windows above the component's": (
        "edge.min_consecutive_windows",
        500,
        "edge.min_consecutive_windows",
    ),
    "cooldown_s above the component's": ("edge.cooldown_s", 1e6, "edge.cooldown_s"),
    "end_after_quiet_s above the component's": ("edge.end_after_quiet_s", 7200, "edge.end_after_quiet_s"),
    "cooldown_s infinite": ("edge.cooldown_s", float("inf"), "edge.cooldown_s"),
    # S3 lifecycle takes huge values; 1e9 days is a typo that keeps snapshots forever.
    "evidence retention beyond ten years": ("evidence_retention_days", 1_000_000_000, "evidence_retention_days"),
    "evidence retention 3651 days": ("evidence_retention_days", 3651, "evidence_retention_days"),
    "evidence retention zero": ("evidence_retention_days", 0, "evidence_retention_days"),
    # Fleet provisioning: what a claim certificate may register.
    "thing name prefix with slash": ("thing_name_prefix", "vigil/prod-", "thing_name_prefix"),
    "empty thing name prefix": ("thing_name_prefix", "", "thing_name_prefix"),
    "thing name prefix over 64": ("thing_name_prefix", "p" * 65, "thing_name_prefix"),
    "denied thing name invalid": ("denied_thing_names", ["cam 1"], "denied_thing_names[0]"),
    "denied thing names not a list": ("denied_thing_names", "vigil-prod-x", "denied_thing_names"),
    # Checks across keys name every key they are about.
    "no alert recipients": ("alert_sms", [], "alert_emails, alert_sms"),
    "no way for a device to join": ("fleet_provisioning", False, "things, fleet_provisioning"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_names_stage_and_key(raw_stages, case):
    dotted, value, expected_key = BAD[case]
    raw = copy.deepcopy(raw_stages)
    if case == "no alert recipients":
        raw["prod"]["alert_emails"] = []
    assert raw["prod"]["things"] == [], "prod lists no things"
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


def test_cross_key_messages_say_why(raw_stages):
    raw = copy.deepcopy(raw_stages)
    raw["dev"].update(alert_emails=[], alert_sms=[])
    with pytest.raises(
        ConfigError,
        match=r"^stage 'dev': alert_emails, alert_sms: both empty: nobody would ever be "
        r"notified of an alert; list at least one e-mail address or phone number$",
    ):
        load_stages(raw)
    raw = copy.deepcopy(raw_stages)
    raw["dev"].update(things=[], fleet_provisioning=False)
    with pytest.raises(ConfigError, match=r"^stage 'dev': things, fleet_provisioning: .*no device could ever join"):
        load_stages(raw)


def test_one_recipient_or_one_way_to_join_is_enough(raw_stages):
    raw = copy.deepcopy(raw_stages)
    raw["prod"].update(alert_emails=[], evidence_retention_days=3650)
    raw["dev"].update(alert_sms=[], alert_emails=["a@example.com"], fleet_provisioning=False)
    stages = load_stages(raw)
    assert stages["prod"].alert_sms and stages["prod"].evidence_retention_days == 3650
    assert stages["dev"].things and not stages["dev"].fleet_provisioning


def test_thing_name_prefix_defaults_to_the_stage(raw_stages):
    stages = load_stages(raw_stages)
    assert stages["dev"].provisioning_thing_name_prefix == "vigil-dev-"
    assert stages["dev"].denied_thing_names == ()
    assert stages["dev"].may_provision("vigil-dev-cam-09") and not stages["dev"].may_provision("vigil-prod-cam-09")
    raw = copy.deepcopy(raw_stages)
    raw["prod"].update(thing_name_prefix="shop7-", denied_thing_names=["shop7-stolen"])
    prod = load_stages(raw)["prod"]
    assert prod.may_provision("shop7-cam-1") and not prod.may_provision("shop7-stolen")
    assert not prod.may_provision("vigil-prod-cam-1")


def test_claims_cannot_take_over_another_stages_listed_thing(raw_stages):
    raw = copy.deepcopy(raw_stages)
    raw["prod"]["thing_name_prefix"] = "vigil-"  # overlaps dev's vigil-dev-cam-01
    with pytest.raises(
        ConfigError, match=r"stage 'prod': thing_name_prefix: .*'vigil-dev-cam-01', which stage 'dev' lists"
    ):
        load_stages(raw)
    raw["prod"]["denied_thing_names"] = ["vigil-dev-cam-01"]
    # Denying the claim is not enough: prod's rule and policy would still select vigil-dev-*.
    with pytest.raises(ConfigError, match=r"stage 'prod': thing_name_prefix: 'vigil-' overlaps stage 'dev'"):
        load_stages(raw)
    raw["prod"]["thing_name_prefix"] = "shop7-"
    assert load_stages(raw)["prod"].stage_things.prefix == "shop7-"
    raw["prod"].update(denied_thing_names=[], fleet_provisioning=False, things=["vigil-prod-cam-01"])
    load_stages(raw)  # without fleet provisioning a prefix claims nothing


def test_bad_stage_name_and_missing_context():
    with pytest.raises(ConfigError, match="vigil:stages"):
        load_stages(None)
    with pytest.raises(ConfigError, match=r"stage 'Prod!': name:"):
        load_stages({"Prod!": {}})


def test_bad_values_are_named_in_the_message(raw_stages):
    cases = {
        "site_name": ("Shop\nBcc", r"U\+000A"),
        "log_retention_days": ("14", "valid integer"),
        "retain_data": ("false", "valid boolean"),
    }
    for key, (value, expected) in cases.items():
        raw = copy.deepcopy(raw_stages)
        raw["dev"][key] = value
        with pytest.raises(ConfigError, match=rf"stage 'dev': {key}: .*{expected}"):
            load_stages(raw)
    raw = copy.deepcopy(raw_stages)
    raw["dev"]["training"]["hyperparameters"] = {"learning_rate": 0.01, "batch-size": 32}
    with pytest.raises(ConfigError) as info:
        load_stages(raw)
    assert "'learning_rate' is not an argument of training/train.py; did you mean 'learning-rate'?" in str(info.value)
    raw["dev"]["rollout"].update(base_rate_per_minute=20, maximum_per_minute=10)
    raw["dev"]["training"]["hyperparameters"] = {}
    with pytest.raises(ConfigError, match=r"rollout.maximum_per_minute: must be >= base_rate_per_minute \(20\)"):
        load_stages(raw)


def test_good_values_still_load(raw_stages):
    raw = copy.deepcopy(raw_stages)
    raw["dev"]["site_name"] = "Café Müller – Hof 2"
    raw["dev"]["training"]["hyperparameters"] = {
        "learning-rate": 0.01,
        "batch-size": 32,
        "hidden": "32,16",
        "plots": False,
        "min-auc": 1,
    }
    raw["dev"]["rollout"].update(base_rate_per_minute=10, maximum_per_minute=10)
    raw["dev"]["edge"].update(threshold=1, detection_fps=30, min_consecutive_windows=100, cooldown_s=86400)
    stage = load_stages(raw)["dev"]
    assert stage.site_name == "Café Müller – Hof 2"
    assert stage.training.hyperparameters["learning-rate"] == 0.01
    assert stage.edge.threshold == 1.0 and stage.things == tuple(raw["dev"]["things"])


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
    for flag in (
        "@aws-cdk/core:checkSecretUsage",
        "@aws-cdk/aws-iam:minimizePolicies",
        "@aws-cdk/core:enablePartitionLiterals",
    ):
        assert context[flag] is True
