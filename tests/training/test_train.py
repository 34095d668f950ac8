"""training/train.py: the job end to end (bundle, gates, script mode), and its arguments:
an unknown one is a typo, and the script exits 2 with one clear line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_component.analysis.features import FEATURE_NAMES
from training.train import parse_args

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"


def test_trained_bundle_meets_size_and_accuracy_targets(trained_bundle):
    """Issue 6's "Done when": int8 no larger than 60% of float, int8 AUC within 0.01 of Keras."""
    m = json.loads((trained_bundle / "manifest.json").read_text())
    assert m["feature_names"] == list(FEATURE_NAMES)
    assert 0 < m["threshold"] < 1
    metrics = m["metrics"]
    assert metrics["auc_int8"] >= 0.9
    assert abs(metrics["auc_int8"] - metrics["auc_keras"]) <= 0.01
    sizes = metrics["size_bytes"]
    assert sizes["int8"] <= 0.6 * sizes["float"], sizes
    assert sizes["int8"] == (trained_bundle / "model.tflite").stat().st_size
    assert metrics["max_drift_steps_int8_vs_keras"] <= 8
    assert metrics["max_abs_drift_onnx_vs_keras"] <= 1e-4
    assert set(metrics["gates"]) == {"compatibility", "parity", "ood-parity", "quality"}
    assert all(g["passed"] for g in metrics["gates"].values())


def _job_args(tmp_path, csv_path, *extra):
    """Arguments for a quick job on the example clip's features (few epochs, no extras)."""
    return [
        "--model-dir",
        str(tmp_path / "model"),
        "--output-data-dir",
        str(tmp_path / "out"),
        "--train",
        str(csv_path),
        "--test",
        "none",
        "--epochs",
        "3",
        "--cross-clip",
        "false",
        "--latency-rows",
        "0",
        "--plots",
        "false",
        "--min-auc",
        "0.5",
        "--min-recall",
        "0",
        *extra,
    ]


def _run_failing_job(tmp_path, csv_path, caplog, *extra) -> str:
    from training.train import main

    with caplog.at_level("ERROR", logger="vigil.train"):
        assert main(_job_args(tmp_path, csv_path, *extra)) == 2
    assert not (tmp_path / "model" / "manifest.json").exists()  # nothing shipped
    return caplog.text


def test_job_fails_the_compatibility_gate_on_a_model_the_runtime_cannot_load(
    tmp_path, csv_path, caplog, monkeypatch, tflite_edits
):
    from training import export

    real = export.to_tflite_int8
    monkeypatch.setattr(
        export, "to_tflite_int8", lambda *a, **k: tflite_edits.with_op_version(real(*a, **k), "FULLY_CONNECTED", 99)
    )
    log = _run_failing_job(tmp_path, csv_path, caplog)
    assert "compatibility gate: the edge runtime cannot load model.tflite" in log
    assert "FULLY_CONNECTED" in log


def test_job_fails_the_parity_gate_on_a_wrong_representative_dataset(tmp_path, csv_path, caplog, monkeypatch):
    from training import export

    # Calibration rows in the wrong units (50x too small): int8 ranges far too narrow.
    real = export.representative_rows
    monkeypatch.setattr(export, "representative_rows", lambda rows, n=500: real(rows, n) * 0.02)
    log = _run_failing_job(tmp_path, csv_path, caplog)
    assert "parity gate: model.tflite differs from Keras by" in log and "steps of 1/256" in log
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert report["gates"]["parity"]["passed"] is False  # the report is written even so


def test_script_mode_with_sagemaker_environment(tmp_path, csv_path):
    env = dict(
        os.environ,
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_OUTPUT_DATA_DIR=str(tmp_path / "out"),
        SM_CHANNEL_TRAIN=str(csv_path.parent),
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "training" / "train.py"),
            "--epochs",
            "5",
            "--min-auc",
            "0.5",
            "--min-recall",
            "0",
            "--test",
            "none",
            "--latency-rows",
            "20",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name for p in (tmp_path / "model").iterdir()} == {
        "manifest.json",
        "model.tflite",
        "model_float.tflite",
        "model.onnx",
    }
    assert {"evaluation.json", "roc.png", "scores.png"} <= {p.name for p in (tmp_path / "out").iterdir()}
    from edge_component.model.bundle import load_bundle

    assert load_bundle(tmp_path / "model").scorer.input_dtype == np.int8


def test_script_mode_fails_loudly_on_an_impossible_quality_gate(tmp_path, csv_path):
    env = dict(
        os.environ,
        SM_OUTPUT_DIR=str(tmp_path / "output"),
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_OUTPUT_DATA_DIR=str(tmp_path / "out"),
        SM_CHANNEL_TRAIN=str(csv_path.parent),
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "training" / "train.py"),
            "--epochs",
            "1",
            "--min-auc",
            "1",
            "--min-recall",
            "1",
            "--test",
            "none",
            "--cross-clip",
            "false",
            "--latency-rows",
            "0",
            "--plots",
            "false",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "quality gate: model.tflite validation" in proc.stderr and "< floor 1" in proc.stderr
    assert not (tmp_path / "model" / "manifest.json").exists()
    # SageMaker reads /opt/ml/output/failure into the job's FailureReason.
    [reason] = (tmp_path / "output" / "failure").read_text(encoding="utf-8").splitlines()
    assert reason.startswith("quality gate: model.tflite validation") and "< floor 1" in reason


