"""infra/edge_settings.py: a stage's edge settings as a device sees them: the recipe's DefaultConfiguration with
the deployment's ``reset`` and then ``merge`` applied as Greengrass applies them, checked
with ``edge_component.config.parse_config``, the check the component makes at start.

What synth accepts, every device must accept, and what a device would refuse, synth
must refuse (naming the stage and key): the other way round, a stage deploys and every
device in it rejects its configuration and exits on each restart.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import annotated_types
import pytest
import yaml

from edge_component.config import ComponentConfig, DecisionSettings, parse_config
from edge_component.config import ConfigError as DeviceConfigError
from infra.config import ConfigError, load_stages
from infra.edge_deployment import RECIPE_PATH, component_name
from infra.edge_settings import EdgeConfig

DEFAULTS = yaml.safe_load(RECIPE_PATH.read_text())["ComponentConfiguration"]["DefaultConfiguration"]
EDGE_KEYS = ("threshold", "min_consecutive_windows", "cooldown_s", "end_after_quiet_s", "detection_fps")


def _pointer(pointer: str) -> list[str]:
    assert pointer.startswith("/"), pointer
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _lookup(document: Any, parts: list[str]) -> tuple[bool, Any]:
    for part in parts:
        if not isinstance(document, dict) or part not in document:
            return False, None
        document = document[part]
    return True, document


def reset(config: dict[str, Any], pointer: str) -> None:
    """Greengrass reset: the recipe's default at ``pointer``, or the key removed if the
    default has none."""
    parts = _pointer(pointer)
    has_default, default = _lookup(DEFAULTS, parts)
    found, parent = _lookup(config, parts[:-1])
    if not found or not isinstance(parent, dict):
        return
    if has_default:
        parent[parts[-1]] = copy.deepcopy(default)
    else:
        parent.pop(parts[-1], None)


def merge(config: dict[str, Any], update: dict[str, Any]) -> None:
    """Greengrass merge: objects merge key by key, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            merge(config[key], value)
        else:
            config[key] = copy.deepcopy(value)


def deploy(update_merge: str | dict[str, Any], update_reset: list[str], existing: dict[str, Any] | None = None) -> dict:
    """The component configuration after one deployment: reset first, then merge
    (the first deployment to a device starts from the recipe's defaults)."""
    config = copy.deepcopy(DEFAULTS if existing is None else existing)
    update_merge = _resolved(update_merge)
    for pointer in update_reset:
        reset(config, pointer)
    # The deployment carries the merge as a JSON string: what a device receives.
    text = update_merge if isinstance(update_merge, str) else json.dumps(update_merge, allow_nan=False)
    merge(config, json.loads(text))
    return config


def _resolved(value: Any) -> Any:
    """A template's ``Fn::Join`` of literal parts and ``Ref``s (the evidence bucket's name
    in a stage with uploads on) as CloudFormation renders it, each Ref as a plausible name."""
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        sep, parts = value["Fn::Join"]
        return sep.join(p if isinstance(p, str) else f"resolved-{p['Ref'].lower()}" for p in parts)
    return value


def edge(**overrides: Any) -> EdgeConfig:
    return EdgeConfig(
        **{"min_consecutive_windows": 2, "cooldown_s": 1.0, "end_after_quiet_s": 2.0, "detection_fps": 5, **overrides}
    )


def _highest(model: type, field: str) -> float:
    """The component's own upper limit (``le``) of ``model.<field>``."""
    [constraint] = [m for m in model.model_fields[field].metadata if isinstance(m, annotated_types.Le)]
    return constraint.le


def test_the_recipe_defaults_alone_are_a_valid_configuration():
    parse_config(DEFAULTS)


def test_every_stage_of_cdk_json_as_deployed_is_accepted_by_the_device(cfn, synthesized):
    for name, stage in synthesized.items():
        components = cfn.properties(stage.template_json, stage.stage.stack.edge.deployment)["Components"]
        update = components[component_name(name)]["ConfigurationUpdate"]
        config = parse_config(deploy(update["Merge"], update.get("Reset", [])))
        settings = stage.config.edge
        assert config.detection_fps == settings.detection_fps, name
        assert config.decision.threshold == settings.threshold, name
        assert config.decision.min_consecutive_windows == settings.min_consecutive_windows, name
        assert config.decision.cooldown_s == settings.cooldown_s, name
        assert config.decision.end_after_quiet_s == settings.end_after_quiet_s, name


def _extremes() -> dict[str, dict[str, Any]]:
    decision = ("min_consecutive_windows", "cooldown_s", "end_after_quiet_s")
    decision_max = {f: _highest(DecisionSettings, f) for f in decision}
    return {
        "threshold 0.7": {"threshold": 0.7},
        "threshold 0": {"threshold": 0.0},
        "threshold 1": {"threshold": 1},
        "all at their lowest": {
            "min_consecutive_windows": 1,
            "cooldown_s": 0,
            "end_after_quiet_s": 0,
            "detection_fps": 0.1,
        },
        "all at the component's highest": {
            **decision_max,
            "threshold": 1.0,
            "detection_fps": _highest(ComponentConfig, "detection_fps"),
        },
    }


