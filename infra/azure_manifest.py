"""The Azure IoT Edge deployment manifest of a stage: the same edge component, settings and
cameras as the stage's Greengrass deployment, deployed as the IoT Edge module ``vigil``.

Usage (``make azure-manifest`` runs it for every stage)::

    python -m infra.azure_manifest --registry myacr.azurecr.io [--stage dev] [--out-dir build/azure]

writes ``build/azure/<stage>.deployment.json``, for
``az iot edge set-modules --hub-name H --device-id D --content build/azure/<stage>.deployment.json``.
Needs pydantic, PyYAML, OpenCV and NumPy (the edge component's configuration models),
not the CDK.

The shape follows Microsoft's documentation of the manifest:

- https://learn.microsoft.com/azure/iot-edge/module-composition (``modulesContent``,
  ``$edgeAgent``/``$edgeHub``/``<module>`` each with ``properties.desired``, routes
  ``FROM /messages/modules/{moduleId}/outputs/{output} INTO $upstream``)
- https://learn.microsoft.com/azure/iot-edge/module-edgeagent-edgehub (the desired
  properties of both runtime modules: schemaVersion 1.1, runtime.type docker,
  runtime.settings.minDockerVersion, systemModules.*.settings.image, edgeHub status
  running and restartPolicy always, modules.{id}.version/type/status/restartPolicy/
  settings.image/settings.createOptions, storeAndForwardConfiguration.timeToLiveSecs)
- https://learn.microsoft.com/azure/iot-edge/how-to-use-create-options (createOptions
  is Docker's container-create body, stringified)
- createOptions longer than 512 characters: the edge agent reads ``createOptions`` and
  then ``createOptions01``..``createOptions07`` and joins them (Azure/iotedge
  doc/ExtendingCreateOptions.md; edge-agent DockerConfig.cs chunks by
  Constants.TwinValueMaxSize = 512).
- twin documents (the module's desired properties): keys without ``.``, ``$``, space or
  control characters, up to 1 KB; strings up to 4 KB; nesting up to 10; 32 KB in all
  (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins, "Tags and
  properties format", "Device twin size").

IoT Edge device IDs may be up to 128 of ``[a-zA-Z0-9]`` and ``- . % _ * ? ! ( ) , : = @ $ '``
(https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-identity-registry, "Device
identity properties"); the alerts carry the device ID as ``thing_name``, whose schema
(edge_component/contracts) allows only ``[a-zA-Z0-9:_-]{1,128}``, the AWS thing-name set.
:func:`check_device_id` refuses the rest (``.``, ``%``, ``*`` ...) with a clear error.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from infra.config import STAGES_CONTEXT_KEY, StageConfig, load_stages

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = REPO_ROOT / "cdk.json"
RECIPE_PATH = REPO_ROOT / "edge_component" / "recipe.yaml"
MODULE_JSON = REPO_ROOT / "edge_component" / "module.json"
SCHEMA_PATH = REPO_ROOT / "infra" / "schemas" / "iotedge-deployment.schema.json"
DEFAULT_OUT_DIR = REPO_ROOT / "build" / "azure"
PASSWORD_ENV = "VIGIL_REGISTRY_PASSWORD"

MODULE_ID = "vigil"
IMAGE_NAME = "vigil-edge"
ALERTS_OUTPUT = "alerts"
TELEMETRY_OUTPUT = "telemetry"
# The runtime images, pinned to the 1.5 LTS line (the supported release).
EDGE_AGENT_IMAGE = "mcr.microsoft.com/azureiotedge-agent:1.5"
EDGE_HUB_IMAGE = "mcr.microsoft.com/azureiotedge-hub:1.5"
SCHEMA_VERSION = "1.1"
MIN_DOCKER_VERSION = "v1.25"
# The edge hub publishes no ports on the host: modules reach it on IoT Edge's own Docker
# network; the usual PortBindings (443, 5671, 8883) are for downstream devices of a
# gateway, which a camera host is not, and would open those ports on it.
EDGE_HUB_CREATE_OPTIONS: dict[str, Any] = {}
# Where the module keeps its outbox and snapshots (the image's VOLUME and --state-dir;
# tests/infra/test_azure_manifest.py checks the Dockerfile agrees), and the named volume
# that survives a new image or container.
STATE_DIR = "/var/lib/vigil"
STATE_VOLUME = "vigil-state"
# How long the edge hub keeps messages it could not forward. The module's outbox drops an
# alert once the edge hub has it, so this is how long an alert survives an outage; a day
# covers a night without network.
DEFAULT_TIME_TO_LIVE_S = 86_400

# Twin limits (iot-hub-devguide-device-twins) and the createOptions chunking (edge agent).
TWIN_VALUE_MAX_CHARS = 512
CREATE_OPTIONS_MAX_CHUNKS = 8  # createOptions, createOptions01 .. createOptions07
TWIN_KEY_MAX_BYTES = 1024
TWIN_STRING_MAX_BYTES = 4096
TWIN_MAX_DEPTH = 10
TWIN_DESIRED_MAX_BYTES = 32 * 1024
_TWIN_KEY_FORBIDDEN = re.compile(r"[.$ \x00-\x1f\x7f-\x9f]")
# Keys Greengrass adds to the component configuration that are not the component's own
# settings (edge_component.config._GREENGRASS_KEYS); accessControl's keys contain '.'.
GREENGRASS_ONLY_KEYS = ("accessControl",)
# How Greengrass sends (publisher: greengrass, or mqtt with its settings): the module always
# sends to its outputs through the edge hub and refuses these keys in its twin
# (edge_component/__main__.py _module_config), so they are left out of it.
TRANSPORT_KEYS = ("publisher", "mqtt")
# The classifier the module runs: the bundle's float32 ONNX model in ONNX Runtime, the
# usual runtime of IoT Edge modules, where Greengrass runs the int8 TFLite model (the
# bundle manifest's model_file). A difference from the Greengrass configuration on purpose
# (tests/infra/test_azure_manifest.py names it); a twin patch of model_file: model.tflite
# (or null: the manifest's) switches the module back to LiteRT. The detector stays on LiteRT on both
# (README "Azure IoT Edge"; benchmarks/bench_detector_onnx.py).
MODULE_MODEL_FILE = "model.onnx"

# Device IDs the alerts' thing_name accepts (edge_component/contracts alert schema).
DEVICE_ID_PATTERN = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
# What IoT Hub itself accepts for a device ID (identity registry).
IOT_HUB_DEVICE_ID_PATTERN = re.compile(r"^[a-zA-Z0-9\-.%_*?!(),:=@$']{1,128}$")
# Docker's image reference, less strict than Docker's own (as the edge agent's check).
_REGISTRY_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$")
_TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ManifestError(ValueError):
    """The manifest cannot be written: the message names the stage, key or argument."""


# --- the component configuration, as the Greengrass deployment leaves it on a device -----


def _pointer_parts(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise ManifestError(f"reset {pointer!r}: not a JSON pointer")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _lookup(document: Any, parts: Sequence[str]) -> tuple[bool, Any]:
    for part in parts:
        if not isinstance(document, Mapping) or part not in document:
            return False, None
        document = document[part]
    return True, document


def apply_configuration_update(
    defaults: Mapping[str, Any], merge: Mapping[str, Any], reset: Sequence[str]
) -> dict[str, Any]:
    """The component configuration after a Greengrass ``configurationUpdate`` over ``defaults``.

    As Greengrass applies it: each ``reset`` JSON pointer first (back to the default's
    value, or removed where the default has none), then ``merge`` (objects merged key by
    key, anything else replaced). ``defaults`` is not changed.
    """
    config = copy.deepcopy(dict(defaults))
    for pointer in reset:
        parts = _pointer_parts(pointer)
        has_default, default = _lookup(defaults, parts)
        found, parent = _lookup(config, parts[:-1])
        if found and isinstance(parent, dict):
            if has_default:
                parent[parts[-1]] = copy.deepcopy(default)
            else:
                parent.pop(parts[-1], None)

    def _merge(target: dict[str, Any], update: Mapping[str, Any]) -> None:
        for key, value in update.items():
            if isinstance(value, Mapping) and isinstance(target.get(key), dict):
                _merge(target[key], value)
            else:
                target[key] = copy.deepcopy(value)

    _merge(config, merge)
    return config


def recipe_defaults(recipe_path: Path = RECIPE_PATH) -> dict[str, Any]:
    """The recipe's ``ComponentConfiguration.DefaultConfiguration`` (cameras included)."""
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    try:
        defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    except (KeyError, TypeError):
        raise ManifestError(f"{recipe_path}: no ComponentConfiguration.DefaultConfiguration") from None
    if not isinstance(defaults, dict):
        raise ManifestError(f"{recipe_path}: ComponentConfiguration.DefaultConfiguration must be a mapping")
    return defaults