HEADER = ["clip", "time_s", "zone", *FEATURE_NAMES, "label"]


def _csv(path, header, rows, *, sep=",", end="\n", encoding="utf-8", prefix=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = prefix + end.join(sep.join(r) for r in [header, *rows]) + end
    path.write_bytes(text.encode(encoding))
    return path


def _labels_file(path: Path, clip: Path) -> Path:
    raw = json.loads(LABELS.read_text())
    raw["clip"] = str(clip)
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    "argv, named, hint",
    [
        (["--learnin-rate", "5"], "--learnin-rate", "did you mean --learning-rate?"),
        (["--learning_rate", "5"], "--learning_rate", "did you mean --learning-rate?"),
        (["--learn", "5"], "--learn", "did you mean --learning-rate?"),  # no silent abbreviations either
        (["--epochs", "3", "--unknown-hyperparameter", "1"], "--unknown-hyperparameter", ""),
    ],
)
def test_an_unknown_hyperparameter_fails_naming_it_and_the_known_ones(capsys, argv, named, hint):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"unknown hyperparameters: {named}" in err and hint in err
    assert "--learning-rate" in err and "--min-auc" in err and "--validation-every" in err  # the known ones


@pytest.mark.parametrize("case", ["mixed_channel", "not_a_video", "unknown_hyperparameter", "tiny_truncated_clip"])
def test_script_exits_2_with_a_clear_message_and_no_traceback(tmp_path, rows, case):
    channel = tmp_path / "train"
    args = []
    if case == "mixed_channel":
        _csv(channel / "features.csv", HEADER, rows)
        _labels_file(channel / "clip.json", tmp_path / "missing.mp4")
        expected = "mixes feature CSVs (features.csv) and label files (clip.json)"
    elif case == "not_a_video":
        channel.mkdir()
        (channel / "clip.mp4").write_text("not a video\n")
        _labels_file(channel / "clip.json", channel / "clip.mp4")
        expected = "clip.json: clip '"
    elif case == "tiny_truncated_clip":
        # The example clip's first 5 % of bytes: 6.6 s of video, labels to 136 s. Said as
        # such, not as "the validation split has a single class".
        channel.mkdir()
        data = (LABELS.parent / json.loads(LABELS.read_text())["clip"]).resolve().read_bytes()
        (channel / "clip.mp4").write_bytes(data[: len(data) // 20])
        _labels_file(channel / "clip.json", channel / "clip.mp4")
        expected = "clip.mp4' ends at 6."
    else:
        _csv(channel / "features.csv", HEADER, rows)
        args, expected = ["--learnin-rate", "5"], "unknown hyperparameters: --learnin-rate"
    env = dict(
        os.environ,
        SM_OUTPUT_DIR=str(tmp_path / "output"),
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_OUTPUT_DATA_DIR=str(tmp_path / "out"),
        SM_CHANNEL_TRAIN=str(channel),
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "training" / "train.py"), "--test", "none", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr, proc.stderr[-2000:]
    assert "single class" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "model").exists()
    # One line, what the log said: SageMaker shows it as the job's FailureReason.
    [reason] = (tmp_path / "output" / "failure").read_text(encoding="utf-8").splitlines()
    assert expected in reason


def test_only_the_first_host_of_a_multi_instance_job_writes_the_bundle(tmp_path, csv_path):
    """SageMaker merges /opt/ml/model of every host into one model.tar.gz, and names must
    not clash (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html):
    a host other than SM_HOSTS' first does not train and writes nothing."""
    env = dict(
        os.environ,
        SM_HOSTS='["algo-1", "algo-2"]',
        SM_CURRENT_HOST="algo-2",
        SM_OUTPUT_DIR=str(tmp_path / "output"),
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_OUTPUT_DATA_DIR=str(tmp_path / "out"),
        SM_CHANNEL_TRAIN=str(csv_path.parent),
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "training" / "train.py"), "--test", "none"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "algo-2 is not the first of 2 hosts (algo-1 writes the bundle)" in proc.stderr
    assert not (tmp_path / "model").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "output" / "failure").exists()


def test_an_argument_out_of_range_is_the_failure_reason(tmp_path):
    env = dict(os.environ, SM_OUTPUT_DIR=str(tmp_path / "output"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "training" / "train.py"), "--min-recall", "-3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    reason = (tmp_path / "output" / "failure").read_text(encoding="utf-8")
    assert reason == "argument --min-recall: must be 0 to 1, got -3.0\n"
