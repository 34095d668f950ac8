"""Deterministic archives built at synth time.

The same sources always give byte-identical archives (fixed timestamps, owners and
modes; sorted entries), so CDK asset hashes, Greengrass artifact digests and the
content-derived component version change only when the content does.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no CDK (and so no Node) needed to build archives, e.g. from gdk_build.py
    from constructs import IConstruct

# Anything a build or test run leaves behind, and tests themselves.
EXCLUDED_DIR_NAMES = frozenset({"__pycache__", "tests", "test", "node_modules", "venv", "greengrass-build"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


@dataclass(frozen=True)
class Entry:
    """One file of an archive: its path inside the archive and where it comes from."""

    arcname: str
    source: Path


@dataclass(frozen=True)
class Archive:
    """A written archive and its SHA-256 (hex and base64, as Greengrass recipes want it)."""

    path: Path
    sha256_hex: str

    @property
    def sha256_b64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode("ascii")


def _excluded(name: str) -> bool:
    return name.startswith(".") or name in EXCLUDED_DIR_NAMES


def _is_test_module(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name == "conftest.py")


def tree_entries(source_dir: Path, arc_prefix: str) -> list[Entry]:
    """Every file under ``source_dir`` as ``<arc_prefix>/<relative path>``, sorted.

    Skips hidden files and folders, ``__pycache__``, tests, virtualenvs and compiled
    Python. Symlinks are followed (their target's content is archived).
    """
    entries: list[Entry] = []
    for root, dirs, files in os.walk(source_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not _excluded(d))
        for name in sorted(files):
            if _excluded(name) or name.endswith(EXCLUDED_SUFFIXES) or _is_test_module(name):
                continue
            path = Path(root, name)
            rel = path.relative_to(source_dir).as_posix()
            entries.append(Entry(f"{arc_prefix}/{rel}" if arc_prefix else rel, path))
    return sorted(entries, key=lambda e: e.arcname)


def _checked(entries: Iterable[Entry]) -> list[Entry]:
    ordered = sorted(entries, key=lambda e: e.arcname)
    names = [e.arcname for e in ordered]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"archive would hold these paths twice: {dupes}")
    return ordered


def zip_bytes(entries: Sequence[Entry]) -> bytes:
    """A deterministic zip (deflated, 1980-01-01 timestamps, mode 0644)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in _checked(entries):
            info = zipfile.ZipInfo(entry.arcname, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.create_system = 3  # unix, so the mode above is honoured on extraction
            archive.writestr(info, entry.source.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def tar_gz_bytes(entries: Sequence[Entry]) -> bytes:
    """A deterministic gzipped tar (mtime 0, root owner, mode 0644, no gzip name/time)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in _checked(entries):
            data = entry.source.read_bytes()
            info = tarfile.TarInfo(entry.arcname)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def write_content_addressed(data: bytes, build_dir: Path, file_name: str) -> Archive:
    """Write ``data`` to ``build_dir/<sha256[:16]>/<file_name>`` (once) and describe it.

    The folder is named by the content so several stages or synth runs never overwrite
    each other's archive, and the file name stays fixed (CDK hashes it with the content).
    """
    digest = hashlib.sha256(data).hexdigest()
    path = build_dir / digest[:16] / file_name
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return Archive(path=path, sha256_hex=digest)


def build_dir_for(scope: IConstruct) -> Path:
    """Where synth-time archives go: beside the cloud assembly, never in the source tree."""
    import aws_cdk as cdk

    root = scope.node.root
    outdir = root.outdir if isinstance(root, cdk.Stage) else cdk.Stage.of(scope).outdir
    return Path(outdir) / ".vigil-build"


EDGE_PACKAGE = "edge_component"  # the import name, whatever folder it is read from
ARTIFACT_FILE = "vigil-edge.zip"  # the component artifact's name in the recipe (GDK layout)


def artifact_bytes(package_dir: Path) -> bytes:
    """The component zip: ``package_dir`` as ``edge_component/...`` (deterministic), so that
    it unpacks to ``<artifact folder>/edge_component`` and runs as ``python -m edge_component``.
    The CDK app and ``infra/gdk_build.py`` both ship exactly this (no CDK import
    here, so a GDK build needs no Node)."""
    return zip_bytes(tree_entries(package_dir, EDGE_PACKAGE))
