"""Frames to windows (edge_component/analysis/windows.py): the luma and colour paths agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_component.analysis.windows import analyse_frames
from edge_component.capture.replay import replay
from edge_component.config import ComponentConfig, parse_config

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _config(**camera) -> ComponentConfig:
    cam = {"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}], **camera}
    return parse_config({"cameras": [cam]})


def _colour_frames(path, n):
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out = [cap.read()[1] for _ in range(n)]
    cap.release()
    return out


def test_the_luma_and_colour_paths_give_the_same_features():
    """Live sources are analysed from the colour image, replays from the Y plane: a model
    trained on replays must see the same numbers live."""
    from edge_component.capture.frames import Frame

    cfg = _config()
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(100), strict=False)]  # 0..20 s: empty, then a person
    colour = _colour_frames(CLIP, frames[-1].index + 1)
    as_colour = [Frame.from_colour(f.index, f.time_s, colour[f.index]) for f in frames]
    luma = np.array([w.features for w in analyse_frames(iter(frames), cfg.cameras[0], cfg)])
    rgb = np.array([w.features for w in analyse_frames(iter(as_colour), cfg.cameras[0], cfg)])
    assert luma[:, 0].max() > 0.05  # the person is in these frames
    # Measured over the whole clip: ratios within 0.005, the largest blob within 0.05 (a
    # blob that splits on one path and not the other), blob counts within 1.2.
    tolerance = np.array([0.01, 0.01, 0.05, 1.5, 0.01, 0.01, 0.01, 0.01], np.float32)
    assert np.all(np.abs(luma - rgb) <= tolerance)
