"""training/train.py writes comparison.json for the model loop: the shipped candidate and
the ``current`` channel's bundle replayed on the test channel's labelled clips, in the
shape the loop's evaluate and gate steps read (lambda/vigil_loop/evaluate.py).

SageMaker gives each input channel as ``SM_CHANNEL_<NAME>`` and uploads
``SM_OUTPUT_DATA_DIR`` as ``output.tar.gz`` (sagemaker-training-toolkit,
ENVIRONMENT_VARIABLES.md: https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from training import comparison
from training.dataset import write_dataset

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"
SEED = REPO / "edge_component" / "models" / "seed"
SEED_MODEL_SHA256 = json.loads((SEED / "manifest.json").read_text())["files"]["model.tflite"]

if str(REPO / "lambda") not in sys.path:
    sys.path.append(str(REPO / "lambda"))
from vigil_loop import gate as loop_gate  # noqa: E402
from vigil_loop.evaluate import validate  # noqa: E402


@pytest.fixture(scope="module")
def job(tmp_path_factory, dataset):
    """A quick job (3 epochs on the example clip's features) with the example clip as its
    test channel and the seed bundle as its ``current`` channel, run through main()."""
    from training.train import main

    root = tmp_path_factory.mktemp("comparison")
    csv = write_dataset(dataset, root / "features.csv")
    argv = [
        *("--model-dir", str(root / "model"), "--output-data-dir", str(root / "out")),
        *("--train", str(csv), "--test", str(LABELS), "--current", str(SEED)),
        *("--epochs", "3", "--cross-clip", "false", "--latency-rows", "0", "--plots", "false"),
        *("--min-auc", "0.5", "--min-recall", "0"),
    ]
    assert main(argv) == 0
    return root


def test_the_job_writes_the_comparison_the_loop_reads(job):
    written = json.loads((job / "out" / "comparison.json").read_text())
    assert validate(written) is written  # the evaluate step's own check of the shape
    manifest = json.loads((job / "model" / "manifest.json").read_text())
    assert written["candidate"]["sha256"] == manifest["files"][manifest["model_file"]]
    assert written["current"]["sha256"] == SEED_MODEL_SHA256
    assert set(written["gates"]) == {"compatibility", "parity", "ood-parity", "quality"}
    assert all(g == {"passed": True, "failures": []} for g in written["gates"].values())
    # the seed on this clip, as training.evaluate measures it (tests/training/test_evaluate.py):
    # 6 events, all found within 2 s, no false alert
    current = written["current"]["total"]
    assert (current["events"], current["found"], current["false_alerts"]) == (6, 6, 0)
    assert current["recall"] == 1.0 and current["false_alerts_per_hour"] == 0.0
    assert 0 <= current["delay_s_mean"] <= 2.0
    assert written["current"]["by_label"]["person"]["events"] == 6
    # both sides carry the same labels, so the gate compares like with like
    assert set(written["candidate"]["by_label"]) == set(written["current"]["by_label"])
    # the gate's "no worse" reasons are exactly the candidate's shortfalls against the seed
    reasons = loop_gate.failures(written, delay_tolerance_s=0.5)
    cand = written["candidate"]["total"]
    assert any(r.startswith("total: recall") for r in reasons) == (cand["recall"] < 1.0)
    assert any("false alerts/hour" in r and r.startswith("total") for r in reasons) == (
        cand["false_alerts_per_hour"] > 0.0
    )


def test_without_a_current_model_the_gate_judges_only_the_job_gates(job):
    result = comparison.build(
        {"compatibility": {"passed": True, "failures": [], "checked_against": {}}}, LABELS, job / "model", None
    )
    assert result["current"] is None
    assert validate(result)["candidate"]["total"]["events"] == 6
    assert loop_gate.failures(result, delay_tolerance_s=0.5) == []
    failed = {**result, "gates": {"compatibility": {"passed": False, "failures": ["op FULLY_CONNECTED v12"]}}}
    assert loop_gate.failures(failed, 0.5) == ["compatibility gate: op FULLY_CONNECTED v12"]


def test_the_current_channel_may_hold_the_model_components_zip(job, tmp_path):
    spec = importlib.util.spec_from_file_location("mc", REPO / "edge_component" / "contracts" / "model_component.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    channel = tmp_path / "current"
    channel.mkdir()
    (channel / builder.BUNDLE_FILE).write_bytes(builder.bundle_zip(builder.bundle_files(SEED)))
    with comparison.current_bundle(channel) as current_dir:
        from_zip = comparison.build({}, LABELS, job / "model", current_dir)["current"]
    written = json.loads((job / "out" / "comparison.json").read_text())["current"]
    assert from_zip["sha256"] == SEED_MODEL_SHA256
    assert from_zip["total"] == written["total"]


def test_an_unusable_current_channel_is_a_clear_error(tmp_path):
    with pytest.raises(comparison.ComparisonInputError, match="expected manifest.json or one"):
        with comparison.current_bundle(tmp_path):
            pass


def test_a_test_channel_of_feature_csvs_writes_no_comparison(tmp_path):
    (tmp_path / "features.csv").write_text("clip\n")
    assert comparison.label_files(tmp_path) == []
    with pytest.raises(comparison.ComparisonInputError, match="no label files"):
        comparison.build({}, tmp_path, tmp_path, None)


def test_an_unusable_current_channel_fails_the_job_before_it_trains(tmp_path, caplog):
    from training.train import main

    empty = tmp_path / "current"
    empty.mkdir()
    argv = ["--model-dir", str(tmp_path / "model"), "--output-data-dir", str(tmp_path / "out")]
    with caplog.at_level("ERROR", logger="vigil.train"):
        assert main([*argv, "--train", str(LABELS), "--test", "none", "--current", str(empty)]) == 2
    assert "current channel" in caplog.text and "found nothing" in caplog.text
    assert not (tmp_path / "model").exists() and not (tmp_path / "out" / "evaluation.json").exists()
