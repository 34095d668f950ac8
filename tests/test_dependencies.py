"""Dependencies: pyproject.toml's groups are the one list of pins, and what ships
elsewhere agrees with them: the device's requirements (edge_component/requirements.txt),
the SageMaker container's (training/requirements.txt) and the alert Lambda's bundle,
which carries no third-party code (Powertools comes from its layer, boto3 from the runtime)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
GROUPS = ("edge", "lambda", "training", "infra", "dev")
# name[extras]==version, or a bare name (the training image supplies that package).
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[(?P<extras>[^\]]*)\])?\s*(?:==\s*(?P<version>[^\s;#]+))?$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _parse(line: str) -> tuple[str, frozenset[str], str | None]:
    match = REQUIREMENT.match(line.split("#")[0].strip())
    assert match, f"not name[extras]==version: {line!r}"
    extras = frozenset(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
    return _normal(match["name"]), extras, match["version"]


def group(name: str) -> dict[str, tuple[frozenset[str], str | None]]:
    """``{package: (extras, version)}`` of an optional-dependency group, ``vigil[...]`` expanded."""
    out: dict[str, tuple[frozenset[str], str | None]] = {}
    for line in PYPROJECT["project"]["optional-dependencies"][name]:
        package, extras, version = _parse(line)
        if package == _normal(PYPROJECT["project"]["name"]):
            for included in extras:
                out |= group(included)
        else:
            out[package] = (extras, version)
    return out


def requirements_file(path: Path) -> dict[str, tuple[frozenset[str], str | None]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.split("#")[0].strip()]
    return {package: (extras, version) for package, extras, version in map(_parse, lines)}


def test_every_group_exists_pins_exactly_and_installing_the_project_installs_nothing_else():
    assert PYPROJECT["project"]["dependencies"] == []
    assert set(PYPROJECT["project"]["optional-dependencies"]) == set(GROUPS)
    for name in GROUPS:
        unpinned = [p for p, (_, version) in group(name).items() if version is None]
        assert not unpinned, f"group {name}: {unpinned} not pinned with =="


def test_a_package_in_several_groups_has_one_version():
    seen: dict[str, tuple[str, str | None]] = {}
    for name in GROUPS:
        for package, (_, version) in group(name).items():
            if package in seen:
                assert seen[package][1] == version, f"{package}: {seen[package]} vs {name} {version}"
            seen[package] = (name, version)


def test_make_installs_every_group():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    (extras,) = re.findall(r'pip install [^\n]*"\.\[([^\]]+)\]"', makefile)
    assert set(extras.split(",")) == set(GROUPS)


def test_the_device_installs_the_edge_group_pins():
    """edge_component/requirements.txt (the recipe's install step) is the edge group: same
    packages, same versions; extras may be fewer on the device (jsonschema's format
    checkers are a test concern)."""
    device, edge = requirements_file(REPO / "edge_component" / "requirements.txt"), group("edge")
    assert set(device) == set(edge)
    for package, (extras, version) in device.items():
        assert version == edge[package][1], package
        assert extras <= edge[package][0], package


def test_the_training_container_installs_the_training_group_pins():
    """training/requirements.txt pins exactly what the training group pins, TensorFlow,
    tf-keras and NumPy included: the newest SageMaker TensorFlow training image is 2.19
    (aws/deep-learning-containers tensorflow/training/buildspec-2-19-sm.yml), whose
    TensorFlow requires numpy<2.2 (tensorflow 2.19.0 METADATA), so the job installs the
    tested versions over the image's rather than run a set no test ran."""
    container, training = requirements_file(REPO / "training" / "requirements.txt"), group("training")
    assert set(container) <= set(training)
    assert {"tensorflow", "tf-keras", "numpy"} <= set(container)
    for package, (extras, version) in container.items():
        assert version is not None and version == training[package][1], package
        assert extras <= training[package][0], package


def test_the_training_container_set_is_the_tested_set_and_consistent():
    """Offline stand-in for pip's resolver: every pin of training/requirements.txt is the
    version installed here, where the tests train a model (tests/conftest.py trained_bundle)
    and the edge's loader loads it; and every requirement of every pinned distribution,
    markers evaluated for the image's Python 3.12 on Linux x86_64, is met by the pin or,
    for an unpinned dependency, by the version installed here."""
    from importlib.metadata import requires, version

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = default_environment() | {
        "python_version": "3.12",
        "python_full_version": "3.12.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "extra": "",
    }
    container = requirements_file(REPO / "training" / "requirements.txt")
    problems = []
    for package, (_, pin) in container.items():
        if version(package) != pin:
            problems.append(f"{package}=={pin} pinned, {version(package)} tested")
        for line in requires(package) or []:
            need = Requirement(line)
            if need.marker is not None and not need.marker.evaluate(env):
                continue  # another platform's, or an extra's
            dep = _normal(need.name)
            have = container[dep][1] if dep in container else version(dep)
            if not need.specifier.contains(have, prereleases=True):
                problems.append(f"{package}=={pin} requires {need}, the set has {dep}=={have}")
    assert problems == []


def _third_party_imports(folder: Path, first_party: set[str]) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in first_party}


