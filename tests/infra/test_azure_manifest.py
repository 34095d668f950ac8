"""infra/azure_manifest.py: the Azure IoT Edge deployment manifest of each stage.

The shape is Microsoft's (learn.microsoft.com/azure/iot-edge/module-composition and
/module-edgeagent-edgehub, encoded in infra/schemas/iotedge-deployment.schema.json); the
module twin's desired properties are the configuration the stage's Greengrass deployment
leaves on a device (the recipe's defaults with the deployment's reset and merge), so the
two platforms run the same component with the same settings and cameras.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from edge_component.config import parse_config
from infra import azure_manifest as am
from infra.config import ConfigError
from infra.edge_deployment import RECIPE_PATH, component_name

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(am.SCHEMA_PATH.read_text())
DEFAULTS = yaml.safe_load(RECIPE_PATH.read_text())["ComponentConfiguration"]["DefaultConfiguration"]
STAGES = am.load_cdk_stages()
REGISTRY = "myacr.azurecr.io"


def manifest_for(stage: str = "dev", **kwargs: Any) -> dict[str, Any]:
    return am.build_manifest(STAGES[stage], registry=REGISTRY, **kwargs)


def vigil_module(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"][am.MODULE_ID]


def create_options_of(manifest: dict[str, Any]) -> dict[str, Any]:
    return json.loads(am.join_create_options(vigil_module(manifest)["settings"]))


def defaults_with_cameras(cameras: list[dict[str, Any]]) -> dict[str, Any]:
    defaults = copy.deepcopy(DEFAULTS)
    defaults["cameras"] = cameras
    return defaults


def camera(name: str, source: str) -> dict[str, Any]:
    return {"name": name, "source": source, "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1]]}]}


# --- the schema and every stage -----------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema_citing_the_docs():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert "learn.microsoft.com/azure/iot-edge/module-composition" in SCHEMA["$comment"]
    assert "learn.microsoft.com/azure/iot-edge/module-edgeagent-edgehub" in SCHEMA["$comment"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_manifest_of_every_stage_in_cdk_json_validates(stage):
    manifest = manifest_for(stage)
    jsonschema.Draft202012Validator(SCHEMA).validate(manifest)
    am.validate_manifest(manifest)
    agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    assert agent["schemaVersion"] == "1.1"  # module-edgeagent-edgehub: 1.1 recommended since 1.0.10
    assert agent["runtime"] == {"type": "docker", "settings": {"minDockerVersion": "v1.25", "loggingOptions": ""}}
    assert agent["systemModules"]["edgeAgent"]["settings"]["image"] == "mcr.microsoft.com/azureiotedge-agent:1.5"
    hub = agent["systemModules"]["edgeHub"]
    assert (hub["status"], hub["restartPolicy"]) == ("running", "always")  # "Has to be" per the docs
    assert hub["settings"]["image"] == "mcr.microsoft.com/azureiotedge-hub:1.5"
    assert json.loads(hub["settings"]["createOptions"]) == {}  # no host ports: not a gateway
    module = vigil_module(manifest)
    assert module["settings"]["image"] == f"{REGISTRY}/vigil-edge:{am.image_version()}"
    assert (module["type"], module["status"], module["restartPolicy"]) == ("docker", "running", "always")
    assert module["version"] == am.image_version()


@pytest.mark.parametrize(
    "breakage",
    [
        "no edgeHub routes",
        "restart policy sometimes",
        "an unsplit createOptions over 512 characters",
        "a createOptions02 without 01",
        "a twin key with a dot",
        "a ttl of zero",
    ],
)
def test_the_schema_refuses_what_iot_edge_refuses(breakage):
    manifest = manifest_for()
    content = manifest["modulesContent"]
    settings = vigil_module(manifest)["settings"]
    if breakage == "no edgeHub routes":
        del content["$edgeHub"]["properties.desired"]["routes"]
    elif breakage == "restart policy sometimes":
        vigil_module(manifest)["restartPolicy"] = "sometimes"
    elif breakage == "an unsplit createOptions over 512 characters":
        settings["createOptions"] = json.dumps({"Labels": {"x": "y" * 600}})
    elif breakage == "a createOptions02 without 01":
        settings["createOptions02"] = "{}"
    elif breakage == "a twin key with a dot":
        content[am.MODULE_ID]["properties.desired"]["a.b"] = 1
    elif breakage == "a ttl of zero":
        content["$edgeHub"]["properties.desired"]["storeAndForwardConfiguration"]["timeToLiveSecs"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(manifest)
    with pytest.raises(am.ManifestError, match="does not match the IoT Edge deployment schema"):
        am.validate_manifest(manifest)


# --- the same configuration as the Greengrass deployment ---------------------------------


def test_twin_desired_properties_are_the_greengrass_deployments_component_configuration(cfn, synthesized):
    """Per stage: the configuration a Greengrass device ends up with (the recipe's defaults,
    then the synthesized deployment's Reset and Merge as Greengrass applies them) equals the
    module twin's desired properties, less accessControl (Greengrass IPC authorisation)."""
    assert set(synthesized) == set(STAGES)
    for name, stage in synthesized.items():
        components = cfn.properties(stage.template_json, stage.stage.stack.edge.deployment)["Components"]
        update = components[component_name(name)]["ConfigurationUpdate"]
        merge = update["Merge"]
        if isinstance(merge, dict):  # Fn::Join naming the evidence bucket (a stage with uploads on)
            sep, parts = merge["Fn::Join"]
            merge = sep.join(p if isinstance(p, str) else "resolved-bucket" for p in parts)
        on_greengrass = am.apply_configuration_update(DEFAULTS, json.loads(merge), update.get("Reset", []))
        desired = manifest_for(name)["modulesContent"][am.MODULE_ID]["properties.desired"]
        # Snapshot uploads use the Greengrass token exchange service's credentials: on IoT
        # Edge they stay off (the recipe's default), whatever the stage says for Greengrass.
        # The classifier: ONNX Runtime on IoT Edge (model_file model.onnx), the bundle
        # manifest's int8 TFLite model on Greengrass (no model_file). How it sends: publisher
        # (greengrass) and mqtt are Greengrass's; the module always sends to its outputs and
        # refuses them in its twin (tests/edge/iotedge/test_module.py). Nothing else differs.
        assert on_greengrass["publisher"] == "greengrass", name
        assert "publisher" not in desired and "mqtt" not in desired, name
        greengrass_only = ("accessControl", "evidence", "publisher", "mqtt")
        module_only = ("evidence", "model_file")
        assert {k: v for k, v in desired.items() if k not in module_only} == {
            k: v for k, v in on_greengrass.items() if k not in greengrass_only + ("model_file",)
        }, name
        assert not parse_config(desired).evidence.upload_snapshots, name
        assert "model_file" not in on_greengrass, name
        assert desired["model_file"] == am.MODULE_MODEL_FILE == "model.onnx", name
        # ...and it carries the stage's settings and the recipe's cameras, as the device reads them.
        config, edge = parse_config(desired), stage.config.edge
        assert config.detection_fps == edge.detection_fps, name
        assert config.decision.threshold == edge.threshold, name
        assert config.decision.min_consecutive_windows == edge.min_consecutive_windows, name
        assert config.decision.cooldown_s == edge.cooldown_s, name
        assert config.decision.end_after_quiet_s == edge.end_after_quiet_s, name
        assert desired["cameras"] == DEFAULTS["cameras"], name


def test_a_threshold_override_reaches_the_twin_and_none_leaves_the_recipes():
    dev = STAGES["dev"]
    with_threshold = dev.model_copy(update={"edge": dev.edge.model_copy(update={"threshold": 0.7})})
    assert am.module_desired_properties(with_threshold)["decision"]["threshold"] == 0.7
    # No override: /decision/threshold is reset, to the recipe's value if it has one (as on Greengrass).
    assert "threshold" not in am.module_desired_properties(dev)["decision"]
    defaults = copy.deepcopy(DEFAULTS)
    defaults["decision"]["threshold"] = 0.9
    assert am.module_desired_properties(dev, defaults=defaults)["decision"]["threshold"] == 0.9


def test_the_module_runs_onnx_unless_the_configuration_names_a_model_file():
    """The twin's model_file is model.onnx, which the seed bundle holds and ONNX Runtime
    loads; a configuration that already picks a file (here the float TFLite) keeps it."""
    from edge_component.model.bundle import load_bundle
    from edge_component.model.onnx_runtime import OnnxScorer

    desired = am.module_desired_properties(STAGES["dev"])
    bundle = load_bundle(REPO_ROOT / "edge_component" / "models" / "seed", parse_config(desired).model_file)
    assert bundle.manifest.model_file == "model.onnx"
    assert isinstance(bundle.scorer, OnnxScorer)
    defaults = copy.deepcopy(DEFAULTS)
    defaults["model_file"] = "model_float.tflite"
    assert am.module_desired_properties(STAGES["dev"], defaults=defaults)["model_file"] == "model_float.tflite"


def test_greengrass_reset_restores_a_default_or_removes_a_key_and_merge_is_deep():
    defaults = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    existing_reset = am.apply_configuration_update(defaults, {"a": {"c": 5}, "e": 1}, ["/a/b", "/zz/y", "/d"])
    assert existing_reset == {"a": {"b": 1, "c": 5}, "d": [1, 2], "e": 1}
    assert defaults == {"a": {"b": 1, "c": 2}, "d": [1, 2]}  # not changed
    assert am.apply_configuration_update({"a": {"t": 1}}, {}, ["/a/t"]) == {"a": {"t": 1}}


# --- createOptions ------------------------------------------------------------------------


def test_a_camera_index_maps_to_its_video_device_and_urls_and_files_to_none():
    defaults = defaults_with_cameras(
        [
            camera("door", "0"),
            camera("yard", "rtsp://10.0.0.5/stream"),
            camera("clip", "/clips/a.mp4"),
            camera("garage", "2"),
            camera("garage-again", "2"),
        ]
    )
    options = create_options_of(am.build_manifest(STAGES["dev"], registry=REGISTRY, defaults=defaults))
    assert options["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/video0", "PathInContainer": "/dev/video0", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/video2", "PathInContainer": "/dev/video2", "CgroupPermissions": "rwm"},
    ]
    # HostConfig.GroupAdd: "additional groups that the container process will run as" (Docker
    # Engine API, docs.docker.com/reference/api/engine/); the image's video group owns the devices.
    assert options["HostConfig"]["GroupAdd"] == ["video"]
    assert options["HostConfig"]["Binds"] == [f"{am.STATE_VOLUME}:{am.STATE_DIR}"]


def test_without_local_cameras_there_are_no_devices_but_still_the_state_volume():
    defaults = defaults_with_cameras([camera("yard", "rtsp://10.0.0.5/stream")])
    options = create_options_of(am.build_manifest(STAGES["dev"], registry=REGISTRY, defaults=defaults))
    assert "Devices" not in options["HostConfig"] and "GroupAdd" not in options["HostConfig"]
    assert options["HostConfig"]["Binds"] == ["vigil-state:/var/lib/vigil"]


def test_long_create_options_are_split_into_numbered_chunks_of_512():
    """Azure/iotedge doc/ExtendingCreateOptions.md: createOptions, then createOptions01..07,
    each at most 512 characters, joined in order by the edge agent."""
    defaults = defaults_with_cameras([camera(f"cam{i}", str(i)) for i in range(16)])
    manifest = am.build_manifest(STAGES["dev"], registry=REGISTRY, defaults=defaults)
    settings = vigil_module(manifest)["settings"]
    chunks = [k for k in settings if k.startswith("createOptions")]
    assert chunks[:3] == ["createOptions", "createOptions01", "createOptions02"]
    assert len(chunks) == len(set(chunks)) >= 3
    assert all(len(settings[k]) <= 512 for k in chunks)
    assert all(len(settings[k]) == 512 for k in chunks[:-1])  # only the last chunk is short
    devices = json.loads(am.join_create_options(settings))["HostConfig"]["Devices"]
    assert [d["PathOnHost"] for d in devices] == [f"/dev/video{i}" for i in range(16)]
    jsonschema.Draft202012Validator(SCHEMA).validate(manifest)
    am.validate_manifest(manifest)


def test_short_create_options_stay_in_one_field_and_too_long_is_refused():
    assert am.split_create_options({"HostConfig": {}}) == {"createOptions": '{"HostConfig":{}}'}
    assert list(am.split_create_options("x" * 512)) == ["createOptions"]
    assert list(am.split_create_options("x" * 513)) == ["createOptions", "createOptions01"]
    assert list(am.split_create_options("x" * 4096))[-1] == "createOptions07"
    with pytest.raises(am.ManifestError, match="more than the 8 chunks"):
        am.split_create_options("x" * 4097)
    with pytest.raises(am.ManifestError, match="without gaps"):
        am.join_create_options({"createOptions": "{", "createOptions02": "}"})


# --- routes and the edge hub --------------------------------------------------------------


def test_the_alerts_and_telemetry_outputs_route_to_iot_hub():
    manifest = manifest_for()
    hub = manifest["modulesContent"]["$edgeHub"]["properties.desired"]
    assert sorted(hub["routes"].values()) == [
        "FROM /messages/modules/vigil/outputs/alerts INTO $upstream",
        "FROM /messages/modules/vigil/outputs/telemetry INTO $upstream",
    ]
    assert hub["storeAndForwardConfiguration"] == {"timeToLiveSecs": am.DEFAULT_TIME_TO_LIVE_S}
    # The route names the module the agent runs and whose twin the manifest sets.
    assert set(manifest["modulesContent"]) == {"$edgeAgent", "$edgeHub", am.MODULE_ID}
    assert manifest_for(time_to_live_s=600)["modulesContent"]["$edgeHub"]["properties.desired"][
        "storeAndForwardConfiguration"
    ] == {"timeToLiveSecs": 600}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"registry": "https://myacr.azurecr.io"}, "without a scheme"),
        ({"registry": ""}, "give a registry host"),
        ({"registry": REGISTRY, "version": "1.0 beta"}, "not a Docker tag"),
        ({"registry": REGISTRY, "time_to_live_s": 0}, "whole number of seconds >= 1"),
        ({"registry": REGISTRY, "time_to_live_s": True}, "whole number of seconds >= 1"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(am.ManifestError, match=message):
        am.build_manifest(STAGES["dev"], **kwargs)


def test_registry_credentials_come_from_the_environment_and_name_the_registry(tmp_path, monkeypatch):
    assert (
        "registryCredentials"
        not in manifest_for()["modulesContent"]["$edgeAgent"]["properties.desired"]["runtime"]["settings"]
    )
    monkeypatch.setenv(am.PASSWORD_ENV, "s3cret")
    argv = ["--registry", REGISTRY, "--registry-username", "myacr", "--stage", "dev", "--out-dir", str(tmp_path)]
    assert am.main(argv) == 0
    manifest = json.loads((tmp_path / "dev.deployment.json").read_text())
    settings = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["runtime"]["settings"]
    assert settings["registryCredentials"] == {
        "vigil": {"username": "myacr", "password": "s3cret", "address": REGISTRY}
    }
    monkeypatch.delenv(am.PASSWORD_ENV)
    assert am.main(argv) == 2  # a username without a password is refused, not written


# --- twin rules ---------------------------------------------------------------------------


def test_a_twin_key_iot_hub_refuses_is_named():
    """iot-hub-devguide-device-twins: keys exclude '.', '$', space and control characters;
    a label filter for 'cell phone' is a key with a space."""
    defaults = copy.deepcopy(DEFAULTS)
    zone = defaults["cameras"][0]["zones"][0]
    zone["objects"] = ["person", "cell phone"]
    zone["filters"] = {"cell phone": {"min_score": 0.6}}
    parse_config(defaults)  # the component itself accepts it
    with pytest.raises(am.ManifestError, match=r"zones\[0\]\.filters\.cell phone: twin keys may not contain ' '"):
        am.module_desired_properties(STAGES["dev"], defaults=defaults)


def test_twin_depth_string_and_size_limits():
    am.check_twin_document({"a": {"b": "x" * 4096}}, "t")
    with pytest.raises(am.ManifestError, match="string longer than 4 KB"):
        am.check_twin_document({"a": "x" * 4097}, "t")
    # The docs' valid example: ten objects nested below the document, the last with a value.
    deep: dict[str, Any] = {"property": "value"}
    for name in ("ten", "nine", "eight", "seven", "six", "five", "four", "three", "two", "one"):
        deep = {name: deep}
    am.check_twin_document(deep, "t")
    with pytest.raises(am.ManifestError, match="nested deeper than 10"):
        am.check_twin_document({"eleven": deep}, "t")
    with pytest.raises(am.ManifestError, match="over the 32 KB limit"):
        am.check_twin_document({f"k{i}": "x" * 4000 for i in range(9)}, "t")
    with pytest.raises(am.ManifestError, match=r"\$"):
        am.check_twin_document({"$version": 1}, "t")


def test_device_ids_must_also_be_valid_thing_names():
    """IoT Hub device IDs allow - . % _ * ? ! ( ) , : = @ $ ' (iot-hub-devguide-identity-registry);
    the alert's thing_name allows [a-zA-Z0-9:_-]{1,128} (edge_component/contracts)."""
    for stage in STAGES.values():
        for thing in stage.things:
            assert am.check_device_id(thing) == thing
    assert am.check_device_id("vigil-prod-cam:7_a") == "vigil-prod-cam:7_a"
    with pytest.raises(am.ManifestError, match="IoT Hub accepts it, but .* thing_name"):
        am.check_device_id("cam.01")
    with pytest.raises(am.ManifestError, match="not an IoT Hub device ID"):
        am.check_device_id("cam#1")
    with pytest.raises(am.ManifestError, match="not an IoT Hub device ID"):
        am.check_device_id("c" * 129)


# --- stages, files and the command --------------------------------------------------------


def test_a_bad_stage_name_is_a_clear_error(capsys, tmp_path):
    with pytest.raises(
        am.ManifestError, match=r"no stage 'staging' in cdk.json vigil:stages: the stages are \['dev', 'prod'\]"
    ):
        am.select_stage(STAGES, "staging")
    assert am.main(["--registry", REGISTRY, "--stage", "staging", "--out-dir", str(tmp_path)]) == 2
    assert "no stage 'staging'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_stage_in_cdk_json_names_the_stage_and_key(tmp_path):
    cdk = json.loads((REPO_ROOT / "cdk.json").read_text())
    cdk["context"]["vigil:stages"]["dev"]["edge"]["cooldown_s"] = -1
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(cdk))
    with pytest.raises(ConfigError, match=r"stage 'dev': edge\.cooldown_s"):
        am.load_cdk_stages(path)


