"""The model component: the model bundle as its own Greengrass component per stage.

The one definition the stack (``infra/model_component.py``, seed version), the loop's
Lambda functions (new versions from a retrained bundle) and the code component's recipe
(its dependency on the model) share. Standard library only: importable in a Lambda
without infra or the edge's packages.

Names and places:
  - component ``com.vigil.Model.<stage>`` (:func:`model_component_name`), beside the
    code component ``com.vigil.EdgeDetector.<stage>``;
  - its one artifact :data:`BUNDLE_FILE` at :func:`artifact_key` (a zip of the bundle's files at its root:
    ``manifest.json`` and the model files it lists), which Greengrass unpacks into
    ``{artifacts:decompressedPath}/model-bundle/``. The code component reads it from
    there through a dependency recipe variable (:func:`bundle_dir_variable`);
  - SSM parameter ``/vigil/<stage>/model/promoted-version`` (String,
    :func:`promoted_version_parameter`): the model component version the stage runs.
    The loop writes it on promotion; the stack's deployment reads it.

Sources: component recipe reference, "Artifacts" (``Digest``/``Algorithm``: base64
SHA-256 the nucleus checks before it runs the component), "ComponentDependencies" and
"Recipe variables" (``{<dependency>:artifacts:decompressedPath}`` for a direct
dependency) - https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from collections.abc import Mapping
from typing import Any

MODEL_COMPONENT_BASE_NAME = "com.vigil.Model"
BUNDLE_FILE = "model-bundle.zip"
# Greengrass unpacks an archive into a folder named after the artifact file without its
# extension (recipe reference, "Unarchive"); the zip holds the bundle's files at its root.
BUNDLE_FOLDER = "model-bundle"
SEED_VERSION_MAJOR = 1
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def model_component_name(stage: str) -> str:
    """``com.vigil.Model.<stage>``; ``ValueError`` on an empty stage or one with dots or spaces."""
    if not stage or not re.fullmatch(r"[A-Za-z0-9_-]+", stage):
        raise ValueError(f"stage name {stage!r} must be letters, digits, '-' or '_'")
    return f"{MODEL_COMPONENT_BASE_NAME}.{stage}"


def promoted_version_parameter(stage: str) -> str:
    """``/vigil/<stage>/model/promoted-version``: the SSM parameter the loop writes on promotion."""
    model_component_name(stage)  # same stage check
    return f"/vigil/{stage}/model/promoted-version"


ARTIFACT_PREFIX = "components/"


def artifact_key(stage: str, version: str) -> str:
    """``components/com.vigil.Model.<stage>/<version>/model-bundle.zip``: where a version's
    bundle zip lives in the stage's model bucket (the seed, copied there by the stack, and
    the loop's versions). It ends in :data:`BUNDLE_FILE`, so every version unpacks to
    ``model-bundle/``; the device's role reads ``components/com.vigil.Model.<stage>/*``."""
    check_version(version)
    return f"{ARTIFACT_PREFIX}{model_component_name(stage)}/{version}/{BUNDLE_FILE}"


def bundle_dir_variable(stage: str) -> str:
    """The recipe variable a dependent component's lifecycle uses for the unpacked bundle:
    ``{com.vigil.Model.<stage>:artifacts:decompressedPath}/model-bundle``."""
    return "{" + model_component_name(stage) + ":artifacts:decompressedPath}/" + BUNDLE_FOLDER


