"""Lambda code bundled locally, without Docker: a folder's modules and packages, files
from elsewhere (the alert contract), and pinned pure-Python packages from this environment."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from edge_component.contracts.alert_rules import RULES_FILE, SCHEMA_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = REPO_ROOT / "lambda"
ALERT_SCHEMA = REPO_ROOT / "edge_component" / "contracts" / SCHEMA_FILE
ALERT_RULES = REPO_ROOT / "edge_component" / "contracts" / RULES_FILE
ALERT_CONTRACT = (ALERT_SCHEMA, ALERT_RULES)  # what the alert Lambda reads from beside itself
# Pure-Python packages the alert Lambda imports that neither the runtime nor the
# Powertools layer has; copied from this environment (pinned in pyproject.toml).
ALERT_LAMBDA_PACKAGES = ("wcwidth", "anyascii")
# Compiled extensions are built for the synthesizing machine, not Lambda's arm64.
_NOT_BUNDLED = ("__pycache__", "*.pyc", "*.so", "*.pyd", "*.dylib", "tests", "docs")


@jsii.implements(cdk.ILocalBundling)
class CopyHandlerBundling:
    """Bundles a Python function without Docker: its modules plus files from elsewhere.

    Copies ``source_dir/*.py`` and packages (folders with ``__init__.py``, tests left out)
    and ``extra_file`` (one file or several) to the bundle's root, so the handler reads
    them from beside itself (the alert Lambda: ``alert.schema.json`` and ``alert_rules.py``
    from ``edge_component/contracts/``; the provisioning hook: its generated rules).
    Third-party code comes from layers or the runtime, except ``packages``: installed
    pure-Python distributions copied with their ``.dist-info`` (licence, version),
    compiled extensions left out (they must have a Python fallback).
    """

    def __init__(
        self,
        source_dir: Path = LAMBDA_DIR,
        extra_file: Path | Sequence[Path] = ALERT_CONTRACT,
        packages: Sequence[str] = (),
    ) -> None:
        self._source_dir = source_dir
        self._extra_files = (extra_file,) if isinstance(extra_file, Path) else tuple(extra_file)
        self._packages = tuple(packages)

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        out = Path(output_dir)
        for path in sorted(self._source_dir.glob("*.py")):
            if not path.name.startswith("test_") and path.name != "conftest.py":
                shutil.copy2(path, out / path.name)
        for package in sorted(p for p in self._source_dir.iterdir() if (p / "__init__.py").is_file()):
            if package.name not in ("tests", "test"):
                shutil.copytree(
                    package, out / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
                )
        for extra in self._extra_files:
            shutil.copy2(extra, out / extra.name)
        for name in self._packages:
            copy_distribution(name, out)
        return True


def copy_distribution(name: str, out: Path) -> None:
    """Copy the installed package ``name`` and its ``.dist-info`` into ``out``, without
    compiled extensions; LookupError if it is not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"{name} is not installed as a package: pip install the version pyproject.toml pins")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    shutil.copytree(package_dir, out / name, ignore=shutil.ignore_patterns(*_NOT_BUNDLED))
    dist = importlib.metadata.distribution(name)
    info = Path(str(dist.locate_file(""))) / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
    if info.is_dir():
        shutil.copytree(info, out / info.name, ignore=shutil.ignore_patterns("RECORD", "INSTALLER", "REQUESTED"))


def local_python_code(
    source_dir: Path, extra_file: Path | Sequence[Path] = ALERT_CONTRACT, packages: Sequence[str] = ()
) -> lambda_.Code:
    """``source_dir`` plus ``extra_file`` (and ``packages``) as Lambda code, bundled locally (no Docker).

    The bundle is hashed, not the source, since the extra files live elsewhere. The
    CDK reuses a bundle per source path and bundling options and leaves the local
    bundler out of that key, so the extra files' digest goes in: two stages with
    different extra files (the hook's rules) never share a bundle.
    """
    extras = (extra_file,) if isinstance(extra_file, Path) else tuple(extra_file)
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in extras)).hexdigest()
    return lambda_.Code.from_asset(
        str(source_dir),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            image=cdk.DockerImage.from_registry("local-only"),
            local=CopyHandlerBundling(source_dir=source_dir, extra_file=extra_file, packages=packages),
            environment={"VIGIL_BUNDLED_FILE_SHA256": digest},
        ),
    )
