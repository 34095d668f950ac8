"""training/metrics.py: AUC and the threshold rule."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import choose_threshold, roc_auc


def test_metrics_auc_and_threshold_choice():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])) == 0.0
    assert roc_auc(y, np.full(6, 0.5)) == 0.5
    t, rule = choose_threshold(y, np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9]), 0.95)
    assert t == pytest.approx(0.7) and "precision" in rule
