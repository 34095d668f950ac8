"""The manifest contract (edge_component/contracts/manifest.py): what training writes is
what the edge reads, and a bad manifest is refused naming the key."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from edge_component.contracts.manifest import MANIFEST_FILE, Manifest, manifest_problem


def test_the_trained_bundle_manifest_is_the_contract_model(trained_bundle):
    raw = json.loads((trained_bundle / MANIFEST_FILE).read_text())
    manifest = Manifest.model_validate(raw)
    assert manifest.model_dump() == raw  # written from the model: every key it has, nothing else
    assert manifest.model_file in manifest.files


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.pop("files"), "missing key 'files'"),
        (lambda m: m.update(threshold=True), "threshold must be a number, got True"),
        (lambda m: m.update(model_file="other.tflite"), "model_file 'other.tflite' is not listed in files"),
        (lambda m: m["normalisation"].update(mean=[0.0]), "normalisation must have 8 values each"),
    ],
)
def test_a_bad_manifest_names_the_key(trained_bundle, edit, message):
    raw = json.loads((trained_bundle / MANIFEST_FILE).read_text())
    edit(raw)
    with pytest.raises(ValidationError) as caught:
        Manifest.model_validate(raw)
    assert manifest_problem(caught.value) == message


def test_the_manifest_records_the_detector_and_a_mismatch_is_refused_at_load(trained_bundle, tmp_path):
    import shutil

    from edge_component.camera import CameraPipeline
    from edge_component.config import parse_config
    from edge_component.model.bundle import load_bundle
    from edge_component.objects.detector import (
        MODEL_PATH,
        DetectorModelError,
        label_map_sha256,
        read_label_map,
        sha256_of,
    )

    raw = json.loads((trained_bundle / MANIFEST_FILE).read_text())
    # Training records the detector shipped with the edge: file, bytes and label map.
    assert raw["detector"] == {
        "file": MODEL_PATH.name,
        "sha256": sha256_of(MODEL_PATH),
        "label_map_sha256": label_map_sha256(read_label_map(MODEL_PATH)),
    }
    zone = {"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    config = parse_config({"cameras": [{"name": "c", "source": "x.mp4", "zones": [zone]}]})
    CameraPipeline(config, load_bundle(trained_bundle), None, thing_name="t")  # the right detector loads

    other = tmp_path / "other"
    shutil.copytree(trained_bundle, other)
    raw["detector"]["label_map_sha256"] = "0" * 64  # made for a detector with other labels
    (other / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(DetectorModelError, match="label_map_sha256 'f8803ef7.*, the bundle says '0000"):
        CameraPipeline(config, load_bundle(other), None, thing_name="t")
    # A camera on motion alone needs no detector: nothing to refuse.
    motion = parse_config({"cameras": [{"name": "c", "source": "x.mp4", "zones": [{**zone, "motion_only": True}]}]})
    assert CameraPipeline(motion, load_bundle(other), None, thing_name="t")._object_detector is None
    raw["detector"]["sha256"] = "not a digest"
    with pytest.raises(ValidationError, match="detector.sha256"):
        Manifest.model_validate(raw)
