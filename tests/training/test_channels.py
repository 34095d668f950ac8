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


def test_a_bad_feedback_file_is_left_out_by_name_and_the_channels_own_csv_still_fails(tmp_path, rows, caplog):
    from edge_component.analysis.features import FEATURE_VERSION

    channel = tmp_path / "train"
    _csv(channel / "site.csv", HEADER, rows)
    events = channel / "feedback" / "dev" / f"v{FEATURE_VERSION}" / "cam-01"
    good = [["feedback/cam-01/cam0", "0", "", *(["0.1"] * len(FEATURE_NAMES)), "1"]]
    _csv(events / "good.csv", HEADER, good)
    bad = [["feedback/cam-01/cam0", "0", "", "1e+39", *(["0.1"] * (len(FEATURE_NAMES) - 1)), "0"]]
    _csv(events / "bad.csv", HEADER, bad)
    with caplog.at_level("WARNING", logger="vigil.train"):
        ds = load_channel(channel)
    assert len(ds) == len(rows) + 1  # site rows plus the good event; the bad one dropped
    assert [r for r in caplog.messages if "bad.csv" in r and "float32" in r]
    # The user's own CSV with the same value is not dropped: it fails the run, named.
    _csv(channel / "site.csv", HEADER, [*rows, bad[0]])
    with pytest.raises(DatasetError, match=r"site\.csv: row 22, column .*float32"):
        load_channel(channel)
