"""The model bundle: its manifest checked, its model loaded.

A bundle is a directory with ``manifest.json`` (:mod:`edge_component.contracts.manifest`)
and the model files it lists (``model.tflite``: full-integer int8). :func:`load_bundle`
checks, before the first frame, that the manifest is valid, that its feature names and
order are the ones :mod:`edge_component.analysis.features` computes, and that every
file's SHA-256 matches; any mismatch is a :class:`ModelError`, never a silently wrong
score.

Runtime: LiteRT (:class:`~edge_component.model.litert.Scorer`); ONNX Runtime
(:class:`~edge_component.model.onnx_runtime.OnnxScorer`) for ``model.onnx``, chosen by
the file's ``.onnx`` suffix (:func:`make_scorer`), either as the manifest's
``model_file`` or as the ``model_file`` argument of :func:`load_bundle`. Both take the
same raw rows and return the same probabilities; normalisation is the manifest's in both.
"""

from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from edge_component.analysis.features import check_feature_contract
from edge_component.contracts.manifest import MANIFEST_FILE, Manifest, manifest_problem

from .errors import ModelError
from .litert import Scorer
from .onnx_runtime import OnnxScorer


def _unresolvable(exc: OSError | RuntimeError) -> str:
    """Why a path cannot be followed, for a message: a symlink loop, or the OS's reason."""
    if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
        return "is a symbolic link loop"
    return f"cannot be read: {exc.strerror or exc}"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class LoadedManifest:
    """A checked manifest, with the normalisation as the scorers take it."""

    raw: dict[str, Any]
    model: Manifest
    feature_names: tuple[str, ...]
    mean: np.ndarray  # float32 (N_FEATURES,)
    scale: np.ndarray  # float32 (N_FEATURES,), never 0
    threshold: float
    model_file: str
    model_sha256: str


def read_manifest(bundle_dir: str | Path) -> LoadedManifest:
    """Parse and check ``manifest.json`` and the digests of the files it lists."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model bundle {bundle_dir}: no {MANIFEST_FILE}") from None
    except OSError as exc:
        raise ModelError(f"model bundle {bundle_dir}: cannot read {MANIFEST_FILE}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"model bundle {bundle_dir}: {MANIFEST_FILE} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: the manifest must be a JSON object, not {type(raw).__name__}")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelError(f"{path}: {manifest_problem(exc)}") from None
    try:
        check_feature_contract(manifest.feature_names, manifest.feature_version)
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}") from None
    files = manifest.files
    root = bundle_dir.resolve()
    for name, digest in files.items():
        fp = bundle_dir / name
        # Files are plain names inside the bundle: no paths, no links out of it.
        if Path(name).name != name or name in (".", ".."):
            raise ModelError(f"model bundle {bundle_dir}: {name!r} is not a file inside the bundle")
        try:
            resolved = fp.resolve(strict=True)
        except FileNotFoundError:
            raise ModelError(f"model bundle {bundle_dir}: {name} is listed in the manifest but missing") from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before Python 3.13
            raise ModelError(f"model bundle {bundle_dir}: {name} {_unresolvable(exc)}") from None
        if resolved.parent != root:
            raise ModelError(f"model bundle {bundle_dir}: {name!r} is not a file inside the bundle")
        if resolved.is_dir():
            raise ModelError(f"model bundle {bundle_dir}: {name} is a directory, not a model file")
        if not resolved.is_file():
            raise ModelError(f"model bundle {bundle_dir}: {name} is not a regular file")
        try:
            actual = sha256_file(fp)
        except OSError as exc:
            raise ModelError(f"model bundle {bundle_dir}: cannot read {name}: {exc.strerror or exc}") from None
        if actual != digest:
            raise ModelError(
                f"model bundle {bundle_dir}: {name} SHA-256 is {actual[:12]}...,"
                f" manifest says {str(digest)[:12]}... (corrupt or replaced)"
            )
    mean = np.asarray(manifest.normalisation.mean, np.float32)
    scale = np.asarray(manifest.normalisation.scale, np.float32)
    return LoadedManifest(
        raw,
        manifest,
        tuple(manifest.feature_names),
        mean,
        scale,
        manifest.threshold,
        manifest.model_file,
        files[manifest.model_file],
    )


def make_scorer(model_path: str | Path, mean: np.ndarray, scale: np.ndarray) -> Scorer | OnnxScorer:
    """The scorer for ``model_path``: :class:`OnnxScorer` for ``*.onnx``, else the TFLite
    :class:`Scorer`. Raises :class:`ModelError` when the runtime cannot load it."""
    if Path(model_path).suffix.lower() == ".onnx":
        return OnnxScorer(model_path, mean, scale)
    return Scorer(model_path, mean, scale)


@dataclass(frozen=True)
class ModelBundle:
    directory: Path
    manifest: LoadedManifest
    scorer: Scorer | OnnxScorer

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def sha256(self) -> str:
        return self.manifest.model_sha256


def load_bundle(bundle_dir: str | Path, model_file: str | None = None) -> ModelBundle:
    """Check a bundle's manifest and files, and load its model. Raises ModelError.

    ``model_file``: which of the manifest's (digest-checked) files to run, e.g.
    ``"model.onnx"`` for ONNX Runtime; default the manifest's ``model_file``.
    """
    manifest = read_manifest(bundle_dir)
    if model_file is not None and model_file != manifest.model_file:
        files = manifest.raw["files"]
        if model_file not in files:
            raise ModelError(
                f"model bundle {bundle_dir}: {model_file!r} is not listed in the manifest's files {sorted(files)}"
            )
        manifest = replace(manifest, model_file=model_file, model_sha256=files[model_file])
    scorer = make_scorer(Path(bundle_dir) / manifest.model_file, manifest.mean, manifest.scale)
    _probe(scorer, manifest, Path(bundle_dir) / manifest.model_file)
    return ModelBundle(Path(bundle_dir), manifest, scorer)


def _probe(scorer: Scorer | OnnxScorer, manifest: LoadedManifest, model_path: Path) -> None:
    """Score typical and extreme rows once before the first frame: a model that gives
    anything but a probability (logits, NaN) is refused here, not discovered per window."""
    rows = np.stack(
        [
            manifest.mean,
            manifest.mean + 3 * manifest.scale,
            np.maximum(manifest.mean - 3 * manifest.scale, 0),
            np.zeros_like(manifest.mean),
        ]
    ).astype(np.float32)
    scores = scorer.score(rows)
    if not np.all(np.isfinite(scores)) or np.any(scores < 0) or np.any(scores > 1):
        raise ModelError(
            f"{model_path}: outputs {np.round(scores, 3).tolist()} for typical rows, not probabilities "
            "in 0..1 (logits, or a broken model?)"
        )
