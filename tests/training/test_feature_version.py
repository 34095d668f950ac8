"""FEATURE_VERSION (edge_component/analysis/features.py) names what the features are: a
fixed segment of a real clip, featurised with the edge's own code, must give the digest
recorded for the current version. A change to motion analysis or the features that moves
them fails here until the version is bumped (and the seed bundle retrained), so a model
is never paired with features it was not trained on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge_component.analysis.features import FEATURE_VERSION
from edge_component.analysis.windows import analyse_source
from edge_component.config import CameraConfig, ComponentConfig
from training.labels import load_labels

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "examples" / "labels" / "test" / "car-detection.json"
SEGMENT_S = 12.0  # the first 12 s of the car clip: 60 windows, three cars and empty road

# sha256 of the segment's features (float64, rounded to 4 decimals, row-major), per version.
# "2": computed with the code that trained the version-2 seed bundle (commit 6b24144);
# "3": lighting correction and blank-frame handling changed 27 of these 60 windows.
DIGESTS = {
    "2": "8ab2bd3ad2b51ccc638a7db0641f6b5f4351e07a2c4bc9addfd55a3ed0f11ce9",
    "3": "0fdd91cce4d1ac0d039460d42587eed04f6b5bc59a20856d2d010dd3e63f4a2d",
}


def segment_digest() -> tuple[int, str]:
    labels, clip = load_labels(LABELS)
    camera = CameraConfig(
        name=labels.camera.name, source=str(clip), zones=labels.camera.zones, masks=labels.camera.masks
    )
    rows = []
    for window in analyse_source(camera, ComponentConfig(cameras=[camera])):
        if window.frame.time_s >= SEGMENT_S:
            break
        rows.append(window.features)
    features = np.round(np.stack(rows).astype(np.float64), 4)
    return len(rows), hashlib.sha256(features.tobytes()).hexdigest()


def test_the_features_of_a_fixed_clip_match_their_version():
    windows, digest = segment_digest()
    assert windows == 60
    assert FEATURE_VERSION in DIGESTS, f"add the digest of feature version {FEATURE_VERSION!r}: {digest}"
    assert digest == DIGESTS[FEATURE_VERSION], (
        f"the features of {LABELS.name}'s first {SEGMENT_S:g} s changed (digest {digest}) but FEATURE_VERSION is "
        f"still {FEATURE_VERSION!r}: bump it, add the digest here and retrain the seed bundle (make seed-model)"
    )


def test_the_shipped_seed_bundle_was_trained_on_this_feature_version():
    import json

    manifest = json.loads((REPO / "edge_component" / "models" / "seed" / "manifest.json").read_text())
    assert manifest["feature_version"] == FEATURE_VERSION
