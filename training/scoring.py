"""What the job reports about the models it made: the shipped model on clips it never
trained on, AUC per clip, per-inference latency, and file sizes."""

from __future__ import annotations

import logging

import numpy as np

from training import export
from training.dataset import Dataset
from training.metrics import confusion, precision_recall, roc_auc
from training.model import Standardizer

log = logging.getLogger("vigil.train")

# Report names of the bundle's model files, as the latency table shows them.
LATENCY_NAMES = {"tflite_int8": export.INT8_FILE, "tflite_float": export.FLOAT_FILE, "onnxruntime": export.ONNX_FILE}


def score_test_clips(
    test: Dataset, train_clips: list[str], keras_scores: np.ndarray, int8_scores: np.ndarray, threshold: float
) -> list[dict]:
    """The shipped model on each clip of the test channel (never trained on): AUC of
    Keras and int8, and int8 precision, recall and confusion at the threshold."""
    from training.gates import INT8_STEP

    out = []
    for clip in sorted(set(test.clips.tolist())):
        m = test.clips == clip
        y, k, q = test.y[m], keras_scores[m], int8_scores[m]
        entry = {
            "model": "shipped",
            "test_clip": clip,
            "train_clips": train_clips,
            "windows": int(m.sum()),
            "abnormal": int(y.sum()),
            "max_drift_steps_int8_vs_keras": float(np.max(np.abs(q - k)) / INT8_STEP),
        }
        if len(set(y.tolist())) < 2:
            out.append(entry | {"skipped": f"{clip} has a single class"})
            continue
        p, r = precision_recall(y, q, threshold)
        out.append(
            entry
            | {
                "auc": roc_auc(y, q),
                "auc_keras": roc_auc(y, k),
                "threshold": threshold,
                "precision": p,
                "recall": r,
                "confusion": confusion(y, q, threshold),
            }
        )
        log.info(
            "test clip %s (never trained on): int8 AUC %.3f, recall %.3f, precision %.3f at %.3f",
            clip,
            out[-1]["auc"],
            r,
            p,
            threshold,
        )
    return out


def per_clip_auc(ds: Dataset, scores: np.ndarray) -> dict[str, float | None]:
    """AUC of ``scores`` on each clip of ``ds``; None for a clip with a single class."""
    out = {}
    for clip in sorted(set(ds.clips.tolist())):
        m = ds.clips == clip
        out[clip] = roc_auc(ds.y[m], scores[m]) if len(set(ds.y[m].tolist())) == 2 else None
    return out


def latency(model, scaler: Standardizer, scorers: dict, rows: np.ndarray, sizes: dict[str, int]) -> dict:
    """Per-inference latency (µs) of Keras and each bundle scorer on single ``rows``, logged as a table."""
    from training.report import latency_table, measure_latency

    calls = {"keras": lambda r: model(scaler.transform(r.reshape(1, -1)), training=False)}
    calls |= {name: scorers[file].score for name, file in LATENCY_NAMES.items() if file in scorers}
    measured = measure_latency(calls, rows)
    log.info(
        "per-inference latency (one row, normalisation included):\n%s",
        latency_table(measured, {n: sizes[f] for n, f in LATENCY_NAMES.items() if f in sizes}, "tflite_int8"),
    )
    return measured


def size_metrics(models: dict[str, bytes]) -> dict:
    """Raw and gzip sizes (bytes) of the bundle's model files, the int8/float ratio, and TFLite operators."""
    short = {export.INT8_FILE: "int8", export.FLOAT_FILE: "float", export.ONNX_FILE: "onnx"}
    return {
        "size_bytes": {short[n]: len(b) for n, b in models.items()},
        "int8_to_float_size": len(models[export.INT8_FILE]) / len(models[export.FLOAT_FILE]),
        "gzip_bytes": {short[n]: export.gzip_size(b) for n, b in models.items()},
        "tflite_ops": {n: export.tflite_ops(b) for n, b in models.items() if n.endswith(".tflite")},
    }
