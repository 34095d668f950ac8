"""Fixtures of the edge tests: the example clip's ground truth and its windows (one
replay per session, shared by the capture and analysis tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_component.analysis.windows import analyse_source
from edge_component.capture.frames import CaptureStats
from edge_component.config import parse_config

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _ground_truth() -> list[tuple[float, float]]:
    raw = json.loads(LABELS.read_text())
    return [(iv["start_s"], iv["end_s"]) for iv in raw["abnormal"]]


@pytest.fixture(scope="session")
def ground_truth():
    """``ground_truth()``: (start_s, end_s) of each intrusion in the example clip."""
    return _ground_truth


@pytest.fixture(scope="session")
def windows():
    """(time_s, features) of every window of the example clip, one zone over the whole
    frame, and the replay's CaptureStats."""
    cfg = parse_config({"cameras": [{"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]}]})
    stats = CaptureStats()
    ws = [(w.frame.time_s, w.features) for w in analyse_source(cfg.cameras[0], cfg, stats)]
    return ws, stats
