"""training/report.py and training/scoring.py: the job's report (plots, latency, the clip never trained on)."""

from __future__ import annotations

import json


def test_report_has_plots_latency_and_a_clip_never_trained_on(trained_bundle):
    out = trained_bundle.parent / "output"
    report = json.loads((out / "evaluation.json").read_text())
    for key in ("threshold", "auc_keras", "auc_int8", "max_abs_drift_int8_vs_keras", "size_bytes"):
        assert key in report  # the demo reads these
    for name in ("roc.png", "precision_recall.png", "confusion.png", "scores.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert set(report["latency_us"]) == {"keras", "tflite_int8", "tflite_float", "onnxruntime"}
    assert all(v["us_median"] > 0 for v in report["latency_us"].values())
    (car,) = [c for c in report["cross_clip"] if c["test_clip"] == "car-detection.mp4"]
    assert car["model"] == "shipped" and car["train_clips"] == ["one-by-one-person-detection.mp4"]
    assert car["windows"] > 100 and 0 <= car["auc"] <= 1 and 0 <= car["recall"] <= 1
