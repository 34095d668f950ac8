"""The model bundle and its interpreter.

A bundle is a directory with ``manifest.json`` and the model files it lists
(``model.tflite``: full-integer int8). :func:`load_bundle` checks, before the first
frame, that the manifest's schema version is known, that its feature names and order
are the ones :mod:`edge_component.features` computes, and that every file's SHA-256
matches; any mismatch is a :class:`ModelError`, never a silently wrong score.

Scoring (:meth:`Scorer.score`): raw feature rows -> normalised with the manifest's
mean/scale (float32) -> quantized with the input tensor's own scale and zero point
-> int8 inference -> output dequantized with the output tensor's scale and zero
point -> probability 0..1, compared in float with the threshold.

Runtime: LiteRT (``ai_edge_litert``), with ``tflite_runtime`` as fallback; ONNX
Runtime (:class:`OnnxScorer`) for ``model.onnx``, chosen by the file's ``.onnx``
suffix (:func:`make_scorer`), either as the manifest's ``model_file`` or as the
``model_file`` argument of :func:`load_bundle`. Both take the same raw rows and return
the same probabilities; normalisation is the manifest's in both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .features import N_FEATURES, check_feature_contract

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = "1"


class ModelError(RuntimeError):
    """The model bundle is missing, corrupt or does not match this edge."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # maintained successor

        return Interpreter
    except ImportError:  # pragma: no cover - exercised only where LiteRT is absent
        try:
            from tflite_runtime.interpreter import Interpreter

            return Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: install ai-edge-litert (or tflite-runtime)") from None


