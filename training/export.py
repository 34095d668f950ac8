"""Export a trained Keras model to TFLite (float and full-integer int8) and write the
model bundle the edge loads.

int8 conversion follows the LiteRT post-training integer quantization guide: a
representative dataset of real, already normalised, float32 rows, each yielded as a
batch of one; ``TFLITE_BUILTINS_INT8`` only; int8 input and output tensors.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge_component.features import FEATURE_NAMES, FEATURE_VERSION
from edge_component.model import MANIFEST_NAME, MANIFEST_SCHEMA_VERSION, sha256_file

from .model import Standardizer


def _convert(model, configure=None) -> bytes:
    import tensorflow as tf

    # Keras 3 models convert most reliably through a SavedModel export.
    with tempfile.TemporaryDirectory(prefix="vigil-savedmodel-") as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if configure:
            configure(conv)
        return conv.convert()


def to_tflite_float(model) -> bytes:
    """Float32 TFLite flatbuffer of ``model``."""
    return _convert(model)


def to_tflite_int8(model, representative_rows: np.ndarray, max_rows: int = 500) -> bytes:
    """Full-integer int8 TFLite flatbuffer.

    ``representative_rows``: normalised float32 training rows ``(n, N_FEATURES)``; up
    to ``max_rows`` of them (evenly spaced) calibrate the activation ranges.
    """
    import tensorflow as tf

    rows = np.asarray(representative_rows, np.float32)
    if len(rows) > max_rows:
        rows = rows[np.linspace(0, len(rows) - 1, max_rows).astype(int)]

    def representative_dataset():
        for row in rows:
            yield [row.reshape(1, -1)]

    def configure(conv):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative_dataset
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8

    return _convert(model, configure)


def runtime_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write_bundle(
    out_dir: str | Path,
    *,
    int8_model: bytes,
    float_model: bytes | None,
    standardizer: Standardizer,
    threshold: float,
    metrics: dict[str, Any],
    window: dict[str, float],
) -> Path:
    """Write ``model.tflite`` (int8), optionally ``model_float.tflite``, and
    ``manifest.json`` into ``out_dir``; returns the manifest path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(int8_model)
    files = {"model.tflite": sha256_file(out / "model.tflite")}
    if float_model is not None:
        (out / "model_float.tflite").write_bytes(float_model)
        files["model_float.tflite"] = sha256_file(out / "model_float.tflite")
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "normalisation": {
            "kind": "standard",
            "mean": [float(v) for v in standardizer.mean],
            "scale": [float(v) for v in standardizer.scale],
        },
        "threshold": float(threshold),
        "window": window,
        "model_file": "model.tflite",
        "files": files,
        "metrics": metrics,
        "versions": runtime_versions(),
    }
    path = out / MANIFEST_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
