"""edge_component/Dockerfile, module.json and requirements-iotedge.txt: the IoT Edge module's
image, checked by reading the files (there is no Docker in the test run).

Dockerfile semantics: https://docs.docker.com/reference/dockerfile/ (exec-form ENTRYPOINT
is a JSON array; the last USER applies to ENTRYPOINT; VOLUME initialises a new named volume
from the image's content at that path, owner included). module.json's layout:
https://learn.microsoft.com/azure/iot-edge/how-to-configure-module-build-options
(image.repository, image.tag.version, image.tag.platforms as <platform key>: <dockerfile>,
image.buildOptions, image.contextPath), the file iotedgedev and the VS Code extension build from.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest

EDGE_DIR = Path(__file__).resolve().parents[2] / "edge_component"
DOCKERFILE = EDGE_DIR / "Dockerfile"
REQUIREMENTS = EDGE_DIR / "requirements.txt"
IOTEDGE_REQUIREMENTS = EDGE_DIR / "requirements-iotedge.txt"
# requirements.txt's pins the IoT Edge image swaps, and what it has instead.
SWAPPED_OUT = {"paho-mqtt"}
ADDED = {"azure-iot-device": "2.14.0"}
APP_DIR = "/opt/vigil"


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order: comments dropped, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


INSTRUCTIONS = instructions(DOCKERFILE.read_text())


def only(keyword: str) -> str:
    found = [args for kw, args in INSTRUCTIONS if kw == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def pins(path: Path) -> dict[str, str]:
    """``{name: version}`` of ``name==version`` lines (comments after '#' dropped)."""
    result: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([A-Za-z0-9.+!-]+)", line)
        assert match, f"{path.name}: {raw!r} is not pinned with =="
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        assert name not in result, f"{path.name}: {name} listed twice"
        result[name] = match.group(3)
    return result


def test_the_parser_reads_continuations_and_comments():
    parsed = instructions("# c\nFROM a:1\nRUN x \\\n  # inner\n  && y\nUSER 1\n")
    assert parsed == [("FROM", "a:1"), ("RUN", "x  && y"), ("USER", "1")]


def test_the_base_is_a_python_slim_image_pinned_to_a_patch_release():
    base = only("FROM")
    match = re.fullmatch(r"python:(3)\.(\d+)\.(\d+)-slim(-[a-z]+)?", base)
    assert match, f"base {base!r}: pin python:<major.minor.patch>-slim[-<debian>]"
    # The versions the project supports (pyproject requires-python >=3.11,<3.14).
    assert 11 <= int(match.group(2)) <= 13


def test_it_runs_as_a_fixed_non_root_user_created_in_the_image():
    """In the implicit form (a uid, no group), so that runc gives the process the user's
    supplementary groups from /etc/group (video): "Supplementary group ids only make sense
    if in the implicit form" (GetExecUser, opencontainers/runc libcontainer/user/user.go)."""
    users = [args for kw, args in INSTRUCTIONS if kw == "USER"]
    assert users, "no USER: the module would run as root"
    assert ":" not in users[-1], f"USER {users[-1]}: a named group drops the video group, /dev/videoN won't open"
    user = users[-1]
    assert user not in ("root", "0")
    keywords = [kw for kw, _ in INSTRUCTIONS]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    created = " ".join(args for kw, args in INSTRUCTIONS if kw == "RUN")
    assert re.search(rf"useradd\b.*--uid {re.escape(user)}\b", created), "the uid USER names is not created"
    assert "--groups video" in created  # so the mapped /dev/videoN opens


def test_the_iotedge_requirements_file_is_the_one_installed():
    copies = [shlex.split(args) for kw, args in INSTRUCTIONS if kw == "COPY"]
    assert ["requirements-iotedge.txt", "/tmp/requirements-iotedge.txt"] in copies
    installs = [args for kw, args in INSTRUCTIONS if kw == "RUN" and "pip install" in args]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    assert words[words.index("-r") + 1] == "/tmp/requirements-iotedge.txt"
    # Nothing else is installed: no package named on the command line, one -r.
    after = words[words.index("install") + 1 : words.index("&&") if "&&" in words else None]
    assert [w for w in after if not w.startswith("-")] == ["/tmp/requirements-iotedge.txt"]


