"""Export a trained Keras model to TFLite (float and full-integer int8) and ONNX, and
write the model bundle the edge loads.

int8 conversion follows the LiteRT post-training integer quantization guide: a
representative dataset of real, already normalised, float32 rows, each yielded as a
batch of one; ``TFLITE_BUILTINS_INT8`` only; int8 input and output tensors.

Weights are quantized per tensor, not per output channel: for this model per-channel
scales and zero points cost more than the weights they describe (measurements in
docs/decisions.md); ``--int8-per-channel`` turns them on.

ONNX export goes through ``tf2onnx.convert.from_function`` on a ``tf.function`` with an
explicit float32 input signature ``(batch, N_FEATURES)`` named ``features`` and one output
``score``: the converted graph is exactly that signature, whatever the Keras version
(``from_keras`` reads model attributes that changed between Keras 2 and 3).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_component.analysis.features import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES
from edge_component.contracts.manifest import MANIFEST_FILE, MANIFEST_SCHEMA_VERSION, Manifest
from edge_component.model.bundle import sha256_file
from edge_component.objects.detector import MODEL_FILE as DETECTOR_FILE
from edge_component.objects.detector import MODEL_SHA256 as DETECTOR_SHA256
from edge_component.objects.detector import label_map_sha256
from edge_component.objects.labels import COCO_LABELS

from .model import Standardizer

ONNX_OPSET = 17  # ONNX Runtime >= 1.13 runs it; tf2onnx 1.17 writes up to 18
INT8_FILE, FLOAT_FILE, ONNX_FILE = "model.tflite", "model_float.tflite", "model.onnx"
MODEL_KINDS = {  # file -> what it is; the manifest's "models"
    INT8_FILE: {"format": "tflite", "precision": "int8", "runtime": "ai-edge-litert"},
    FLOAT_FILE: {"format": "tflite", "precision": "float32", "runtime": "ai-edge-litert"},
    ONNX_FILE: {"format": "onnx", "precision": "float32", "runtime": "onnxruntime", "opset": ONNX_OPSET},
}


@contextlib.contextmanager
def saved_model(model) -> Iterator[str]:
    """A temporary SavedModel export of a Keras 3 ``model`` (what the TFLite converter
    reads most reliably); yields its directory."""
    with tempfile.TemporaryDirectory(prefix="vigil-savedmodel-") as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        yield tmp


def _convert(saved_model_dir: str, configure=None) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if configure:
        configure(conv)
    return conv.convert()


def to_tflite_float(saved_model_dir: str) -> bytes:
    """Float32 TFLite flatbuffer of the SavedModel in ``saved_model_dir``."""
    return _convert(saved_model_dir)


def representative_rows(rows: np.ndarray, max_rows: int = 500) -> np.ndarray:
    """Up to ``max_rows`` evenly spaced rows of ``rows`` (normalised float32)."""
    rows = np.asarray(rows, np.float32)
    if len(rows) > max_rows:
        rows = rows[np.linspace(0, len(rows) - 1, max_rows).astype(int)]
    return rows


def to_tflite_int8(saved_model_dir: str, calibration_rows: np.ndarray, *, per_channel: bool = False) -> bytes:
    """Full-integer int8 TFLite flatbuffer.

    ``calibration_rows``: normalised float32 training rows ``(n, N_FEATURES)`` that
    calibrate the activation ranges (see :func:`representative_rows`). Weights are
    quantized per tensor unless ``per_channel`` (module docstring says why).
    """
    import tensorflow as tf

    rows = np.asarray(calibration_rows, np.float32)

    def representative_dataset():
        for row in rows:
            yield [row.reshape(1, -1)]

    def configure(conv):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative_dataset
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        conv._experimental_disable_per_channel = not per_channel  # no public switch (TF 2.21)

    return _convert(saved_model_dir, configure)


def to_onnx(model, opset: int = ONNX_OPSET) -> bytes:
    """Serialized ONNX model of a Keras ``model`` taking normalised float32 rows
    ``(batch, N_FEATURES)`` as input ``features``; output ``score`` ``(batch, 1)``."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, N_FEATURES), tf.float32, name="features"),)

    @tf.function(input_signature=spec)
    def serve(features):
        return {"score": model(features, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    for value in (*proto.graph.input, *proto.graph.output):  # name the batch dimension
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto.SerializeToString()


def tflite_ops(flatbuffer: bytes) -> dict[str, Any]:
    """Builtin operators and versions a TFLite model needs, and its minimum runtime.

    ``{"ops": {"FULLY_CONNECTED": 4, ...}, "min_runtime_version": "2.x.y"}``: a runtime
    refuses a model that needs an operator version it lacks ("Didn't find op for builtin
    opcode 'FULLY_CONNECTED' version '12'").
    """
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(flatbuffer, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = {}
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ops[names.get(builtin, str(builtin))] = code.Version()
    min_runtime = ""
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name() == b"min_runtime_version":
            raw = model.Buffers(md.Buffer()).DataAsNumpy()
            min_runtime = bytes(raw).split(b"\0")[0].decode("ascii", "replace")
    return {"ops": ops, "min_runtime_version": min_runtime}


def gzip_size(data: bytes) -> int:
    """Bytes after gzip -9: what pruning's zeros save on the wire (the flatbuffer
    itself stays dense)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def runtime_versions() -> dict[str, str]:
    """Installed versions of the packages that made and checked the models."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in (
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "tf2onnx",
        "onnx",
        "tensorflow-model-optimization",
        "tf-keras",
        "ai-edge-litert",
        "tflite-runtime",
        "onnxruntime",
        "numpy",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def detector_record() -> dict[str, str]:
    """The manifest's ``detector``: the object detector shipped with the edge component
    (``edge_component/models/detector/``), its SHA-256 and its label map's."""
    return {"file": DETECTOR_FILE, "sha256": DETECTOR_SHA256, "label_map_sha256": label_map_sha256(COCO_LABELS)}


def write_bundle(
    out_dir: str | Path,
    *,
    models: dict[str, bytes],
    standardizer: Standardizer,
    threshold: float,
    metrics: dict[str, Any],
    window: dict[str, float],
    checked_against: dict[str, str] | None = None,
) -> Path:
    """Write the model files (``{file name: bytes}``; ``model.tflite``, the int8 model the
    edge runs by default, is required) and ``manifest.json`` into ``out_dir``.

    The manifest lists every file with its SHA-256, what each model is, the normalisation,
    the threshold, ``metrics``, the versions of the packages that made the models, and
    ``checked_against``: the runtimes (name -> version) the gates ran them in, and
    ``detector``: the object detector the edge pairs with it (file, SHA-256, label map).
    Returns the manifest path.
    """
    if INT8_FILE not in models:
        raise ValueError(f"a bundle needs {INT8_FILE}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, data in models.items():
        (out / name).write_bytes(data)
        files[name] = sha256_file(out / name)
    manifest = Manifest(
        schema_version=MANIFEST_SCHEMA_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        feature_version=FEATURE_VERSION,
        feature_names=list(FEATURE_NAMES),
        normalisation={
            "kind": "standard",
            "mean": [float(v) for v in standardizer.mean],
            "scale": [float(v) for v in standardizer.scale],
        },
        threshold=float(threshold),
        window=window,
        model_file=INT8_FILE,
        files=files,
        models={name: MODEL_KINDS.get(name, {}) for name in models},
        metrics=metrics,
        versions=runtime_versions(),
        checked_against=dict(checked_against or {}),
        detector=detector_record(),
    ).model_dump()
    path = out / MANIFEST_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
