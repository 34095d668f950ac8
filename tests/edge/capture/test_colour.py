"""Colour on demand for a luma-only replay's snapshots (edge_component/capture/colour.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_component.capture.replay import replay

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"


def _colour_frames(path, n):
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out = [cap.read()[1] for _ in range(n)]
    cap.release()
    return out


def test_colour_frames_decodes_the_analysed_frame_on_demand_forward_or_back(tmp_path):
    from edge_component.capture.colour import ColourFrames

    frames = {f.index: f for f in replay(str(CLIP), 5.0) if f.index <= 200}
    expected = _colour_frames(CLIP, 201)
    colour = ColourFrames(str(CLIP))
    try:
        for index in (10, 200, 4, 4, 150, 0):
            np.testing.assert_array_equal(colour.get(frames[index]), expected[index])
        assert colour.rereads == 2  # 200 -> 4 and 150 -> 0; the second 4 is the kept image, 4 -> 150 reads on
        # Frame 60's picture (a person walking) claimed to be frame 61: refused, not shown as 61.
        wrong = type(frames[60])(61, 6.1, frames[60].luma, None, True)
        assert colour.get(wrong) is None
        assert colour.get(type(wrong)(-1, 0.0, frames[10].luma, None, True)) is None
        past_end = type(wrong)(10**6, 0.0, frames[10].luma, None, True)
        assert colour.get(past_end) is None
        np.testing.assert_array_equal(colour.get(frames[0]), expected[0])  # and usable again
    finally:
        colour.close()


def test_colour_frames_refuses_a_file_replaced_since_the_analysis(tmp_path):
    import shutil

    from edge_component.capture.colour import ColourFrames

    path = tmp_path / "cam.mp4"
    shutil.copy(CLIP, path)
    frames = [f for f in replay(str(path), 5.0) if f.index in (0, 300)]
    shutil.copy(REPO / "examples" / "clips" / "car-detection.mp4", path)  # same size of picture
    colour = ColourFrames(str(path))
    try:
        assert [colour.get(f) for f in frames] == [None, None]
    finally:
        colour.close()
