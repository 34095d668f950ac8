"""The bundle's models and the gates, on the session's trained bundle: ONNX Runtime as
the edge's third backend, and each gate failing on a model made to break it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_component.analysis.features import N_FEATURES
from edge_component.model.bundle import load_bundle, make_scorer, sha256_file
from edge_component.model.errors import ModelError
from edge_component.model.litert import Scorer
from edge_component.model.onnx_runtime import OnnxScorer
from training import gates
from training.export import tflite_ops


def _rows(manifest, n=200, seed=0):
    """Raw feature rows around the training distribution (non-negative, like the features)."""
    rng = np.random.default_rng(seed)
    return np.abs(manifest.mean + rng.normal(size=(n, N_FEATURES)).astype(np.float32) * manifest.scale).astype(
        np.float32
    )


@pytest.fixture()
def bundle_copy(trained_bundle, tmp_path):
    return shutil.copytree(trained_bundle, tmp_path / "bundle")


def _replace_file(bundle, name, data):
    """Replace a model file and its digest, so only the runtime can object."""
    (bundle / name).write_bytes(data)
    path = bundle / "manifest.json"
    m = json.loads(path.read_text())
    m["files"][name] = sha256_file(bundle / name)
    path.write_text(json.dumps(m))


def test_onnx_backend_scores_raw_rows_like_the_float_tflite_model(trained_bundle):
    b = load_bundle(trained_bundle, model_file="model.onnx")
    assert isinstance(b.scorer, OnnxScorer) and b.sha256 == b.manifest.raw["files"]["model.onnx"]
    rows = _rows(b.manifest)
    onnx = b.scorer.score(rows)
    flt = Scorer(trained_bundle / "model_float.tflite", b.manifest.mean, b.manifest.scale).score(rows)
    assert onnx.shape == (len(rows),) and onnx.dtype == np.float32
    np.testing.assert_allclose(onnx, flt, atol=1e-5)
    assert b.scorer.score(rows[0]).shape == (1,)  # one row, as the edge scores a window


def test_backend_is_chosen_by_file_name_and_must_be_listed(trained_bundle):
    m = load_bundle(trained_bundle).manifest
    assert isinstance(make_scorer(trained_bundle / "model.onnx", m.mean, m.scale), OnnxScorer)
    assert isinstance(make_scorer(trained_bundle / "model.tflite", m.mean, m.scale), Scorer)
    assert isinstance(load_bundle(trained_bundle).scorer, Scorer)  # the manifest's model_file: int8 TFLite
    with pytest.raises(ModelError, match="not listed"):
        load_bundle(trained_bundle, model_file="other.onnx")


def test_a_manifest_naming_the_onnx_model_runs_onnx_runtime(bundle_copy):
    path = bundle_copy / "manifest.json"
    m = json.loads(path.read_text())
    m["model_file"] = "model.onnx"
    path.write_text(json.dumps(m))
    b = load_bundle(bundle_copy)
    assert isinstance(b.scorer, OnnxScorer) and b.sha256 == m["files"]["model.onnx"]


def test_a_broken_onnx_model_is_a_clear_error(bundle_copy):
    _replace_file(bundle_copy, "model.onnx", b"not an onnx model")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load"):
        load_bundle(bundle_copy, model_file="model.onnx")


def test_manifest_lists_every_file_with_versions_and_runtimes(trained_bundle):
    m = json.loads((trained_bundle / "manifest.json").read_text())
    assert set(m["files"]) == set(m["models"]) == {"model.tflite", "model_float.tflite", "model.onnx"}
    for name, digest in m["files"].items():
        assert sha256_file(trained_bundle / name) == digest
    assert m["models"]["model.tflite"]["precision"] == "int8" and m["models"]["model.onnx"]["format"] == "onnx"
    assert {"tensorflow", "keras", "tf2onnx", "ai-edge-litert", "onnxruntime"} <= set(m["versions"])
    assert set(m["checked_against"]) >= {"ai-edge-litert", "onnxruntime"}
    assert m["checked_against"]["ai-edge-litert"] == gates.pinned_version("ai-edge-litert")


def test_compatibility_gate_fails_on_an_operator_version_the_runtime_lacks(bundle_copy, tflite_edits):
    # The failure a model from a newer converter meets on an older runtime: tflite-runtime 2.14
    # refuses current TensorFlow's FULLY_CONNECTED version 12 ("Didn't find op for builtin opcode").
    newer = tflite_edits.with_op_version((bundle_copy / "model.tflite").read_bytes(), "FULLY_CONNECTED", 99)
    assert tflite_ops(newer)["ops"]["FULLY_CONNECTED"] == 99
    _replace_file(bundle_copy, "model.tflite", newer)
    result, scorers = gates.compatibility(bundle_copy, ["model.tflite", "model.onnx"])
    assert not result.passed and set(scorers) == {"model.onnx"}
    assert "cannot load model.tflite" in result.failures[0] and "FULLY_CONNECTED" in result.failures[0]
    with pytest.raises(gates.GateError, match="compatibility gate: the edge runtime cannot load model.tflite"):
        gates.enforce(result)


def test_compatibility_gate_fails_on_a_file_that_does_not_match_its_digest(bundle_copy):
    (bundle_copy / "model.onnx").write_bytes(b"replaced")
    result, _ = gates.compatibility(bundle_copy, ["model.onnx"])
    assert not result.passed and "SHA-256" in result.failures[0]


def test_parity_gate_fails_on_a_tampered_int8_model(bundle_copy, trained_bundle, tflite_edits):
    """An int8 model whose output zero point was moved by 12 steps: loads and runs,
    every score is 12/256 off; only parity catches it."""
    _replace_file(
        bundle_copy,
        "model.tflite",
        tflite_edits.with_output_zero_point_moved((bundle_copy / "model.tflite").read_bytes(), 12),
    )

    m = load_bundle(trained_bundle).manifest
    rows = _rows(m)
    keras_like = Scorer(trained_bundle / "model_float.tflite", m.mean, m.scale).score(rows)
    good = load_bundle(trained_bundle).scorer.score(rows)
    bad = load_bundle(bundle_copy).scorer.score(rows)
    y = (keras_like > 0.5).astype(int)
    kw = dict(max_int8_steps=8, max_float_drift=1e-4, max_auc_drop=0.01)
    assert gates.parity(y, keras_like, {"model.tflite": good}, **kw).passed
    result = gates.parity(y, keras_like, {"model.tflite": bad}, **kw)
    assert not result.passed and result.details["models"]["model.tflite"]["max_drift_steps"] > 8
    with pytest.raises(gates.GateError, match=r"parity gate: model.tflite differs from Keras by .* steps of 1/256"):
        gates.enforce(result)


def test_parity_gate_holds_float_models_to_float_rounding():
    y = np.array([0, 0, 1, 1])
    k = np.array([0.1, 0.2, 0.8, 0.9])
    result = gates.parity(y, k, {"model.onnx": k + 1e-3}, max_int8_steps=8, max_float_drift=1e-4, max_auc_drop=0.01)
    assert not result.passed and "model.onnx differs from Keras by 1.00e-03" in result.failures[0]


def test_quality_gate_names_the_floor_it_missed():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.3, 0.7, 0.4, 0.9])
    result = gates.quality(y, s, 0.5, min_auc=0.9, min_recall=0.9)
    assert not result.passed
    assert any("AUC 0.889 < floor 0.9" in f for f in result.failures)
    assert any("recall 0.667 at threshold 0.500 < floor 0.9" in f for f in result.failures)
    assert gates.quality(y, s, 0.5, min_auc=0.8, min_recall=0.6).passed


def test_compatibility_gate_also_runs_tflite_runtime_where_it_is_installed(trained_bundle, monkeypatch):
    """tflite-runtime 2.14 (its last release) refuses models that need newer operator
    versions; where it is installed, the gate loads every TFLite model in it too."""
    import sys
    import types

    class OldInterpreter:
        def __init__(self, model_path):
            raise ValueError("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'")

    pkg, mod = types.ModuleType("tflite_runtime"), types.ModuleType("tflite_runtime.interpreter")
    mod.Interpreter, pkg.interpreter = OldInterpreter, mod
    monkeypatch.setitem(sys.modules, "tflite_runtime", pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", mod)
    result, scorers = gates.compatibility(trained_bundle, ["model.tflite", "model.onnx"])
    assert not result.passed and set(scorers) == {"model.tflite", "model.onnx"}  # LiteRT and ONNX Runtime load them
    assert result.failures == [
        "tflite-runtime cannot load model.tflite: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'"
    ]


# ---------------------------------------------------------------- out of distribution, saturation


def test_the_int8_input_saturates_explicitly_at_its_calibrated_range(trained_bundle):
    """A normalised value beyond the int8 input's range scores exactly as the range's end:
    the range the Scorer reports is the one the quantizer clips to (real LiteRT)."""
    b = load_bundle(trained_bundle)
    lo, hi = b.scorer.input_range
    assert lo < 0 < hi
    row = _rows(b.manifest, n=1)[0]
    far, edge = row.copy(), row.copy()
    far[6] = b.manifest.mean[6] + 24.0 * b.manifest.scale[6]  # 24 sigma: the global_change_max
    edge[6] = b.manifest.mean[6] + hi * b.manifest.scale[6]
    assert 24.0 > hi
    assert b.scorer.score(np.stack([far, edge])).tolist()[0] == b.scorer.score(edge[None])[0]
    assert Scorer(trained_bundle / "model_float.tflite", b.manifest.mean, b.manifest.scale).input_range is None


def test_saturation_is_counted_per_feature():
    z = np.zeros((10, N_FEATURES))
    z[:3, 6] = 24.0
    z[9, 7] = -5.0
    s = gates.saturation(z, (-2.0, 4.0))
    assert s["rows_saturated"] == 4
    assert (
        s["saturated_by_feature"]["global_change_max"] == 3 and s["saturated_by_feature"]["brightness_delta_max"] == 1
    )
    assert s["max_abs_z_by_feature"]["global_change_max"] == 24.0
    assert gates.saturation(np.zeros((0, N_FEATURES)), (-2.0, 4.0))["rows_saturated"] == 0  # no test channel


def test_ood_parity_gate_bounds_drift_and_decision_flips():
    keras = np.array([0.1, 0.2, 0.9, 0.8, 0.30, 0.6])
    clipped = np.array([0.1, 0.2, 0.9, 0.8, 0.20, 0.6])  # row 4 was saturated: clipping moved it below 0.26
    int8 = np.array([0.1, 0.2, 0.9, 0.8, 0.21, 0.6])
    sat = gates.saturation(np.zeros((6, N_FEATURES)), (-2.0, 4.0))
    ok = gates.ood_parity(keras, clipped, int8, 0.26, sat, max_int8_steps=8, max_flip_rate=0.2)
    assert ok.passed and ok.details["decision_flips"] == 1 and ok.details["decision_flips_from_saturation"] == 1
    assert ok.details["max_drift_steps_unclipped"] > 20 > ok.details["max_drift_steps"]
    strict = gates.ood_parity(keras, clipped, int8, 0.26, sat, max_int8_steps=1, max_flip_rate=0.0)
    assert not strict.passed
    assert "by 2.6 steps of 1/256 on test-channel row 4; allowed 1" in strict.failures[0]
    assert (
        "decide 1 of 6 test-channel rows differently at threshold 0.260 (1 from saturated inputs)" in strict.failures[1]
    )
    none = gates.ood_parity(keras[:0], clipped[:0], int8[:0], 0.26, sat, max_int8_steps=0, max_flip_rate=0)
    assert none.passed and none.details["rows"] == 0


def test_the_trained_bundle_reports_ood_parity_on_the_test_channel(trained_bundle):
    """Training gates int8 on the test channel's car clip (never trained on): drift against
    Keras on the same saturated inputs, decision flips and saturation per feature, in the
    manifest."""
    m = json.loads((trained_bundle / "manifest.json").read_text())["metrics"]
    d = m["gates"]["ood-parity"]
    assert d["passed"] and d["rows"] == 151
    assert d["max_drift_steps"] <= d["tolerances"]["int8_steps"]
    assert d["max_drift_steps_unclipped"] >= d["max_drift_steps"]
    assert d["decision_flips"] <= d["tolerances"]["flip_rate"] * d["rows"]
    assert d["saturation"]["rows_saturated"] > 0  # the car clip leaves the person clip's range
    assert set(m["validation_saturation"]["saturated_by_feature"]) == set(d["saturation"]["saturated_by_feature"])
