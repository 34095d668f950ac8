"""``make loop`` (examples/run_loop.py): the model loop runs offline end to end and the
canary's alerts carry the new model's digest; a worse candidate stops at the gate.

The run is a subprocess, as ``make loop`` starts it (it sets AWS variables for moto and
runs the edge as ``python -m edge_component run``). The loop's handlers and moto are
real; Greengrass v2, which moto does not model, is :class:`run_loop.LocalGreengrass`:
a real boto3 client whose requests botocore validates against the service model
(``botocore.validate.validate_parameters``), answered before anything is sent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "run_loop.py"
SEED_MANIFEST = json.loads((REPO / "edge_component" / "models" / "seed" / "manifest.json").read_text())


def _load_script():
    spec = importlib.util.spec_from_file_location("run_loop", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=170)


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    """One whole run: 3 epochs of training (the fewest that pass the parity gates), the
    loop, the canary replaying the demo clip."""
    out = tmp_path_factory.mktemp("loop")
    proc = _run("--out", str(out))
    return proc, out


@pytest.mark.slow
def test_the_loop_promotes_and_the_canary_alerts_with_the_new_digest(promoted):
    proc, out = promoted
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    candidate = manifest["files"][manifest["model_file"]]
    # the digest, recomputed here from the trained file, is not the seed's: the model changed
    assert hashlib.sha256((out / "model" / manifest["model_file"]).read_bytes()).hexdigest() == candidate
    assert candidate != SEED_MANIFEST["files"][SEED_MANIFEST["model_file"]]
    assert summary["end"] == "Promoted"
    # Register added one version to the stage's model package group
    assert summary["model_packages"] == 1
    assert summary["component"]["model_sha256"] == candidate
    # the seed is 1.0.<n>; the loop's first version is 1.1.0, and promote recorded it in SSM
    assert summary["component"]["component_version"] == "1.1.0" == summary["promoted_parameter"]
    records = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    alerts = [r["message"] for r in records if r["topic"].endswith("/alerts")]
    telemetry = [r["message"] for r in records if r["topic"].endswith("/telemetry")]
    assert alerts and {a["model_sha256"] for a in alerts} == {candidate}
    # the edge read the version from where the nucleus unpacks the model component
    assert telemetry[-1]["model"] == {"sha256": candidate, "version": "1.1.0", "file": manifest["model_file"]}
    # the steps in the dev state machine's order (tests/infra/test_model_loop_run.py pins that order)
    steps = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("  -> ")]
    assert steps == [
        "CurrentModel",
        "Evaluate",
        "Gate",
        "Register",
        "AutoApproved",
        "Component",
        "Canary",
        "Watch",
        "Check",
        "Promote",
    ]
    assert "CanaryHealthy? HEALTHY" in proc.stdout
    # the job's current channel came from the CurrentModel step: the seed version's zip,
    # byte for byte, and train.py scored it (comparison.json's "current" is not null)
    from edge_component.contracts.model_component import artifact_key, bundle_files, bundle_zip

    seed_zip = bundle_zip(bundle_files(REPO / "edge_component" / "models" / "seed"))
    version = summary["current"]["current_version"]
    assert summary["current"]["current_model_uri"] == f"s3://vigil-dev-models/{artifact_key('dev', version)}"
    assert (out / "current-channel" / "model-bundle.zip").read_bytes() == seed_zip
    assert json.loads((out / "training-output" / "comparison.json").read_text())["current"] is not None
    # every Greengrass call the steps make, each validated against botocore's service model
    assert set(summary["greengrass_calls"]) == {
        "GetComponent",
        "CreateDeployment",
        "ListComponentVersions",
        "CreateComponentVersion",
        "ListDeployments",
        "GetDeployment",
        "ListEffectiveDeployments",
        "GetCoreDevice",
    }


@pytest.mark.slow
def test_a_worse_candidate_stops_at_the_gate_with_the_reason(promoted):
    _, out = promoted
    proc = _run("--out", str(out), "--skip-training", "--worse")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "GateFailed"
    assert "total: recall 0.8333 is lower than the current model's 1.0" in summary["gate"]["reasons"]
    # nothing registered, no component version, no deployment beyond the stack's own (the
    # one read: CurrentModel's recipe, before training)
    assert summary["model_packages"] == 0 and summary["greengrass_calls"] == ["CreateDeployment", "GetComponent"]
    assert "operations topic: Vigil dev: model from vigil-dev-local-1 stopped at the gate" in proc.stdout
    assert "-> Register" not in proc.stdout


def test_skip_training_without_a_candidate_is_a_clear_error(tmp_path):
    proc = _run("--out", str(tmp_path), "--skip-training")
    assert proc.returncode == 2
    assert "--skip-training: no candidate in" in proc.stderr


def test_the_greengrass_fake_refuses_what_the_service_model_refuses():
    """Request shapes: botocore's greengrassv2 service model (the API reference's
    CreateDeployment, https://docs.aws.amazon.com/greengrass/v2/APIReference/API_CreateDeployment.html:
    ``targetArn`` required; ``components`` a map of ``componentVersion`` strings)."""
    from botocore.exceptions import ParamValidationError

    loop = _load_script()
    group = "arn:aws:iot:eu-west-1:123456789012:thinggroup/g"
    gg = loop.LocalGreengrass({group: ["cam"]})
    with pytest.raises(ParamValidationError, match="targetArn"):
        gg.client.create_deployment(components={})
    with pytest.raises(ParamValidationError, match="componentVersion"):
        gg.client.create_deployment(targetArn=group, components={"c": {"componentVersion": 1}})
    assert gg.calls == []  # refused before anything was answered
    deployment = gg.client.create_deployment(targetArn=group, components={"c": {"componentVersion": "1.0.0"}})
    effective = gg.client.list_effective_deployments(coreDeviceThingName="cam")["effectiveDeployments"]
    assert [(e["deploymentId"], e["coreDeviceExecutionStatus"]) for e in effective] == [
        (deployment["deploymentId"], "QUEUED")
    ]
    # an unknown component is the real error class, which vigil_loop.component.versions_of catches
    with pytest.raises(gg.client.exceptions.ResourceNotFoundException):
        gg.client.list_component_versions(arn="arn:aws:greengrass:eu-west-1:123456789012:components:nope")


README = REPO / "README.md"
# The AWS CLI's own options (not members of an operation's input).
CLI_OPTIONS = {"query", "output", "max-items", "cli-input-json", "region", "no-paginate"}


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    return text[start : text.index("\n## ", start + 3)]


def test_the_readme_section_names_real_outputs_and_real_cli_operations():
    """README "Retraining: the model loop": each ``$(out Name)`` is an output of
    infra/stage.py, and each ``aws <service> <operation> --option`` command names an
    operation of botocore's service model and members of its input (the CLI's names are
    the model's, kebab-cased: https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-commandstructure.html)."""
    import re

    import botocore.session
    from botocore import xform_name

    section = _section("Retraining: the model loop")
    assert "make loop" in section and "make loop LOOP_ARGS=--worse" in section
    outputs = set(re.findall(r'^\s+"(\w+)": \(', (REPO / "infra" / "stage.py").read_text(), re.M))
    named = set(re.findall(r"\$\(out (\w+)\)", section))
    assert named and named <= outputs, named - outputs
    session = botocore.session.get_session()
    commands = re.findall(r"aws ([a-z0-9]+) ([a-z-]+)((?:[^\n`]|\\\n)*)", section)
    checked = 0
    for service, operation, rest in commands:
        if service == "s3":  # the CLI's own high-level commands (cp), no API operation
            continue
        model = session.get_service_model(service)
        ops = {xform_name(name, "-"): name for name in model.operation_names}
        assert operation in ops, f"aws {service} {operation}: no such operation"
        members = {xform_name(m, "-") for m in model.operation_model(ops[operation]).input_shape.members}
        options = set(re.findall(r"--([a-z][a-z-]*)", rest)) - CLI_OPTIONS
        assert options <= members, f"aws {service} {operation}: {options - members} are not its parameters"
        checked += 1
    assert checked >= 8