def _installed_by(packages: dict[str, tuple[frozenset[str], str | None]]) -> set[str]:
    """The distributions installing ``packages`` (with their extras) installs, recursively."""
    from importlib.metadata import PackageNotFoundError, requires

    seen = set(packages)
    todo = [(package, extras) for package, (extras, _) in packages.items()]
    while todo:
        package, extras = todo.pop()
        try:
            needs = requires(package) or []
        except PackageNotFoundError:
            continue
        for need in needs:
            extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", need)
            if extra and _normal(extra[1]) not in {_normal(e) for e in extras}:
                continue
            dep = _normal(re.split(r"[\s\[<>=!~;(]", need, maxsplit=1)[0])
            if dep not in seen:
                seen.add(dep)
                todo.append((dep, frozenset()))
    return seen


def _unprovided(folder: str, group_name: str, first_party: set[str], optional: set[str]) -> list[str]:
    from importlib.metadata import packages_distributions

    provided = _installed_by(group(group_name))
    missing = []
    for module in sorted(_third_party_imports(REPO / folder, first_party) - optional):
        dists = {_normal(d) for d in packages_distributions().get(module, [])}
        if not dists & provided:
            missing.append(f"{module} ({', '.join(sorted(dists)) or 'not installed'})")
    return missing


def test_the_lambda_imports_only_what_its_group_installs():
    """The bundle (infra/alerting.py, CopyHandlerBundling) copies only lambda/'s own
    modules, so everything else it imports must come with the lambda group (in AWS: the
    Powertools layer, with its validation and tracer extras, and the runtime's boto3).
    jsonschema is the validator's fallback where fastjsonschema is missing."""
    packages = {p.name for p in (REPO / "lambda").iterdir() if (p / "__init__.py").is_file()}
    assert {"vigil_alerts", "vigil_health"} <= packages
    assert _unprovided("lambda", "lambda", {"app"} | packages, {"jsonschema"}) == []


@pytest.mark.parametrize("folder, name", [("edge_component", "edge"), ("training", "training")])
def test_each_part_imports_only_what_its_group_installs(folder, name):
    # tflite_runtime: optional (the compatibility gate also runs it where it is installed);
    # fastjsonschema: the alert contract's engine in the Lambda (Powertools layer), tried
    # first and optional everywhere else (edge_component/contracts/alert_rules.py).
    optional = {"tflite_runtime", "fastjsonschema"}
    assert _unprovided(folder, name, {"edge_component", "training", "infra", "tests"}, optional) == []


def test_training_container_pins_what_the_device_runs():
    """The job featurises with the edge's code and gates with the edge's runtime, so every
    package both install is pinned to the same version (edge_component/requirements.txt)."""
    from training.gates import pinned_version
    from training.gates import requirement_pins as pins

    training, edge = pins(REPO / "training" / "requirements.txt"), pins(REPO / "edge_component" / "requirements.txt")
    shared = set(training) & set(edge)
    assert {"ai-edge-litert", "opencv-python-headless"} <= shared
    assert {p: training[p] for p in shared} == {p: edge[p] for p in shared}
    assert pinned_version("ai-edge-litert") == edge["ai-edge-litert"]
