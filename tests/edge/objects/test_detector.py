"""The COCO SSD detector: shipped file, digest check, label map, real inference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_component.objects.detector import (
    MODEL_DIR,
    MODEL_FILE,
    MODEL_PATH,
    MODEL_SHA256,
    DetectorModelError,
    ObjectDetector,
    read_label_map,
    sha256_of,
)
from edge_component.objects.labels import COCO_LABELS, KNOWN_LABELS

ROOM = Path(__file__).resolve().parents[3] / "examples" / "clips" / "one-by-one-person-detection.mp4"


def test_the_shipped_model_is_the_documented_one_with_its_licence():
    assert sha256_of(MODEL_PATH) == MODEL_SHA256
    readme = (MODEL_DIR / "README.md").read_text()
    assert MODEL_SHA256 in readme and MODEL_FILE in readme and "Apache-2.0" in readme
    assert "Apache License" in (MODEL_DIR / "LICENSE").read_text()


def test_the_label_constant_is_the_models_embedded_label_map():
    labels = read_label_map(MODEL_PATH)
    assert labels == COCO_LABELS and len(labels) == 90
    assert labels[0] == "person" and labels[2] == "car" and "???" not in KNOWN_LABELS


def test_a_corrupted_copy_is_refused_before_it_is_loaded(tmp_path):
    copy = tmp_path / MODEL_FILE
    shutil.copyfile(MODEL_PATH, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights
    copy.write_bytes(bytes(data))
    with pytest.raises(DetectorModelError, match="SHA-256") as exc:
        ObjectDetector(copy)
    assert str(copy) in str(exc.value) and MODEL_SHA256 in str(exc.value)


def test_a_file_that_is_not_the_expected_model_is_refused_and_a_missing_one_named(tmp_path):
    other = tmp_path / "other.tflite"
    other.write_bytes(b"TFL3" + bytes(100))
    with pytest.raises(DetectorModelError, match="corrupt or not the model"):
        ObjectDetector(other)
    # The right digest for a file without the embedded label map: refused for that.
    with pytest.raises(DetectorModelError, match="labelmap.txt"):
        ObjectDetector(other, expected_sha256=sha256_of(other))
    with pytest.raises(DetectorModelError, match="does not exist"):
        ObjectDetector(tmp_path / "missing.tflite")


def test_a_person_in_the_room_is_found_in_the_whole_frame(detector, grab):
    frame = grab(ROOM, 30.0)  # the second person stands at the table
    found = detector.detect(frame, min_score=0.5)
    people = [d for d in found if d.label == "person"]
    assert len(people) == 1
    x0, y0, x1, y1 = people[0].box
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert 0.4 < (x0 + x1) / 2 < 0.75 and y1 - y0 > 0.5  # standing, centre-right of the frame


def test_bad_images_are_refused_with_what_was_given(detector):
    with pytest.raises(ValueError, match="float32"):
        detector.detect(np.zeros((300, 300, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(300, 300, 4\)"):
        detector.detect(np.zeros((300, 300, 4), np.uint8))
    # A grey (infrared) image is accepted.
    assert isinstance(detector.detect(np.full((120, 120), 128, np.uint8)), list)