def bundle_zip(files: Mapping[str, bytes]) -> bytes:
    """A deterministic zip of the bundle (file name -> bytes), the files at the zip's root.

    Same files, same bytes (fixed 1980 timestamps, mode 0644, sorted): the digest, and so
    the recipe, change only when the model does. ``ValueError`` on a name with a folder
    in it or no ``manifest.json``.
    """
    if "manifest.json" not in files:
        raise ValueError("a model bundle needs manifest.json")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"bundle file name {name!r} must be a plain file name")
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.create_system = 3
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def sha256_b64(data: bytes) -> str:
    """SHA-256 of ``data``, base64 (the recipe's ``Artifacts[].Digest`` form)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def model_recipe(
    stage: str,
    version: str,
    artifact_uri: Any,
    sha256: str,
    *,
    model_sha256: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The model component's recipe (a dict; serialise as JSON for ``inline_recipe``).

    Args:
        stage: the stage name. version: ``major.minor.patch``.
        artifact_uri: ``s3://bucket/key`` of :data:`BUNDLE_FILE` (a CDK token at synth).
        sha256: the zip's SHA-256, hex (64 digits) or base64 (44 characters).
        model_sha256: the digest of the model file the edge scores with, kept in the
            configuration so an operator sees it with ``get-component``.

    The component has no lifecycle: it only delivers the artifact, which its dependents
    read. ``ValueError`` on a bad version or digest.
    """
    check_version(version)
    digest = _digest_b64(sha256)
    configuration: dict[str, Any] = {"bundleFolder": BUNDLE_FOLDER}
    if model_sha256 is not None:
        configuration["modelSha256"] = model_sha256
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": model_component_name(stage),
        "ComponentVersion": version,
        "ComponentDescription": description
        or "The Vigil motion model bundle (manifest.json and its model files); the detector component reads it.",
        "ComponentPublisher": "Vigil",
        "ComponentConfiguration": {"DefaultConfiguration": configuration},
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Artifacts": [
                    {
                        "URI": artifact_uri,
                        "Digest": digest,
                        "Algorithm": "SHA-256",
                        "Unarchive": "ZIP",
                        # "To read or run an artifact from a component dependency, that
                        # artifact's Read or Execute permission must be ALL" (recipe reference,
                        # "Recipe variables"): the detector is that dependent.
                        "Permission": {"Read": "ALL", "Execute": "NONE"},
                    }
                ],
            }
        ],
    }


def model_dependency(stage: str) -> dict[str, dict[str, str]]:
    """The code component's ``ComponentDependencies`` entry for the model component.

    ``HARD``: the detector restarts when the model component changes state, so a new
    model version is loaded by a restart (ComponentDependencyRequirement, "HARD - The
    component restarts if the dependency changes state":
    https://docs.aws.amazon.com/greengrass/v2/APIReference/API_ComponentDependencyRequirement.html).
    ``>=1.0.0``: any model version; the deployment pins which one.
    """
    return {
        model_component_name(stage): {"VersionRequirement": f">={SEED_VERSION_MAJOR}.0.0", "DependencyType": "HARD"}
    }


def check_version(version: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a ``major.minor.patch`` version; ``ValueError`` otherwise."""
    match = _VERSION.fullmatch(version or "")
    if not match:
        raise ValueError(f"component version {version!r} is not major.minor.patch")
    major, minor, patch = (int(p) for p in match.groups())
    return major, minor, patch


def seed_version(bundle_sha256_hex: str) -> str:
    """The stack's seed model version: ``1.0.<n>``, ``n`` from the zip's first 7 hex digits
    (same bundle, same version; below 2**31)."""
    if not re.fullmatch(r"[0-9a-f]{64}", bundle_sha256_hex):
        raise ValueError("bundle digest must be 64 lower-case hex digits")
    return f"{SEED_VERSION_MAJOR}.0.{int(bundle_sha256_hex[:7], 16)}"


def next_version(existing: list[str] | tuple[str, ...]) -> str:
    """The next model version after every one in ``existing``: ``<major>.<minor + 1>.0``
    of the highest, or ``1.1.0`` if there is none.

    The loop's versions bump the minor so they sort above every seed version
    (``1.0.<n>``, whatever ``n``). ``ValueError`` on a malformed version in ``existing``.
    """
    if not existing:
        return f"{SEED_VERSION_MAJOR}.1.0"
    major, minor, _ = max(check_version(v) for v in existing)
    return f"{major}.{minor + 1}.0"


def _digest_b64(sha256: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        return base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
    try:
        raw = base64.b64decode(sha256, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"artifact digest {sha256!r} is neither SHA-256 hex nor base64")
    return sha256


def bundle_files(bundle_dir: Any) -> dict[str, bytes]:
    """The files of a bundle directory (``pathlib.Path`` or str), for :func:`bundle_zip`:
    every regular, non-hidden file at its top level."""
    from pathlib import Path

    root = Path(bundle_dir)
    files = {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")}
    if not files:
        raise ValueError(f"{root}: no bundle files")
    return files