def test_iotedge_pins_equal_the_greengrass_venvs_but_for_the_mqtt_swap():
    greengrass, iotedge = pins(REQUIREMENTS), pins(IOTEDGE_REQUIREMENTS)
    assert SWAPPED_OUT <= set(greengrass)
    assert {k: v for k, v in greengrass.items() if k not in SWAPPED_OUT} == {
        k: v for k, v in iotedge.items() if k not in ADDED
    }
    assert {k: iotedge.get(k) for k in ADDED} == ADDED
    assert not SWAPPED_OUT & set(iotedge)  # paho-mqtt<2 comes with azure-iot-device


def test_the_code_and_model_bundle_are_in_the_image_and_the_entrypoint_runs_the_module():
    copies = [shlex.split(args) for kw, args in INSTRUCTIONS if kw == "COPY"]
    assert [".", f"{APP_DIR}/edge_component/"] in copies  # the context is edge_component/
    assert only("WORKDIR") == APP_DIR
    entrypoint = json.loads(only("ENTRYPOINT"))  # exec form: signals reach python, not a shell
    assert entrypoint[:5] == ["python", "-m", "edge_component", "run", "--iotedge"]
    assert entrypoint[entrypoint.index("--state-dir") + 1] == "/var/lib/vigil"
    model_dir = entrypoint[entrypoint.index("--model-dir") + 1]
    assert model_dir == f"{APP_DIR}/edge_component/models/seed"
    bundle = EDGE_DIR / Path(model_dir).relative_to(f"{APP_DIR}/edge_component")
    assert (bundle / "manifest.json").is_file() and (bundle / "model.tflite").is_file()


def test_the_state_dir_is_a_volume_the_user_owns():
    volume = json.loads(only("VOLUME"))
    assert volume == ["/var/lib/vigil"]
    keywords = [kw for kw, _ in INSTRUCTIONS]
    runs_before_volume = [args for kw, args in INSTRUCTIONS[: keywords.index("VOLUME")] if kw == "RUN"]
    user = [args for kw, args in INSTRUCTIONS if kw == "USER"][-1]
    assert any(re.search(rf"chown {user}(:\S+)? /var/lib/vigil", r) for r in runs_before_volume), (
        "a new named volume copies the image's owner of the mount point: chown it before VOLUME"
    )


def dockerignore_patterns() -> list[str]:
    lines = (EDGE_DIR / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching, enough for these patterns (last match wins)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        candidates = [relative, *(str(p) for p in Path(relative).parents if str(p) != ".")]
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.removeprefix("**/")) for c in candidates):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        "__main__.py",
        "config.py",
        "requirements-iotedge.txt",
        "models/seed/manifest.json",
        "models/seed/model.tflite",
        "models/seed/model.onnx",
        "models/detector/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
        "contracts/alert.schema.json",
    ],
)
def test_the_dockerignore_keeps_what_the_module_needs(path):
    assert (EDGE_DIR / path).exists(), path
    patterns = dockerignore_patterns()
    assert not dockerignored(path, patterns)


def test_the_dockerignore_drops_build_leftovers():
    patterns = dockerignore_patterns()
    for path in ("__pycache__/config.cpython-312.pyc", "delivery/__pycache__/x.pyc", "greengrass-build/recipes/r.json"):
        assert dockerignored(path, patterns), path


def test_module_json_is_in_the_layout_iotedgedev_builds_from():
    module = json.loads((EDGE_DIR / "module.json").read_text())
    assert module["$schema-version"] == "0.0.1"
    image = module["image"]
    assert image["repository"] == "${CONTAINER_REGISTRY_SERVER}/vigil-edge"
    assert re.fullmatch(r"\d+\.\d+\.\d+", image["tag"]["version"])
    # <platform key>: <dockerfile>, relative to module.json; one multi-arch Dockerfile for both.
    assert image["tag"]["platforms"] == {"amd64": "./Dockerfile", "arm64v8": "./Dockerfile"}
    for dockerfile in image["tag"]["platforms"].values():
        assert (EDGE_DIR / dockerfile).resolve() == DOCKERFILE
    assert image["buildOptions"] == []
    assert (EDGE_DIR / image["contextPath"]).resolve() == EDGE_DIR
    assert module["language"] == "python"
