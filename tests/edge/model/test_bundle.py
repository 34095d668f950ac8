"""The model bundle (edge_component/model/bundle.py): what the edge refuses to load, and
why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_component.analysis.features import FEATURE_NAMES, N_FEATURES
from edge_component.model.bundle import load_bundle, sha256_file
from edge_component.model.errors import ModelError
from edge_component.model.litert import Scorer

REPO = Path(__file__).resolve().parents[3]


def _edit_manifest(bundle, fn):
    path = bundle / "manifest.json"
    m = json.loads(path.read_text())
    fn(m)
    path.write_text(json.dumps(m))


def _float_tflite(outputs: int, activation, kernel_value: float | None = None) -> bytes:
    """A small float TFLite model taking the 8 features, built and converted for real,
    the way training exports its models (a SavedModel, so the weights are constants:
    converting a concrete function of a Keras 3 model left them as uninitialised
    resource variables, and the model returned whatever was in memory)."""
    import keras

    from training.export import saved_model, to_tflite_float

    inp = keras.Input(shape=(N_FEATURES,), dtype="float32")
    layer = keras.layers.Dense(outputs, activation=activation)
    model = keras.Model(inp, layer(inp))
    if kernel_value is not None:
        kernel, bias = layer.get_weights()
        layer.set_weights([np.full_like(kernel, kernel_value), bias])
    with saved_model(model) as path:
        data = to_tflite_float(path)
    # The model computes what it was built to: one row of ones through the dense layer.
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    assert not {"VAR_HANDLE", "READ_VARIABLE"} & {op["op_name"] for op in interp._get_ops_details()}
    if kernel_value is not None and activation is None:
        interp.set_tensor(interp.get_input_details()[0]["index"], np.ones((1, N_FEATURES), np.float32))
        interp.invoke()
        out = interp.get_tensor(interp.get_output_details()[0]["index"])
        np.testing.assert_equal(out.ravel(), np.float32(N_FEATURES * kernel_value))
    return data


def _swap_model(bundle, data: bytes):
    (bundle / "model.tflite").write_bytes(data)
    _edit_manifest(bundle, lambda m: m["files"].update({"model.tflite": sha256_file(bundle / "model.tflite")}))


@pytest.fixture()
def bundle_copy(trained_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(trained_bundle, dst)
    return dst


def test_the_seed_model_shipped_in_the_component_matches_this_edge():
    # The component zip carries this bundle; a feature change without `make seed-model` fails here.
    bundle = load_bundle(REPO / "edge_component" / "models" / "seed")
    assert bundle.scorer.input_dtype == np.int8


def test_bundle_loads_and_its_int8_model_matches_the_float_model(trained_bundle):
    b = load_bundle(trained_bundle)
    assert b.scorer.input_dtype == np.int8
    rng = np.random.default_rng(0)
    rows = b.manifest.mean + rng.normal(size=(200, N_FEATURES)).astype(np.float32) * b.manifest.scale
    rows = np.abs(rows).astype(np.float32)
    s8 = b.scorer.score(rows)
    sf = Scorer(trained_bundle / "model_float.tflite", b.manifest.mean, b.manifest.scale).score(rows)
    assert s8.shape == (200,) and np.all((s8 >= 0) & (s8 <= 1))
    assert np.max(np.abs(s8 - sf)) < 0.06  # a few int8 steps of 1/256


def test_a_corrupt_model_file_is_refused_by_digest(bundle_copy):
    data = bytearray((bundle_copy / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle_copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_bundle(bundle_copy)


def test_a_model_the_runtime_cannot_load_is_a_clear_error(bundle_copy):
    (bundle_copy / "model.tflite").write_bytes(b"\x00" * 64)
    _edit_manifest(
        bundle_copy, lambda m: m["files"].update({"model.tflite": sha256_file(bundle_copy / "model.tflite")})
    )
    with pytest.raises(ModelError, match="cannot load"):
        load_bundle(bundle_copy)


def test_features_in_another_order_are_refused(bundle_copy):
    def swap(m):
        m["feature_names"][2], m["feature_names"][3] = m["feature_names"][3], m["feature_names"][2]

    _edit_manifest(bundle_copy, swap)
    with pytest.raises(ModelError, match=f"feature 2 is '{FEATURE_NAMES[3]}'"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(schema_version="9"), "schema_version"),
        (lambda m: m.pop("normalisation"), "missing key 'normalisation'"),
        (lambda m: m.update(threshold=3), "outside 0..1"),
        (lambda m: m["normalisation"].update(scale=[0.0] * N_FEATURES), "scale <= 0"),
        (lambda m: m["files"].update({"extra.bin": "0" * 64}), "extra.bin is listed in the manifest but missing"),
    ],
)
def test_bad_manifests_are_refused_with_the_reason(bundle_copy, edit, message):
    _edit_manifest(bundle_copy, edit)
    with pytest.raises(ModelError, match=message):
        load_bundle(bundle_copy)


def test_a_missing_or_unparsable_manifest_is_refused(bundle_copy, tmp_path):
    with pytest.raises(ModelError, match="no manifest.json"):
        load_bundle(tmp_path)
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: _float_tflite(1, None, kernel_value=50.0), "not probabilities"),  # logits
        (lambda: _float_tflite(1, None, kernel_value=float("nan")), "not probabilities"),  # NaN
        (lambda: _float_tflite(2, "softmax"), "not one score per row"),  # two classes
    ],
)
def test_a_model_that_does_not_output_one_probability_is_refused_at_load(bundle_copy, build, message):
    _swap_model(bundle_copy, build())
    with pytest.raises(ModelError, match=message):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(threshold="0.5"), "threshold must be a number"),
        (lambda m: m.update(threshold=True), "threshold must be a number"),
        (lambda m: m.update(files=["model.tflite"]), "files must map file names"),
        (lambda m: m.update(model_file=["model.tflite"]), "model_file must be a file name"),
        (lambda m: m["normalisation"].update(kind="minmax"), "kind 'standard'"),
        (
            lambda m: m.update(model_file="../model.tflite", files={"../model.tflite": "0" * 64}),
            "not a file inside the bundle",
        ),
    ],
)
def test_manifest_values_of_the_wrong_kind_are_refused(bundle_copy, edit, message):
    _edit_manifest(bundle_copy, edit)
    with pytest.raises(ModelError, match=message):
        load_bundle(bundle_copy)


def test_a_symlink_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.tflite"
    outside.write_bytes((bundle_copy / "model.tflite").read_bytes())
    (bundle_copy / "model.tflite").unlink()
    (bundle_copy / "model.tflite").symlink_to(outside)
    with pytest.raises(ModelError, match="not a file inside the bundle"):
        load_bundle(bundle_copy)


def test_a_model_file_that_is_a_symlink_loop_or_a_directory_says_so(bundle_copy):
    """Not a RuntimeError traceback (pathlib's symlink loop) nor "missing": the cause, naming the file."""
    model = bundle_copy / "model.tflite"
    model.unlink()
    model.symlink_to(model)
    with pytest.raises(ModelError, match=r"model.tflite is a symbolic link loop"):
        load_bundle(bundle_copy)
    model.unlink()
    model.mkdir()
    with pytest.raises(ModelError, match=r"model.tflite is a directory, not a model file"):
        load_bundle(bundle_copy)
