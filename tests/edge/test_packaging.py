"""The component's Greengrass Development Kit layout: recipe, gdk-config.json, and a
custom build that ships the same bytes as the CDK app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from edge_component.config import parse_config
from infra.packaging import artifact_bytes

REPO = Path(__file__).resolve().parents[2]

COMPONENT = REPO / "edge_component"


def test_recipe_default_configuration_is_a_valid_component_configuration():
    recipe = yaml.safe_load((COMPONENT / "recipe.yaml").read_text())
    config = parse_config(recipe["ComponentConfiguration"]["DefaultConfiguration"])
    assert config.publisher == "greengrass"
    ac = recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]["aws.greengrass.ipc.mqttproxy"]
    (policy,) = ac.values()
    assert policy["operations"] == ["aws.greengrass#PublishToIoTCore"]
    assert policy["resources"] == ["vigil/{iot:thingName}/alerts", "vigil/{iot:thingName}/telemetry"]
    for phase in recipe["Manifests"][0]["Lifecycle"].values():
        assert phase["RequiresPrivilege"] is False  # runs as the component user, not root


def test_gdk_build_writes_the_recipe_and_the_same_zip_as_the_cdk_app():
    config = json.loads((COMPONENT / "gdk-config.json").read_text())
    ((name, component),) = config["component"].items()
    out = COMPONENT / "greengrass-build"
    try:
        command = component["build"]["custom_build_command"]  # as GDK runs it, from the component's folder
        assert command[0] == "python3"
        proc = subprocess.run(
            [sys.executable, *command[1:]], cwd=COMPONENT, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        assert (out / "recipes" / "recipe.yaml").read_text() == (COMPONENT / "recipe.yaml").read_text()
        zipped = (out / "artifacts" / name / component["version"] / "vigil-edge.zip").read_bytes()
        assert zipped == artifact_bytes(COMPONENT)  # greengrass-build/ itself is never packed
    finally:
        shutil.rmtree(out, ignore_errors=True)
