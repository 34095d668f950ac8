"""Step 4, component: the candidate's bundle as a new version of the stage's model
component (``com.vigil.Model.<stage>``).

The training job's ``model.tar.gz`` is repackaged into the zip the recipe's artifact
names (the builder's ``BUNDLE_FILE``, ``model-bundle.zip``: Greengrass unpacks it into
``model-bundle/``, the folder the detector reads; the bundle's files at the zip's root:
``manifest.json``, ``model.tflite``, ...), made by the builder's ``bundle_zip`` so the
same files give the same digest as the stack's seed version, uploaded beside it, and
the recipe comes from the shared builder
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
from pathlib import Path
from types import ModuleType
from typing import Any

from vigil_loop.evaluate import ComparisonError

BUILDER_FILE = "model_component.py"
MANIFEST = "manifest.json"
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


def bundle_files(tar_gz: bytes) -> dict[str, bytes]:
    """The bundle's files (name -> bytes) in the training job's ``model.tar.gz``.

    BundleError when the archive is unreadable, holds a link, a folder or a path leaving
    the bundle, has no ``manifest.json``, or a file the manifest lists is missing or has
    another SHA-256 than the manifest says (the edge would refuse that bundle on the
    canary; better to stop here).
    """
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_gz), mode="r:gz") as archive:
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                name = member.name.removeprefix("./")
                if member.isdir() and name in ("", "."):
                    continue
                if not member.isfile():
                    raise BundleError(f"{member.name}: not a regular file (links and folders are refused)")
                if name.startswith("/") or ".." in Path(name).parts:
                    raise BundleError(f"{member.name}: path leaves the bundle")
                if "/" in name:
                    raise BundleError(f"{member.name}: a bundle's files sit at its root, not in folders")
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has a handle
                files[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"model archive is not a readable tar.gz: {exc}") from exc
    if MANIFEST not in files:
        raise BundleError(f"model archive has no {MANIFEST} at its root (files: {', '.join(files) or 'none'})")
    _check_manifest(files)
    return files


def _check_manifest(files: dict[str, bytes]) -> dict[str, Any]:
    try:
        manifest = json.loads(files[MANIFEST])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{MANIFEST} is not JSON: {exc}") from exc
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or manifest.get("model_file") not in listed:
        raise BundleError(f"{MANIFEST} lists no 'files' digests with its 'model_file'")
    for name, digest in sorted(listed.items()):
        if name not in files:
            raise BundleError(f"{MANIFEST} lists {name}, which the model archive does not hold")
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != digest:
            raise BundleError(f"{name}: SHA-256 {actual}, {MANIFEST} says {digest}")
    return manifest


def model_sha256(files: dict[str, bytes]) -> str:
    """The SHA-256 (hex) of the manifest's ``model_file``: the digest the edge reports in
    telemetry and alerts (``ModelBundle.sha256``), which the canary check waits for."""
    manifest = _check_manifest(files)
    return str(manifest["files"][manifest["model_file"]])


def repackage(files: dict[str, bytes], builder: ModuleType) -> tuple[bytes, str]:
    """The bundle's ``files`` (:func:`bundle_files`) as the builder's deterministic zip,
    and the zip's SHA-256 (hex). BundleError when the builder refuses a file name."""
    try:
        data = builder.bundle_zip(files)
    except ValueError as exc:
        raise BundleError(f"model archive: {exc}") from exc
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
    Returns ``{"component_name", "component_version", "artifact_uri", "sha256" (the
    zip's, hex), "model_sha256" (the model file's, hex: what the canary check compares
    with the edge's telemetry), "arn"}``. BundleError for an archive the edge could not
    load, before anything is uploaded or created.
    """
    bucket, key = _split(model_data_url)
    files = bundle_files(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    data, sha256 = repackage(files, builder)
    model_digest = model_sha256(files)
    artifact_key = f"{key.rsplit('/', 1)[0]}/{builder.BUNDLE_FILE}"
    s3.put_object(Bucket=bucket, Key=artifact_key, Body=data, ChecksumSHA256=_b64(sha256))
    artifact_uri = f"s3://{bucket}/{artifact_key}"
    version = builder.next_version(versions_of(gg, component_arn))
    recipe = builder.model_recipe(stage, version, artifact_uri, sha256, model_sha256=model_digest)
    response = gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    return {
        "component_name": response["componentName"],
        "component_version": response["componentVersion"],
        "artifact_uri": artifact_uri,
        "sha256": sha256,
        "model_sha256": model_digest,
        "arn": response["arn"],
    }


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()
