"""training/channels.py: a channel holds feature CSVs or label files, never both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_component.analysis.features import FEATURE_NAMES
from training.channels import load_channel
from training.dataset import DatasetError

LABELS = Path(__file__).resolve().parents[2] / "examples" / "labels" / "one-by-one-person-detection.json"

HEADER = ["clip", "time_s", "zone", *FEATURE_NAMES, "label"]


def _csv(path, header, rows, *, sep=",", end="\n", encoding="utf-8", prefix=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = prefix + end.join(sep.join(r) for r in [header, *rows]) + end
    path.write_bytes(text.encode(encoding))
    return path


def _labels_file(path: Path, clip: Path) -> Path:
    raw = json.loads(LABELS.read_text())
    raw["clip"] = str(clip)
    path.write_text(json.dumps(raw))
    return path


def test_a_channel_mixing_csvs_and_label_files_is_refused_naming_both(tmp_path, rows):
    channel = tmp_path / "train"
    _csv(channel / "features.csv", HEADER, rows)
    _labels_file(channel / "other.json", tmp_path / "missing.mp4")  # would fail on its own, must not be skipped
    with pytest.raises(
        DatasetError,
        match=r"training channel .* mixes feature CSVs \(features\.csv\) and label "
        r"files \(other\.json\)",
    ):
        load_channel(channel)
    with pytest.raises(DatasetError, match="^validation channel"):
        load_channel(channel, "validation")
