"""Privacy masks are blacked out in the snapshot file itself (real OpenCV encode/decode)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_component.config import ConfigError, Polygon, parse_config
from edge_component.events.snapshots import SnapshotStore


def test_pixels_inside_a_privacy_mask_are_black_in_the_written_jpeg(tmp_path):
    image = np.full((120, 160, 3), 200, np.uint8)
    mask = Polygon(name="window", polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)])
    path = SnapshotStore(tmp_path).save("cam-e1.jpg", image, [mask])
    read = cv2.imread(str(path))
    assert read[5:55, 5:75].max() <= 8  # JPEG ringing stays near 0
    assert read[70:, 90:].min() >= 190  # outside the mask: untouched
    assert image.min() == 200  # the caller's frame is not changed


def test_privacy_masks_are_validated_like_zones():
    raw = {
        "cameras": [
            {
                "name": "c",
                "source": "x.mp4",
                "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                "privacy_masks": [{"name": "m", "polygon": [[0, 0], [1.5, 0], [1, 1]]}],
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"cameras\.0\.privacy_masks\.0\.polygon.*outside 0\.\.1"):
        parse_config(raw)


def test_evidence_upload_is_off_by_default_and_needs_a_bucket_when_on():
    cam = {"name": "c", "source": "x.mp4", "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}]}
    assert parse_config({"cameras": [cam]}).evidence.upload_snapshots is False
    with pytest.raises(ConfigError, match="evidence.*needs evidence.bucket"):
        parse_config({"cameras": [cam], "evidence": {"upload_snapshots": True}})