def component_configuration(stage: StageConfig, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stage's component configuration on a device: the recipe's defaults (cameras,
    zones, ...) with the stage's ``edge`` settings applied through
    :meth:`infra.edge_settings.EdgeConfig.configuration_update`, the update the Greengrass
    deployment sends (infra/edge_deployment.py), then checked with the component's own
    ``edge_component.config.parse_config``."""
    from edge_component.config import ConfigError as ComponentConfigError
    from edge_component.config import parse_config

    merge, reset = stage.edge.configuration_update()
    config = apply_configuration_update(recipe_defaults() if defaults is None else defaults, merge, reset)
    try:
        parse_config(config)
    except ComponentConfigError as exc:
        raise ManifestError(f"stage {stage.name!r}: the edge component refuses its configuration: {exc}") from None
    return config


def module_desired_properties(stage: StageConfig, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``vigil`` module twin's desired properties: the component configuration without
    the Greengrass-only keys (``accessControl``: IPC authorisation, meaningless on IoT Edge,
    and its keys contain ``.``, which twin keys may not), without ``publisher`` and ``mqtt``
    (the module sends through the edge hub whatever they say), and with ``model_file``
    :data:`MODULE_MODEL_FILE` (ONNX Runtime) unless the configuration already names a model
    file. Checked against the twin limits."""
    config = component_configuration(stage, defaults)
    desired = {k: v for k, v in config.items() if k not in GREENGRASS_ONLY_KEYS + TRANSPORT_KEYS}
    if desired.get("model_file") is None:
        desired["model_file"] = MODULE_MODEL_FILE
    check_twin_document(desired, f"stage {stage.name!r}: {MODULE_ID}.properties.desired")
    return desired


def _twin_size(value: Any) -> int:
    """Size as IoT Hub counts it: keys and strings by their characters (control characters
    excluded), numbers 8 bytes, booleans 4, containers the sum of what they hold."""
    if isinstance(value, Mapping):
        return sum(len(_TWIN_KEY_FORBIDDEN.sub("", k)) + _twin_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_twin_size(v) for v in value)
    if isinstance(value, bool):
        return 4
    if isinstance(value, int | float):
        return 8
    if value is None:
        return 0
    return len(re.sub(r"[\x00-\x1f\x7f-\x9f]", "", str(value)))


def check_twin_document(document: Mapping[str, Any], where: str) -> None:
    """Raise :class:`ManifestError` (naming the key) if ``document`` breaks IoT Hub's twin
    rules: a key with ``.``, ``$``, a space or a control character or over 1 KB; a string
    over 4 KB; nesting deeper than 10; over 32 KB in all; or a value that is not JSON."""

    def walk(value: Any, path: str, depth: int) -> None:
        if isinstance(value, Mapping | list | tuple):
            if depth > TWIN_MAX_DEPTH:
                raise ManifestError(f"{where}: {path}: nested deeper than {TWIN_MAX_DEPTH} (the twin limit)")
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, item in items:
                if isinstance(value, Mapping):
                    if not isinstance(key, str) or not key:
                        raise ManifestError(f"{where}: {path}: keys must be non-empty strings, got {key!r}")
                    bad = _TWIN_KEY_FORBIDDEN.search(key)
                    if bad:
                        raise ManifestError(
                            f"{where}: {path}.{key}: twin keys may not contain {bad.group()!r} "
                            "('.', '$', space and control characters are not allowed)"
                        )
                    if len(key.encode("utf-8")) > TWIN_KEY_MAX_BYTES:
                        raise ManifestError(f"{where}: {path}.{key[:40]}...: key longer than 1 KB")
                walk(item, f"{path}.{key}" if isinstance(value, Mapping) else f"{path}[{key}]", depth + 1)
        elif isinstance(value, str):
            if len(value.encode("utf-8")) > TWIN_STRING_MAX_BYTES:
                raise ManifestError(f"{where}: {path}: string longer than 4 KB (the twin limit)")
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise ManifestError(f"{where}: {path}: {value} is not a JSON number")
        elif not (value is None or isinstance(value, bool | int)):
            raise ManifestError(f"{where}: {path}: {type(value).__name__} is not a JSON value")

    # The document itself is level 0: the docs' valid example nests ten objects below "tags".
    walk(document, "(desired)", 0)
    size = _twin_size(document)
    if size > TWIN_DESIRED_MAX_BYTES:
        raise ManifestError(f"{where}: {size} bytes, over the 32 KB limit of a twin's desired properties")


# --- createOptions -----------------------------------------------------------------------


VIDEO_GROUP = "video"  # owns /dev/videoN (gid 44 on Debian, Ubuntu, Raspberry Pi OS and in the image)


def camera_devices(config: Mapping[str, Any]) -> list[str]:
    """``/dev/videoN`` for every camera whose source is an integer index (OpenCV's V4L2
    device N), in camera order without repeats; URLs and files need no device."""
    devices: list[str] = []
    for camera in config.get("cameras") or []:
        source = str(camera.get("source", "")).strip()
        if source.isdigit():
            device = f"/dev/video{int(source)}"
            if device not in devices:
                devices.append(device)
    return devices


def create_options(devices: Sequence[str]) -> dict[str, Any]:
    """Docker's container-create options for the module: the camera devices (read and
    write, as V4L2 needs), the state volume bound at :data:`STATE_DIR`."""
    host_config: dict[str, Any] = {"Binds": [f"{STATE_VOLUME}:{STATE_DIR}"]}
    if devices:
        host_config["Devices"] = [{"PathOnHost": d, "PathInContainer": d, "CgroupPermissions": "rwm"} for d in devices]
        # "A list of additional groups that the container process will run as" (Docker Engine
        # API, HostConfig.GroupAdd: docs.docker.com/reference/api/engine/); a name is looked
        # up in the image's /etc/group (runc GetAdditionalGroups). Besides the image's
        # "USER 10001" (implicit form), so the device opens even if an image names a group.
        host_config["GroupAdd"] = [VIDEO_GROUP]
    return {"HostConfig": host_config}


def split_create_options(options: Mapping[str, Any] | str) -> dict[str, str]:
    """``{"createOptions": ..., "createOptions01": ..., ...}``: the options as compact JSON
    in chunks of at most 512 characters, in order, as the edge agent joins them.

    Raises :class:`ManifestError` past ``createOptions07`` (8 chunks, 4 KB).
    """
    text = options if isinstance(options, str) else json.dumps(options, separators=(",", ":"), sort_keys=True)
    chunks = [text[i : i + TWIN_VALUE_MAX_CHARS] for i in range(0, len(text), TWIN_VALUE_MAX_CHARS)] or [""]
    if len(chunks) > CREATE_OPTIONS_MAX_CHUNKS:
        raise ManifestError(
            f"createOptions is {len(text)} characters: more than the {CREATE_OPTIONS_MAX_CHUNKS} chunks of "
            f"{TWIN_VALUE_MAX_CHARS} (createOptions..createOptions07) the edge agent reads"
        )
    return {("createOptions" if i == 0 else f"createOptions{i:02d}"): c for i, c in enumerate(chunks)}


def join_create_options(settings: Mapping[str, Any]) -> str:
    """The edge agent's reading of a module's ``settings``: ``createOptions`` then
    ``createOptions01``.. joined in order. Raises :class:`ManifestError` on a gap."""
    numbered = sorted(k for k in settings if re.fullmatch(r"createOptions\d{2}", k))
    expected = [f"createOptions{i:02d}" for i in range(1, len(numbered) + 1)]
    if numbered != expected:
        raise ManifestError(f"createOptions chunks must run 01.. without gaps, got {numbered}")
    return "".join(settings[k] for k in ["createOptions", *expected] if k in settings)


# --- the manifest ------------------------------------------------------------------------


def image_version(module_json: Path = MODULE_JSON) -> str:
    """``image.tag.version`` of edge_component/module.json: the image tag by default."""
    try:
        return str(json.loads(module_json.read_text(encoding="utf-8"))["image"]["tag"]["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{module_json}: cannot read image.tag.version ({exc})") from None


def module_image(registry: str, version: str) -> str:
    """``<registry>/vigil-edge:<version>``; ManifestError naming a bad registry or tag."""
    registry = registry.strip().removesuffix("/")
    host, slash, path = registry.partition("/")
    if path != path.lower():
        raise ManifestError(
            f"registry {registry!r}: the path {path!r} has capitals; Docker repository names are lowercase "
            "(docker: 'invalid reference format: repository name must be lowercase')"
        )
    # Host names are case-insensitive (RFC 4343) and ACR login servers are lowercase: MyACR.azurecr.io works.
    registry = host.lower() + slash + path
    if not registry or "://" in registry or not _REGISTRY_PATTERN.fullmatch(registry):
        raise ManifestError(
            f"registry {registry!r}: give a registry host (and optional path), e.g. myacr.azurecr.io, without a scheme"
        )
    if not _TAG_PATTERN.fullmatch(version):
        raise ManifestError(f"version {version!r}: not a Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")
    return f"{registry}/{IMAGE_NAME}:{version}"


def routes() -> dict[str, str]:
    """The module's ``alerts`` and ``telemetry`` outputs to IoT Hub."""
    return {
        f"{MODULE_ID}{name.capitalize()}ToIoTHub": f"FROM /messages/modules/{MODULE_ID}/outputs/{name} INTO $upstream"
        for name in (ALERTS_OUTPUT, TELEMETRY_OUTPUT)
    }


def build_manifest(
    stage: StageConfig,
    *,
    registry: str,
    version: str | None = None,
    time_to_live_s: int = DEFAULT_TIME_TO_LIVE_S,
    defaults: Mapping[str, Any] | None = None,
    registry_credentials: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The deployment manifest (``modulesContent``) for ``stage``.

    Args:
        registry: container registry host (and path) the image was pushed to.
        version: image tag; default edge_component/module.json's ``image.tag.version``.
        time_to_live_s: ``storeAndForwardConfiguration.timeToLiveSecs`` (seconds, >= 1).
        defaults: the component's default configuration; default the recipe's.
        registry_credentials: ``(username, password)`` the edge agent pulls the image with
            (``runtime.settings.registryCredentials``); None for a public registry or one
            the device can already pull from.

    Raises:
        ManifestError: a bad registry, tag or TTL, or a configuration the component or
            the twin limits refuse.
    """
    if isinstance(time_to_live_s, bool) or not isinstance(time_to_live_s, int) or time_to_live_s < 1:
        raise ManifestError(f"time to live {time_to_live_s!r}: must be a whole number of seconds >= 1")
    version = image_version() if version is None else version
    image = module_image(registry, version)
    desired = module_desired_properties(stage, defaults)
    runtime_settings: dict[str, Any] = {"minDockerVersion": MIN_DOCKER_VERSION, "loggingOptions": ""}
    if registry_credentials is not None:
        username, password = registry_credentials
        if not username or not password:
            raise ManifestError("registry credentials need both a username and a password")
        runtime_settings["registryCredentials"] = {
            "vigil": {"username": username, "password": password, "address": image.split("/", 1)[0]}
        }
    module = {
        "version": version,  # user-defined (module-edgeagent-edgehub): the image's tag
        "type": "docker",
        "status": "running",
        "restartPolicy": "always",
        "settings": {"image": image, **split_create_options(create_options(camera_devices(desired)))},
    }
    return {
        "modulesContent": {
            "$edgeAgent": {
                "properties.desired": {
                    "schemaVersion": SCHEMA_VERSION,
                    "runtime": {"type": "docker", "settings": runtime_settings},
                    "systemModules": {
                        "edgeAgent": {
                            "type": "docker",
                            "settings": {"image": EDGE_AGENT_IMAGE, "createOptions": ""},
                        },
                        "edgeHub": {
                            "type": "docker",
                            "status": "running",
                            "restartPolicy": "always",
                            "settings": {"image": EDGE_HUB_IMAGE, **split_create_options(EDGE_HUB_CREATE_OPTIONS)},
                        },
                    },
                    "modules": {MODULE_ID: module},
                }
            },
            "$edgeHub": {
                "properties.desired": {
                    "schemaVersion": SCHEMA_VERSION,
                    "routes": routes(),
                    "storeAndForwardConfiguration": {"timeToLiveSecs": time_to_live_s},
                }
            },
            MODULE_ID: {"properties.desired": desired},
        }
    }


def validate_manifest(manifest: Mapping[str, Any], schema_path: Path = SCHEMA_PATH) -> None:
    """Check ``manifest`` against infra/schemas/iotedge-deployment.schema.json (the documented
    shape) and that every module's createOptions chunks join into a JSON object, as the edge
    agent reads them. Raises :class:`ManifestError` naming the first problem's path."""
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(manifest)"
        raise ManifestError(f"manifest does not match the IoT Edge deployment schema at {where}: {first.message}")
    agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    modules = {**agent["systemModules"], **agent.get("modules", {})}
    for name, module in modules.items():
        text = join_create_options(module["settings"])
        if text:
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise ManifestError(f"module {name!r}: createOptions is not JSON once joined ({exc})") from None
            if not isinstance(parsed, dict):
                raise ManifestError(f"module {name!r}: createOptions must be a JSON object")


def check_device_id(device_id: str) -> str:
    """``device_id`` if it can be this module's device; ManifestError otherwise: IoT Hub
    allows more characters than the alerts' ``thing_name`` (``[a-zA-Z0-9:_-]{1,128}``)."""
    if DEVICE_ID_PATTERN.fullmatch(device_id):
        return device_id
    if IOT_HUB_DEVICE_ID_PATTERN.fullmatch(device_id):
        raise ManifestError(
            f"device ID {device_id!r}: IoT Hub accepts it, but Vigil's alerts name the device in thing_name, "
            "which allows only letters, digits, ':', '_' and '-' (1-128): choose a device ID without "
            "'.', '%', '*', '?', '!', '(', ')', ',', '=', '@', '$' or quotes"
        )
    raise ManifestError(f"device ID {device_id!r}: not an IoT Hub device ID (1-128 of [a-zA-Z0-9:_-] for Vigil)")


def load_cdk_stages(cdk_json: Path = CDK_JSON) -> dict[str, StageConfig]:
    """Every stage of ``cdk.json`` (``context.vigil:stages``), validated as ``app.py`` does."""
    try:
        context = json.loads(cdk_json.read_text(encoding="utf-8"))["context"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{cdk_json}: cannot read context ({exc})") from None
    return load_stages(context.get(STAGES_CONTEXT_KEY))


def select_stage(stages: Mapping[str, StageConfig], name: str) -> StageConfig:
    """The stage called ``name``; ManifestError listing the stages there are otherwise."""
    if name not in stages:
        raise ManifestError(f"no stage {name!r} in cdk.json {STAGES_CONTEXT_KEY}: the stages are {sorted(stages)}")
    return stages[name]


def write_json_atomically(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON to ``path`` through a temporary file in the same
    folder and a rename: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifests(
    stages: Mapping[str, StageConfig],
    out_dir: Path,
    *,
    registry: str,
    version: str | None = None,
    time_to_live_s: int = DEFAULT_TIME_TO_LIVE_S,
    registry_credentials: tuple[str, str] | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<stage>.deployment.json`` for each stage; return the paths.

    Every manifest is built and validated (:func:`validate_manifest`) before the first
    is written.
    """
    manifests = {
        name: build_manifest(
            stage,
            registry=registry,
            version=version,
            time_to_live_s=time_to_live_s,
            registry_credentials=registry_credentials,
        )
        for name, stage in stages.items()
    }
    for name, manifest in manifests.items():
        try:
            validate_manifest(manifest)
        except ManifestError as exc:
            raise ManifestError(f"stage {name!r}: {exc}") from None
    paths = []
    for name, manifest in manifests.items():
        path = out_dir / f"{name}.deployment.json"
        write_json_atomically(path, manifest)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.azure_manifest",
        description="Write the Azure IoT Edge deployment manifest of each stage in cdk.json.",
    )
    parser.add_argument("--registry", required=True, help="container registry of the image, e.g. myacr.azurecr.io")
    parser.add_argument("--version", help="image tag (default: edge_component/module.json image.tag.version)")
    parser.add_argument("--stage", action="append", help="only this stage (repeatable; default every stage)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="default build/azure")
    parser.add_argument(
        "--registry-username",
        help=f"write registryCredentials for the registry with this user; the password from ${PASSWORD_ENV}",
    )
    parser.add_argument("--cdk-json", type=Path, default=CDK_JSON)
    parser.add_argument(
        "--time-to-live-s", type=int, default=DEFAULT_TIME_TO_LIVE_S, help="edge hub store-and-forward TTL (s)"
    )
    args = parser.parse_args(argv)
    credentials = None
    if args.registry_username:
        # From the environment, never the command line (shell history, ps).
        credentials = (args.registry_username, os.environ.get(PASSWORD_ENV, ""))
    try:
        stages = load_cdk_stages(args.cdk_json)
        if args.stage:
            stages = {name: select_stage(stages, name) for name in args.stage}
        paths = write_manifests(
            stages,
            args.out_dir,
            registry=args.registry,
            version=args.version,
            time_to_live_s=args.time_to_live_s,
            registry_credentials=credentials,
        )
    except ValueError as exc:  # ManifestError and infra.config.ConfigError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
