"""training/model.py: the standardizer stays finite on large float32 values."""

from __future__ import annotations

import numpy as np

from training.model import Standardizer


def test_normalisation_of_large_float32_values_stays_finite():
    # float32's own squares overflow above ~1.8e19; the scaler works in float64.
    scaler = Standardizer.fit(np.array([[1e20, 0.0], [-1e20, 1.0], [3e38, 0.5]], np.float32))
    assert np.isfinite(scaler.mean).all() and np.isfinite(scaler.scale).all()
