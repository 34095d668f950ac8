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


def _install_steps():
    recipe = yaml.safe_load((COMPONENT / "recipe.yaml").read_text())
    return recipe["Manifests"][0]["Lifecycle"]


def test_install_step_has_a_timeout_for_an_arm_device_and_is_skipped_when_the_pinned_venv_is_there():
    """Install runs at every start unless Skipif holds, with a default Timeout of 120 s
    (https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html,
    "Lifecycle"; aws-greengrass-nucleus Lifecycle.java DEFAULT_INSTALL_STAGE_TIMEOUT_IN_SEC);
    Skipif is ``exists <path>`` (GenericExternalService.java). {work:path} is per component
    name, not version: the venv's name carries the requirements' hash."""
    import hashlib
    import re

    lifecycle = _install_steps()
    install = lifecycle["install"]
    assert isinstance(install["Timeout"], int) and install["Timeout"] >= 900
    match = re.fullmatch(r"exists \{work:path\}/(venv-([0-9a-f]{12}))/\.installed", install["Skipif"])
    assert match, install["Skipif"]
    venv, digest = match.groups()
    assert digest == hashlib.sha256((COMPONENT / "requirements.txt").read_bytes()).hexdigest()[:12], (
        "requirements.txt changed: put the first 12 hex digits of its SHA-256 in the recipe's venv name"
    )
    assert install["Script"].count(f"{{work:path}}/{venv}/.installed") == 1  # the marker, written last
    assert f"{{work:path}}/{venv}/bin/python -m edge_component run" in lifecycle["run"]["Script"]


def test_install_script_builds_the_venv_writes_the_marker_and_removes_older_venvs(tmp_path):
    """The recipe's own install script, run by sh as the nucleus runs it, with the
    Greengrass variables filled in; an empty requirements file keeps pip offline."""
    lifecycle = _install_steps()
    work, artifacts = tmp_path / "work", tmp_path / "artifacts"
    (artifacts / "vigil-edge" / "edge_component").mkdir(parents=True)
    (artifacts / "vigil-edge" / "edge_component" / "requirements.txt").write_text("")
    for old in ("venv", "venv-000000000000"):
        (work / old / "bin").mkdir(parents=True)
    (work / "outbox.sqlite").write_text("kept")  # the state dir is {work:path} too

    def fill(text):
        return text.replace("{work:path}", str(work)).replace("{artifacts:decompressedPath}", str(artifacts))

    proc = subprocess.run(
        ["sh", "-c", fill(lifecycle["install"]["Script"])], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    marker = Path(fill(lifecycle["install"]["Skipif"]).removeprefix("exists "))
    assert marker.is_file()
    assert sorted(p.name for p in work.iterdir()) == sorted([marker.parent.name, "outbox.sqlite"])
    python = marker.parent / "bin" / "python"
    assert subprocess.run(
        [str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    ).stdout.strip() == str(marker.parent)
