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
