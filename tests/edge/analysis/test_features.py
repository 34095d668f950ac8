"""The feature contract (edge_component/analysis/features.py) on the real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_component.analysis.features import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    N_FEATURES,
    check_feature_contract,
)
from edge_component.config import ComponentConfig, parse_config

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _config(**camera) -> ComponentConfig:
    cam = {"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}], **camera}
    return parse_config({"cameras": [cam]})


def test_features_separate_presence_from_an_empty_room(windows):
    ws, _ = windows
    fg = FEATURE_NAMES.index("fg_ratio_mean")
    empty = [f[fg] for t, f in ws if 1.0 < t < 5.5 or 47.5 < t < 50.0]
    standing_still = [f[fg] for t, f in ws if 30.0 < t < 40.0]  # person at the table, barely moving
    assert max(empty) < 0.01
    assert min(standing_still) > 0.05  # still in the foreground: the background did not absorb them
    mv = FEATURE_NAMES.index("motion_ratio_mean")
    assert np.mean([f[mv] for t, f in ws if 30.0 < t < 40.0]) < 0.01  # and it is presence, not motion


def test_every_feature_vector_has_the_contract_shape(windows):
    ws, _ = windows
    for _, f in ws:
        assert f.shape == (N_FEATURES,) and f.dtype == np.float32
        assert np.all(np.isfinite(f))


def test_feature_contract_mismatch_names_the_difference():
    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match="feature 0"):
        check_feature_contract(swapped, FEATURE_VERSION)
    with pytest.raises(ValueError, match="version"):
        check_feature_contract(FEATURE_NAMES, "0")
    check_feature_contract(FEATURE_NAMES, FEATURE_VERSION)