@pytest.mark.parametrize("case", sorted(_extremes()))
def test_edge_cases_are_accepted_by_the_device_with_the_values_set(case):
    overrides = _extremes()[case]
    settings = edge(**overrides)
    config = parse_config(deploy(*settings.configuration_update()))
    for key, value in overrides.items():
        actual = config.detection_fps if key == "detection_fps" else getattr(config.decision, key)
        assert actual == value, key


def test_threshold_override_is_under_decision_and_removed_by_a_later_deployment_without_one():
    merge_with, reset_with = edge(threshold=0.7).configuration_update()
    assert merge_with["decision"]["threshold"] == 0.7 and "threshold" not in merge_with
    device = deploy(merge_with, reset_with)
    assert parse_config(device).decision.threshold == 0.7

    merge_without, reset_without = edge().configuration_update()
    assert "/decision/threshold" in reset_without
    device = deploy(merge_without, reset_without, existing=device)
    assert "threshold" not in device["decision"]
    assert parse_config(device).decision.threshold is None  # the model bundle's threshold again


@pytest.mark.parametrize("threshold", [None, 0.6])
def test_a_device_left_with_the_old_top_level_threshold_is_repaired(threshold):
    # Earlier versions merged {"threshold": x} at the top level; the device kept it and
    # refused its configuration. The next deployment must remove it.
    broken = deploy({"threshold": 0.7, "detection_fps": 5, "decision": {"min_consecutive_windows": 2}}, [])
    with pytest.raises(DeviceConfigError, match="threshold"):
        parse_config(broken)
    repaired = deploy(*edge(threshold=threshold).configuration_update(), existing=broken)
    assert "threshold" not in repaired
    assert parse_config(repaired).decision.threshold == threshold


CANDIDATES = [
    -1,
    0,
    0.05,
    0.5,
    1,
    1.5,
    2,
    29.9,
    30,
    31,
    60,
    99,
    100,
    101,
    1000,
    3600,
    3601,
    86400,
    86401,
    math.inf,
    math.nan,
    None,
    True,
    "5",
]


@pytest.mark.parametrize("key", EDGE_KEYS)
def test_synth_accepts_exactly_what_the_device_accepts(raw_stages, key):
    """For every edge setting and a spread of values (the limits of both sides, and
    values the old stage config let through: fps 60, 500 windows, 11-day cooldown):
    load_stages accepts the value if and only if the device accepts the deployed result."""
    disagreements = []
    for value in CANDIDATES:
        raw = copy.deepcopy(raw_stages)
        raw["dev"]["edge"][key] = value
        try:
            settings = load_stages(raw)["dev"].edge
        except ConfigError as exc:
            assert f"stage 'dev': edge.{key}:" in str(exc) or "stage 'dev': edge:" in str(exc), str(exc)
            synth_ok = False
        else:
            synth_ok = True
        # What a device makes of the value, in the component's shape.
        device_value = {"detection_fps": value} if key == "detection_fps" else {"decision": {key: value}}
        try:
            parse_config(deploy(device_value, []))
            device_ok = True
        except (DeviceConfigError, ValueError):
            device_ok = False
        if synth_ok and not device_ok:
            disagreements.append(f"{value!r}: synth accepts, the device refuses")
        elif synth_ok:
            # What synth accepted also deploys: the real merge is JSON and parses.
            parse_config(deploy(*settings.configuration_update()))
        elif device_ok and not (isinstance(value, (str, bool)) or (key != "threshold" and value is None)):
            # Synth is stricter only about types (a JSON number, not "5" or true) and
            # about a setting being given at all.
            disagreements.append(f"{value!r}: the device accepts, synth refuses")
    assert disagreements == []


def test_threshold_reset_when_not_overridden():
    base = dict(min_consecutive_windows=2, cooldown_s=1.0, end_after_quiet_s=2.0, detection_fps=5)
    merge, reset = EdgeConfig(**base).configuration_update()
    decision = {"min_consecutive_windows": 2, "end_after_quiet_s": 2.0, "cooldown_s": 1.0}
    # The component's shape; /threshold is where earlier versions wrongly put the override.
    assert merge == {"detection_fps": 5.0, "decision": decision}
    assert reset == ["/threshold", "/decision/threshold"]
    merge, reset = EdgeConfig(**base, threshold=0.7).configuration_update()
    assert merge == {"detection_fps": 5.0, "decision": {**decision, "threshold": 0.7}}
    assert reset == ["/threshold"]
