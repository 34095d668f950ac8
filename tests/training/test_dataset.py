"""training/dataset.py: the dataset made from the real clip with the edge's code, and every check
of a feature CSV, each failing with a message that names the file, row and column."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge_component.analysis.features import FEATURE_NAMES
from training.dataset import DatasetError, featurize_labels, read_dataset
from training.labels import LabelError

LABELS = Path(__file__).resolve().parents[2] / "examples" / "labels" / "one-by-one-person-detection.json"


def test_featurised_clip_is_labelled_from_the_ground_truth(dataset):
    assert dataset.X.shape == (len(dataset), len(FEATURE_NAMES))
    assert 600 < len(dataset) < 800  # 139 s at 5 windows/s
    inside = (dataset.times >= 30) & (dataset.times < 40)
    empty = (dataset.times >= 1) & (dataset.times < 5)
    assert dataset.y[inside].all() and not dataset.y[empty].any()


def test_dataset_round_trips_through_csv(dataset, csv_path):
    back = read_dataset(csv_path)
    np.testing.assert_allclose(back.X, dataset.X, rtol=1e-5, atol=1e-6)
    assert (back.y == dataset.y).all()


def _set(line: str, column: str, value: str) -> str:
    fields = line.split(",")
    fields[["clip", "time_s", "zone", *FEATURE_NAMES, "label"].index(column)] = value
    return ",".join(fields)


def _rewrite(path, fn):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ls: [",".join(line.split(",")[:-1]) for line in ls], "no 'label' column"),
        (
            lambda ls: [ls[0], _set(ls[1], "fg_ratio_mean", "nan"), *ls[2:]],
            "row 2, column 'fg_ratio_mean': nan is not finite",
        ),
        (
            lambda ls: [ls[0], ls[1], _set(ls[2], "motion_ratio_max", "inf"), *ls[3:]],
            "row 3, column 'motion_ratio_max': inf is not finite",
        ),
        (
            lambda ls: [ls[0], _set(ls[1], "blob_count_mean", "abc"), *ls[2:]],
            "column 'blob_count_mean': not a number: 'abc'",
        ),
        (lambda ls: [ls[0], _set(ls[1], "time_s", "soon"), *ls[2:]], "column 'time_s': not a number"),
        (lambda ls: [ls[0].replace("fg_ratio_mean", "fg_mean")] + ls[1:], "do not match the feature contract"),
        (lambda ls: [ls[0]] + [line[:-1] + "0" for line in ls[1:]], "training needs both classes"),
        (lambda ls: [ls[0]] + [line[:-1] + "2" for line in ls[1:2]] + ls[2:], "must be 0 or 1"),
        (lambda ls: [], "empty file"),
    ],
)
def test_bad_datasets_fail_naming_the_problem(csv_path, edit, message):
    _rewrite(csv_path, edit)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_dataset(csv_path)


def test_swapped_feature_columns_are_refused(csv_path):
    def swap(ls):
        out = []
        for line in ls:
            f = line.split(",")
            f[3], f[4] = f[4], f[3]
            out.append(",".join(f))
        return out

    _rewrite(csv_path, swap)
    with pytest.raises(DatasetError, match="out of order"):
        read_dataset(csv_path)


def test_a_semicolon_separated_file_says_what_is_wrong(csv_path):
    _rewrite(csv_path, lambda ls: [line.replace(",", ";") for line in ls])
    with pytest.raises(DatasetError, match="separated by something other than commas"):
        read_dataset(csv_path)


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


@pytest.mark.parametrize("column", ["label", "clip", "fg_ratio_mean"])
def test_a_duplicate_column_is_refused_naming_it(tmp_path, rows, column):
    path = _csv(tmp_path / "dup.csv", [*HEADER, column], [[*r, "1"] for r in rows])
    with pytest.raises(DatasetError, match=rf"dup\.csv: duplicate column names \['{column}'\]"):
        read_dataset(path)


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


def test_a_feature_beyond_float32_fails_naming_row_and_column(tmp_path, rows):
    big = [list(r) for r in rows]
    big[4][HEADER.index("motion_ratio_max")] = "1e39"  # finite in float64, inf in float32
    path = _csv(tmp_path / "big.csv", HEADER, big)
    with pytest.raises(
        DatasetError, match=r"big\.csv: row 6, column 'motion_ratio_max': 1e39 is beyond the float32 range"
    ):
        read_dataset(path)
    big[4][HEADER.index("motion_ratio_max")] = "3.4e38"  # the largest float32 is ~3.4028e38
    assert np.isfinite(read_dataset(_csv(tmp_path / "big.csv", HEADER, big)).X).all()


def test_a_non_finite_time_fails_naming_row_and_column(tmp_path, rows):
    bad = [list(r) for r in rows]
    bad[0][1] = "nan"
    with pytest.raises(DatasetError, match=r"row 2, column 'time_s': nan is not finite"):
        read_dataset(_csv(tmp_path / "t.csv", HEADER, bad))


@pytest.mark.parametrize(
    "variant", ["bom", "bom_crlf", "trailing_blank_lines", "empty_rows", "blank_line_before_header"]
)
def test_common_csv_exports_read_like_the_plain_file(tmp_path, rows, variant):
    plain = read_dataset(_csv(tmp_path / "plain.csv", HEADER, rows))
    body = [*rows[:5], [""] * len(HEADER), *rows[5:]] if variant == "empty_rows" else rows
    path = _csv(
        tmp_path / f"{variant}.csv",
        HEADER,
        body,
        prefix={"bom": "\ufeff", "bom_crlf": "\ufeff", "blank_line_before_header": "\n"}.get(variant, ""),
        end="\r\n" if variant == "bom_crlf" else "\n",
    )
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


def _cut(clip: Path, fraction: float, out: Path) -> Path:
    """The first ``fraction`` of ``clip``'s bytes: what an interrupted copy leaves."""
    data = clip.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def test_a_clip_that_ends_before_its_labels_is_refused_naming_it(tmp_path):
    """The example clip cut at 30 % of its bytes decodes to about 41 s; its labels run to 136 s.
    Training on it would label every window after the cut nothing at all; it is refused."""
    clip = (LABELS.parent / json.loads(LABELS.read_text())["clip"]).resolve()
    cut = _cut(clip, 0.3, tmp_path / "cut.mp4")
    labels = _labels_file(tmp_path / "cut.json", cut)
    with pytest.raises(LabelError) as info:
        featurize_labels([labels])
    message = str(info.value)
    assert re.search(r"cut\.json: clip '[^']*cut\.mp4' ends at 40\.\d s, before", message), message
    assert "abnormal intervals 23-45 s, 51-70 s, 75-87 s, 93-120 s, 124-136 s" in message
    assert "6-20" not in message  # inside the clip: not named


def test_labels_up_to_the_clips_last_second_are_kept(tmp_path):
    """An interval ending within a second after the last frame ("until the end") is not a cut."""
    clip = (LABELS.parent / json.loads(LABELS.read_text())["clip"]).resolve()
    cut = _cut(clip, 0.3, tmp_path / "cut.mp4")
    raw = json.loads(LABELS.read_text())
    raw["clip"], raw["abnormal"] = str(cut), [{"start_s": 6, "end_s": 20}, {"start_s": 23, "end_s": 41.5}]
    (tmp_path / "cut.json").write_text(json.dumps(raw))
    ds = featurize_labels([tmp_path / "cut.json"])
    assert ds.times.max() > 40 and ds.y.sum() > 0
