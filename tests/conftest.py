"""Shared fixtures: the real example clip, its labels, and one model trained from them
per test session (about 10 s on 2 cores) that the edge tests load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"


def ground_truth() -> list[tuple[float, float]]:
    """(start_s, end_s) of each intrusion in the example clip."""
    raw = json.loads(LABELS.read_text())
    return [(iv["start_s"], iv["end_s"]) for iv in raw["abnormal"]]


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory) -> Path:
    """A model bundle trained on the example clip's labelled windows (real training,
    real int8 conversion, gates included)."""
    from training.train import parse_args, train

    root = tmp_path_factory.mktemp("trained")
    args = parse_args(
        [
            "--model-dir",
            str(root / "model"),
            "--output-data-dir",
            str(root / "output"),
            "--train",
            str(LABELS),
            "--epochs",
            "40",
        ]
    )
    train(args)
    return root / "model"
