"""training/labels.py: bad label files fail naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.labels import LabelError, load_labels

LABELS = Path(__file__).resolve().parents[2] / "examples" / "labels" / "one-by-one-person-detection.json"


def test_bad_label_files_fail_naming_the_key(tmp_path):
    bad = json.loads(LABELS.read_text())
    bad["clip"] = str((LABELS.parent / bad["clip"]).resolve())
    bad["abnormal"][0] = {"start_s": 10, "end_s": 5}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(LabelError, match="abnormal.0"):
        load_labels(p)
    bad["abnormal"][0] = {"start_s": 1, "end_s": 5}
    bad["clip"] = "nowhere.mp4"
    p.write_text(json.dumps(bad))
    with pytest.raises(LabelError, match="clip not found"):
        load_labels(p)


def test_overlapping_label_intervals_are_refused(tmp_path):
    bad = json.loads(LABELS.read_text())
    bad["clip"] = str((LABELS.parent / bad["clip"]).resolve())
    bad["abnormal"].append({"start_s": 40, "end_s": 55})  # spans the end of one event and the start of the next
    p = tmp_path / "overlap.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(LabelError, match=r"intervals 1 \(23.0-45.0 s\) and 6 \(40.0-55.0 s\) overlap"):
        load_labels(p)


def test_a_label_file_that_is_not_utf8_fails_naming_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(LABELS.read_text().replace("lab-room", "café").encode("latin-1"))
    with pytest.raises(LabelError, match=r"latin1\.json: line \d+ is not UTF-8 text \(byte 0xe9"):
        load_labels(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"clip": "a.mp4", "clip": "b.mp4"}', r"duplicate keys \['clip'\]"),
        ("[]", r"\(top level\): Input should be a valid dictionary"),
    ],
)
def test_a_label_file_with_a_duplicate_key_or_no_object_is_refused(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LabelError, match=rf"bad\.json: .*{message}"):
        load_labels(path)