@dataclass(frozen=True)
class Manifest:
    raw: dict[str, Any]
    feature_names: tuple[str, ...]
    mean: np.ndarray  # float32 (N_FEATURES,)
    scale: np.ndarray  # float32 (N_FEATURES,), never 0
    threshold: float
    model_file: str
    model_sha256: str


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Parse and check ``manifest.json`` and the digests of the files it lists."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model bundle {bundle_dir}: no {MANIFEST_NAME}") from None
    except OSError as exc:
        raise ModelError(f"model bundle {bundle_dir}: cannot read {MANIFEST_NAME}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"model bundle {bundle_dir}: {MANIFEST_NAME} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: the manifest must be a JSON object, not {type(raw).__name__}")
    try:
        if str(raw["schema_version"]) != MANIFEST_SCHEMA_VERSION:
            raise ModelError(f"{path}: manifest schema_version {raw['schema_version']!r} is not {MANIFEST_SCHEMA_VERSION!r}")
        try:
            check_feature_contract(raw["feature_names"], raw["feature_version"])
        except ValueError as exc:
            raise ModelError(f"{path}: {exc}") from None
        norm = raw["normalisation"]
        if not isinstance(norm, dict) or norm.get("kind", "standard") != "standard":
            raise ModelError(f"{path}: normalisation must be an object of kind 'standard' ((x - mean) / scale)")
        mean = np.asarray(norm["mean"], np.float32)
        scale = np.asarray(norm["scale"], np.float32)
        threshold = raw["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ModelError(f"{path}: threshold must be a number, got {threshold!r}")
        threshold = float(threshold)
        files = raw["files"]
        model_file = raw["model_file"]
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ModelError(f"{path}: files must map file names to SHA-256 hex digests")
        if not isinstance(model_file, str):
            raise ModelError(f"{path}: model_file must be a file name, got {model_file!r}")
    except KeyError as exc:
        raise ModelError(f"{path}: missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: malformed value: {exc}") from None
    if mean.shape != (N_FEATURES,) or scale.shape != (N_FEATURES,):
        raise ModelError(f"{path}: normalisation must have {N_FEATURES} values each")
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelError(f"{path}: normalisation has non-finite values or a scale <= 0")
    if not 0.0 <= threshold <= 1.0:
        raise ModelError(f"{path}: threshold {threshold} is outside 0..1")
    if model_file not in files:
        raise ModelError(f"{path}: model_file {model_file!r} is not listed in files")
    root = bundle_dir.resolve()
    for name, digest in files.items():
        fp = bundle_dir / name
        # Files are plain names inside the bundle: no paths, no links out of it.
        if Path(name).name != name or name in (".", "..") or fp.resolve().parent != root:
            raise ModelError(f"model bundle {bundle_dir}: {name!r} is not a file inside the bundle")
        if not fp.is_file():
            raise ModelError(f"model bundle {bundle_dir}: {name} is listed in the manifest but missing")
        try:
            actual = sha256_file(fp)
        except OSError as exc:
            raise ModelError(f"model bundle {bundle_dir}: cannot read {name}: {exc.strerror or exc}") from None
        if actual != digest:
            raise ModelError(f"model bundle {bundle_dir}: {name} SHA-256 is {actual[:12]}..., manifest says {str(digest)[:12]}... (corrupt or replaced)")
    return Manifest(raw, tuple(raw["feature_names"]), mean, scale, threshold, model_file, files[model_file])


class Scorer:
    """Scores raw feature rows with a TFLite model (int8 or float).

    The interpreter and its tensors are allocated once. ``score(rows)`` takes
    float32 rows of shape ``(n, N_FEATURES)`` (or one row ``(N_FEATURES,)``) and returns
    float probabilities of shape ``(n,)``.
    """

    def __init__(self, model_path: str | Path, mean: np.ndarray, scale: np.ndarray):
        Interpreter = _interpreter_class()
        try:
            self._interp = Interpreter(model_path=str(model_path), num_threads=1)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{model_path}: the TFLite runtime cannot load this model: {exc}") from None
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{model_path}: expected one input and one output tensor")
        self._in, self._out = inp[0], out[0]
        if list(self._in["shape"][1:]) != [N_FEATURES]:
            raise ModelError(f"{model_path}: input shape {list(self._in['shape'])} does not take {N_FEATURES} features")
        if int(np.prod(self._out["shape"][1:])) != 1:
            raise ModelError(f"{model_path}: output shape {list(self._out['shape'])} is not one score per row "
                             "(a softmax over classes? export a single sigmoid output)")
        self._mean = np.asarray(mean, np.float32)
        self._scale = np.asarray(scale, np.float32)
        self.input_dtype = np.dtype(self._in["dtype"])
        self._in_q = self._in["quantization"]  # (scale, zero_point); scale 0 means float
        self._out_q = self._out["quantization"]
        q_scale, q_zero = self._in_q
        if self.input_dtype != np.float32 and q_scale:
            # Normalise and quantize in one multiply-add: q = round(x * a + b), clipped.
            self._a = (1.0 / (self._scale * np.float32(q_scale))).astype(np.float32)
            self._b = (np.float32(q_zero) - self._mean * self._a).astype(np.float32)
            info = np.iinfo(self.input_dtype)
            self._q_range = (info.min, info.max)

    def _normalise_and_quantize(self, rows: np.ndarray) -> np.ndarray:
        if self.input_dtype == np.float32 or not self._in_q[0]:
            return ((rows - self._mean) / self._scale).astype(np.float32)
        return np.clip(np.rint(rows * self._a + self._b), *self._q_range).astype(self.input_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale, zero = self._out_q
        if y.dtype == np.float32 or scale == 0:
            return y.astype(np.float32)
        return (y.astype(np.float32) - zero) * scale

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.float32).reshape(-1, N_FEATURES)
        x = self._normalise_and_quantize(rows)
        out = np.empty(len(rows), np.float32)
        for i in range(len(rows)):  # batch dimension is 1 in the converted model
            self._interp.set_tensor(self._in["index"], x[i : i + 1])
            self._interp.invoke()
            out[i] = self._dequantize(self._interp.get_tensor(self._out["index"])).reshape(-1)[0]
        return out


class OnnxScorer:
    """Scores raw feature rows with a float32 ONNX model in ONNX Runtime.

    Same contract as :class:`Scorer`: ``score(rows)`` takes float32 rows ``(n,
    N_FEATURES)`` (or one row), normalises them with ``mean``/``scale`` and returns
    probabilities ``(n,)``. The model must have one float32 input ``(batch,
    N_FEATURES)`` and one output of one value per row. The session (one thread, like
    the TFLite interpreter) is created once. Raises :class:`ModelError` when
    ``onnxruntime`` is missing or cannot load the model.
    """

    def __init__(self, model_path: str | Path, mean: np.ndarray, scale: np.ndarray):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(f"{model_path}: ONNX Runtime is not installed (pip install onnxruntime)") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: the session logs each fused node otherwise
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelError(f"{model_path}: ONNX Runtime cannot load this model: {exc}") from None
        inp, out = self._session.get_inputs(), self._session.get_outputs()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{model_path}: expected one input and one output, got {len(inp)} and {len(out)}")
        if inp[0].type != "tensor(float)":
            raise ModelError(f"{model_path}: input {inp[0].name!r} is {inp[0].type}, expected tensor(float)")
        if len(inp[0].shape) != 2 or inp[0].shape[1] != N_FEATURES:
            raise ModelError(f"{model_path}: input shape {inp[0].shape} does not take {N_FEATURES} features")
        self._input, self._output = inp[0].name, out[0].name
        self._mean = np.asarray(mean, np.float32)
        self._scale = np.asarray(scale, np.float32)
        self.input_dtype = np.dtype(np.float32)

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.float32).reshape(-1, N_FEATURES)
        x = ((rows - self._mean) / self._scale).astype(np.float32)
        (y,) = self._session.run([self._output], {self._input: x})
        y = np.asarray(y, np.float32).reshape(len(rows), -1)
        if y.shape[1] != 1:
            raise ModelError(f"ONNX model returned {y.shape[1]} values per row, expected 1")
        return y[:, 0]


def make_scorer(model_path: str | Path, mean: np.ndarray, scale: np.ndarray) -> Scorer | OnnxScorer:
    """The scorer for ``model_path``: :class:`OnnxScorer` for ``*.onnx``, else the TFLite
    :class:`Scorer`. Raises :class:`ModelError` when the runtime cannot load it."""
    if Path(model_path).suffix.lower() == ".onnx":
        return OnnxScorer(model_path, mean, scale)
    return Scorer(model_path, mean, scale)


@dataclass(frozen=True)
class ModelBundle:
    directory: Path
    manifest: Manifest
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
            raise ModelError(f"model bundle {bundle_dir}: {model_file!r} is not listed in the manifest's files {sorted(files)}")
        manifest = replace(manifest, model_file=model_file, model_sha256=files[model_file])
    scorer = make_scorer(Path(bundle_dir) / manifest.model_file, manifest.mean, manifest.scale)
    _probe(scorer, manifest, Path(bundle_dir) / manifest.model_file)
    return ModelBundle(Path(bundle_dir), manifest, scorer)


def _probe(scorer: "Scorer | OnnxScorer", manifest: Manifest, model_path: Path) -> None:
    """Score typical and extreme rows once before the first frame: a model that gives
    anything but a probability (logits, NaN) is refused here, not discovered per window."""
    rows = np.stack([manifest.mean, manifest.mean + 3 * manifest.scale, np.maximum(manifest.mean - 3 * manifest.scale, 0),
                     np.zeros_like(manifest.mean)]).astype(np.float32)
    scores = scorer.score(rows)
    if not np.all(np.isfinite(scores)) or np.any(scores < 0) or np.any(scores > 1):
        raise ModelError(f"{model_path}: outputs {np.round(scores, 3).tolist()} for typical rows, not probabilities "
                         "in 0..1 (logits, or a broken model?)")
