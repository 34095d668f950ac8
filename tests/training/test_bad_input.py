"""Training on bad input: every case ends in one clear error naming the file and the
column, row or key (exit status 2 from train.py, no traceback), never a silent
acceptance; common exports (Excel's "CSV UTF-8", a trailing blank line) are read."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

from edge_component.features import FEATURE_NAMES
from training.channels import load_channel
from training.dataset import DatasetError, featurize_labels, read_dataset
from training.labels import LabelError, load_labels
from training.model import Standardizer
from training.train import parse_args
from tests.conftest import LABELS, REPO

HEADER = ["clip", "time_s", "zone", *FEATURE_NAMES, "label"]


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    """Twenty CSV rows of both classes (values need not come from a clip here)."""
    return [["a.mp4", f"{i * 0.2:.1f}", "", *(f"{(i % 7) * 0.01:g}" for _ in FEATURE_NAMES), str(i % 2)]
            for i in range(20)]


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


# 1. A channel holds feature CSVs or label files, never both.

def test_a_channel_mixing_csvs_and_label_files_is_refused_naming_both(tmp_path, rows):
    channel = tmp_path / "train"
    _csv(channel / "features.csv", HEADER, rows)
    _labels_file(channel / "other.json", tmp_path / "missing.mp4")  # would fail on its own, must not be skipped
    with pytest.raises(DatasetError, match=r"training channel .* mixes feature CSVs \(features\.csv\) and label "
                                           r"files \(other\.json\)"):
        load_channel(channel)
    with pytest.raises(DatasetError, match="^validation channel"):
        load_channel(channel, "validation")


# 2. Duplicate column names.

@pytest.mark.parametrize("column", ["label", "clip", "fg_ratio_mean"])
def test_a_duplicate_column_is_refused_naming_it(tmp_path, rows, column):
    path = _csv(tmp_path / "dup.csv", [*HEADER, column], [[*r, "1"] for r in rows])
    with pytest.raises(DatasetError, match=rf"dup\.csv: duplicate column names \['{column}'\]"):
        read_dataset(path)


# 3. Hyperparameters: SageMaker passes only the job's own, so an unknown one is a typo.

@pytest.mark.parametrize("argv, named, hint", [
    (["--learnin-rate", "5"], "--learnin-rate", "did you mean --learning-rate?"),
    (["--learning_rate", "5"], "--learning_rate", "did you mean --learning-rate?"),
    (["--learn", "5"], "--learn", "did you mean --learning-rate?"),  # no silent abbreviations either
    (["--epochs", "3", "--unknown-hyperparameter", "1"], "--unknown-hyperparameter", ""),
])
def test_an_unknown_hyperparameter_fails_naming_it_and_the_known_ones(capsys, argv, named, hint):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"unknown hyperparameters: {named}" in err and hint in err
    assert "--learning-rate" in err and "--min-auc" in err and "--validation-every" in err  # the known ones


@pytest.mark.parametrize("argv, message", [
    (["--hidden", "abc"], "argument --hidden: expected comma-separated positive layer sizes such as '64,32', got 'abc'"),
    (["--hidden", "64,0"], "argument --hidden: expected comma-separated positive layer sizes"),
    (["--validation-every", "0"], "argument --validation-every: must be at least 2"),
    (["--validation-every", "1"], "argument --validation-every: must be at least 2"),
    (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["--min-precision", "2"], "argument --min-precision: must be above 0 and at most 1, got 2.0"),
    (["--min-auc", "nan"], "argument --min-auc: must be a finite number, got nan"),
    (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
])
def test_a_bad_hyperparameter_value_fails_naming_it(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_hidden_layers_are_read_once_and_checked():
    from training.hyperparameters import hidden_layers

    assert hidden_layers("64, 32") == (64, 32) == hidden_layers(parse_args(["--hidden", "64,32"]).hidden)
    assert hidden_layers("") == ()


# 4. Unreadable clips and files that are not UTF-8.

def test_a_clip_that_is_not_a_video_fails_naming_the_label_file(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    labels = _labels_file(tmp_path / "notes.json", text)
    with pytest.raises(LabelError, match=r"notes\.json: clip '.*notes\.mp4' cannot be read as video"):
        featurize_labels([labels])


def test_a_csv_that_is_not_utf8_fails_naming_the_file_and_line(tmp_path, rows):
    path = _csv(tmp_path / "latin1.csv", HEADER, [rows[0], ["café.mp4", *rows[1][1:]], *rows[2:]], encoding="latin-1")
    with pytest.raises(DatasetError, match=r"latin1\.csv: line 3 is not UTF-8 text \(byte 0xe9"):
        read_dataset(path)


def test_a_label_file_that_is_not_utf8_fails_naming_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(LABELS.read_text().replace("lab-room", "café").encode("latin-1"))
    with pytest.raises(LabelError, match=r"latin1\.json: line \d+ is not UTF-8 text \(byte 0xe9"):
        load_labels(path)


@pytest.mark.parametrize("text, message", [
    ('{"clip": "a.mp4", "clip": "b.mp4"}', r"duplicate keys \['clip'\]"),
    ("[]", r"\(top level\): Input should be a valid dictionary"),
])
def test_a_label_file_with_a_duplicate_key_or_no_object_is_refused(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LabelError, match=rf"bad\.json: .*{message}"):
        load_labels(path)


# 5. Values float32 cannot hold.

def test_a_feature_beyond_float32_fails_naming_row_and_column(tmp_path, rows):
    big = [list(r) for r in rows]
    big[4][HEADER.index("motion_ratio_max")] = "1e39"  # finite in float64, inf in float32
    path = _csv(tmp_path / "big.csv", HEADER, big)
    with pytest.raises(DatasetError, match=r"big\.csv: row 6, column 'motion_ratio_max': 1e39 is beyond the float32 range"):
        read_dataset(path)
    big[4][HEADER.index("motion_ratio_max")] = "3.4e38"  # the largest float32 is ~3.4028e38
    assert np.isfinite(read_dataset(_csv(tmp_path / "big.csv", HEADER, big)).X).all()


def test_normalisation_of_large_float32_values_stays_finite():
    # float32's own squares overflow above ~1.8e19; the scaler works in float64.
    scaler = Standardizer.fit(np.array([[1e20, 0.0], [-1e20, 1.0], [3e38, 0.5]], np.float32))
    assert np.isfinite(scaler.mean).all() and np.isfinite(scaler.scale).all()


def test_a_non_finite_time_fails_naming_row_and_column(tmp_path, rows):
    bad = [list(r) for r in rows]
    bad[0][1] = "nan"
    with pytest.raises(DatasetError, match=r"row 2, column 'time_s': nan is not finite"):
        read_dataset(_csv(tmp_path / "t.csv", HEADER, bad))


# 6. Common CSV exports.

@pytest.mark.parametrize("variant", ["bom", "bom_crlf", "trailing_blank_lines", "empty_rows", "blank_line_before_header"])
def test_common_csv_exports_read_like_the_plain_file(tmp_path, rows, variant):
    plain = read_dataset(_csv(tmp_path / "plain.csv", HEADER, rows))
    body = [*rows[:5], [""] * len(HEADER), *rows[5:]] if variant == "empty_rows" else rows
    path = _csv(tmp_path / f"{variant}.csv", HEADER, body, prefix={"bom": "\ufeff", "bom_crlf": "\ufeff",
                                                                   "blank_line_before_header": "\n"}.get(variant, ""),
                end="\r\n" if variant == "bom_crlf" else "\n")
    if variant == "trailing_blank_lines":
        path.write_bytes(path.read_bytes() + b"\n\n")
    back = read_dataset(path)
    np.testing.assert_array_equal(back.X, plain.X)
    assert (back.y == plain.y).all() and (back.times == plain.times).all()


def test_rows_are_numbered_by_line_past_skipped_empty_rows(tmp_path, rows):
    bad = [list(r) for r in rows]
    bad[3][-1] = "2"  # line 6: header, three rows, an empty row, then this one
    with pytest.raises(DatasetError, match=r"row 6, column 'label': must be 0 or 1, got '2'"):
        read_dataset(_csv(tmp_path / "n.csv", HEADER, [*bad[:3], [""] * len(HEADER), *bad[3:]]))


# train.py: exit status 2 and one clear line, never a traceback.

@pytest.mark.parametrize("case", ["mixed_channel", "not_a_video", "unknown_hyperparameter"])
def test_script_exits_2_with_a_clear_message_and_no_traceback(tmp_path, rows, case):
    channel = tmp_path / "train"
    args = []
    if case == "mixed_channel":
        _csv(channel / "features.csv", HEADER, rows)
        _labels_file(channel / "clip.json", tmp_path / "missing.mp4")
        expected = "mixes feature CSVs (features.csv) and label files (clip.json)"
    elif case == "not_a_video":
        channel.mkdir()
        (channel / "clip.mp4").write_text("not a video\n")
        _labels_file(channel / "clip.json", channel / "clip.mp4")
        expected = "clip.json: clip '"
    else:
        _csv(channel / "features.csv", HEADER, rows)
        args, expected = ["--learnin-rate", "5"], "unknown hyperparameters: --learnin-rate"
    env = dict(os.environ, SM_MODEL_DIR=str(tmp_path / "model"), SM_OUTPUT_DATA_DIR=str(tmp_path / "out"),
               SM_CHANNEL_TRAIN=str(channel))
    proc = subprocess.run([sys.executable, str(REPO / "training" / "train.py"), "--test", "none", *args], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "model").exists()