def test_the_command_writes_one_valid_manifest_per_stage(tmp_path, capsys):
    assert am.main(["--registry", REGISTRY, "--out-dir", str(tmp_path), "--version", "1.2.3"]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{s}.deployment.json" for s in STAGES)
    for name in STAGES:
        manifest = json.loads((tmp_path / f"{name}.deployment.json").read_text())
        jsonschema.Draft202012Validator(SCHEMA).validate(manifest)
        assert vigil_module(manifest)["settings"]["image"] == f"{REGISTRY}/vigil-edge:1.2.3"
        assert manifest == manifest_for(name, version="1.2.3")
    assert capsys.readouterr().out.split() == [str(tmp_path / f"{s}.deployment.json") for s in STAGES]


def test_files_are_replaced_atomically_and_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "out" / "dev.deployment.json"
    am.write_json_atomically(path, {"v": 1})
    am.write_json_atomically(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    with pytest.raises(ValueError):
        am.write_json_atomically(path, {"v": float("nan")})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


# --- the image the manifest runs ----------------------------------------------------------


def test_the_dockerfile_state_dir_is_the_manifests_volume_and_the_tag_is_module_jsons():
    text = (REPO_ROOT / "edge_component" / "Dockerfile").read_text()
    [volume] = re.findall(r"^VOLUME\s+(.+)$", text, flags=re.M)
    assert json.loads(volume) == [am.STATE_DIR]
    [entrypoint] = re.findall(r"^ENTRYPOINT\s+(.+)$", text, flags=re.M)
    args = json.loads(entrypoint)
    assert args[args.index("--state-dir") + 1] == am.STATE_DIR
    module_json = json.loads((REPO_ROOT / "edge_component" / "module.json").read_text())
    assert module_json["image"]["repository"].endswith("/" + am.IMAGE_NAME)
    assert am.image_version() == module_json["image"]["tag"]["version"]


def test_make_azure_manifest_installs_every_package_the_command_imports():
    """`make azure-manifest` without `make setup` installs only AZURE_PINS (and what they
    depend on), taken from edge_component/requirements.txt: building and validating every
    stage's manifest must import nothing else (no CDK, no TensorFlow). Optional extras count
    as theirs: jsonschema imports its format checkers' packages when they are installed, as
    in .venv, and does without them in the small venv (`make azure-manifest` was run so)."""
    import subprocess
    import sys
    from importlib import metadata

    makefile = (REPO_ROOT / "Makefile").read_text()
    [pins_line] = re.findall(r"^AZURE_PINS := (.+)$", makefile, flags=re.M)
    azure_pins = pins_line.split()
    requirements = (REPO_ROOT / "edge_component" / "requirements.txt").read_text()
    for name in azure_pins:
        assert re.search(rf"^{re.escape(name)}==", requirements, flags=re.M), (
            f"{name} is not pinned in requirements.txt"
        )

    script = (
        "import sys, json\n"
        "from importlib import metadata\n"
        "from infra import azure_manifest as am\n"
        "for stage in am.load_cdk_stages().values():\n"
        "    am.validate_manifest(am.build_manifest(stage, registry='r.example'))\n"
        "dists = metadata.packages_distributions()\n"
        "used = set()\n"
        "for name, module in list(sys.modules.items()):\n"
        "    path = getattr(module, '__file__', None) or ''\n"
        "    if 'site-packages' in path:\n"
        "        used.update(dists.get(name.split('.')[0], []))\n"
        "print(json.dumps(sorted(used)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    used = {re.sub(r"[-_.]+", "-", d).lower() for d in json.loads(result.stdout.strip().splitlines()[-1])}

    def closure(names: list[str]) -> set[str]:
        """The pins and what they depend on, extras included (optional imports such as
        lark's of regex happen only when the package is there)."""
        top = {re.sub(r"[-_.]+", "-", n).lower() for n in names}
        seen: set[str] = set()
        todo = list(top)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            try:
                requirements = metadata.requires(name) or []
            except metadata.PackageNotFoundError:
                continue  # an optional extra not installed here: nothing of it can be imported
            for requirement in requirements:
                todo.append(re.sub(r"[-_.]+", "-", re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]).lower())
        return seen

    used -= {"setuptools", "pip"}  # the venv's own (setuptools' distutils hook loads at start-up)
    assert used, "the subprocess loaded nothing from site-packages: the check would pass vacuously"
    assert used <= closure(azure_pins), (
        f"imported but not installed by make azure-manifest: {used - closure(azure_pins)}"
    )


def test_a_registry_host_in_capitals_is_lowercased_and_capitals_in_its_path_are_named():
    """Host names are case-insensitive (RFC 4343); Docker repository paths must be lowercase
    ("invalid reference format: repository name must be lowercase", docker/distribution
    reference grammar: path components are [a-z0-9] with separators)."""
    assert am.module_image("MyACR.azurecr.io", "1.0.0") == "myacr.azurecr.io/vigil-edge:1.0.0"
    assert am.module_image("MyACR.azurecr.io:5000/team", "1.0.0") == "myacr.azurecr.io:5000/team/vigil-edge:1.0.0"
    with pytest.raises(am.ManifestError, match="the path 'Team' has capitals; Docker repository names are lowercase"):
        am.module_image("myacr.azurecr.io/Team", "1.0.0")
