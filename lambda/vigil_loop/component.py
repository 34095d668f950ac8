"""Step 4, component: the candidate's bundle as a new version of the stage's model
component (``com.vigil.Model.<stage>``).

The training job's ``model.tar.gz`` is repackaged into the zip the recipe's artifact
names (the bundle's files at the zip's root: ``manifest.json``, ``model.tflite``, ...),
uploaded beside it, and the recipe comes from the shared builder
``edge_component/contracts/model_component.py`` (``model_recipe(stage, version,
artifact_uri, sha256)``, ``next_version(versions)``), which the Lambda bundle ships at its
root and a checkout reads from ``edge_component/contracts/``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from vigil_loop.evaluate import ComparisonError

BUILDER_FILE = "model_component.py"
MANIFEST = "manifest.json"
# Greengrass unpacks an archive into a folder named after the file (minus .zip), and
# the code component reads the bundle from model_component.BUNDLE_FOLDER: the name
# must be the builder's BUNDLE_FILE (model-bundle.zip), which create_component uses.
ARTIFACT_NAME = "model-bundle.zip"
_HERE = Path(__file__).resolve().parent
_BUILDER_PLACES = (_HERE.parent / BUILDER_FILE, _HERE.parents[1] / "edge_component" / "contracts" / BUILDER_FILE)


class BundleError(ComparisonError):
    """The training job's model archive is not a bundle the edge can load."""


def load_builder(places: tuple[Path, ...] = _BUILDER_PLACES) -> ModuleType:
    """The shared recipe builder, from beside the package (Lambda) or the checkout."""
    for path in places:
        if path.is_file():
            spec = importlib.util.spec_from_file_location("vigil_model_component", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise FileNotFoundError(f"{BUILDER_FILE} not found in {', '.join(str(p) for p in places)}")


def repackage(tar_gz: bytes) -> tuple[bytes, str]:
    """The bundle in ``tar_gz`` as a zip with its files at the root, and the zip's SHA-256.

    BundleError when the archive is unreadable, holds a link or a path leaving the
    bundle, or has no ``manifest.json``. Files keep a fixed time stamp, so the same
    bundle makes the same zip (and digest).
    """
    out = io.BytesIO()
    try:
        with (
            tarfile.open(fileobj=io.BytesIO(tar_gz), mode="r:gz") as archive,
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle,
        ):
            names = []
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                name = member.name.removeprefix("./")
                if member.isdir() or not name:
                    continue
                if not member.isfile():
                    raise BundleError(f"{member.name}: not a regular file (links are refused)")
                if name.startswith("/") or ".." in Path(name).parts:
                    raise BundleError(f"{member.name}: path leaves the bundle")
                handle = archive.extractfile(member)
                assert handle is not None
                bundle.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), handle.read())
                names.append(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"model archive is not a readable tar.gz: {exc}") from exc
    if MANIFEST not in names:
        raise BundleError(f"model archive has no {MANIFEST} at its root (files: {', '.join(names) or 'none'})")
    data = out.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _split(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise BundleError(f"{url!r} is not an s3://bucket/key URL")
    bucket, key = url[5:].split("/", 1)
    return bucket, key


def versions_of(gg: Any, component_arn: str) -> list[str]:
    """Every version of the component (``arn:...:components:<name>``), [] if none yet."""
    try:
        pages = gg.get_paginator("list_component_versions").paginate(arn=component_arn)
        return [v["componentVersion"] for page in pages for v in page["componentVersions"]]
    except gg.exceptions.ResourceNotFoundException:
        return []


def create_component(
    s3: Any, gg: Any, builder: ModuleType, stage: str, component_arn: str, model_data_url: str
) -> dict[str, Any]:
    """Repackage, upload and create the next model component version.

    ``component_arn``: ``arn:aws:greengrass:<region>:<account>:components:<name>``.
    Returns ``{"component_name", "component_version", "artifact_uri", "sha256", "arn"}``.
    """
    bucket, key = _split(model_data_url)
    data, sha256 = repackage(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    artifact_key = f"{key.rsplit('/', 1)[0]}/{getattr(builder, 'BUNDLE_FILE', ARTIFACT_NAME)}"
    s3.put_object(Bucket=bucket, Key=artifact_key, Body=data, ChecksumSHA256=_b64(sha256))
    artifact_uri = f"s3://{bucket}/{artifact_key}"
    version = builder.next_version(versions_of(gg, component_arn))
    recipe = builder.model_recipe(stage, version, artifact_uri, sha256)
    response = gg.create_component_version(
        inlineRecipe=json.dumps(recipe).encode() if not isinstance(recipe, (str, bytes)) else recipe
    )
    return {
        "component_name": response["componentName"],
        "component_version": response["componentVersion"],
        "artifact_uri": artifact_uri,
        "sha256": sha256,
        "arn": response["arn"],
    }


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()
