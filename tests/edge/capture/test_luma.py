"""The luma path (edge_component/capture/luma.py): which files are analysed on their Y
plane, in which range, and which in colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_component.capture.replay import replay

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"


def _colour_frames(path, n):
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out = [cap.read()[1] for _ in range(n)]
    cap.release()
    return out


def test_a_replay_analyses_the_luma_plane_which_matches_the_grey_of_the_colour_image():
    import cv2

    from edge_component.capture.luma import STUDIO_TO_FULL

    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(20), strict=False)]
    colour = _colour_frames(CLIP, frames[-1].index + 1)
    for f in frames:
        assert f.image is None and f.studio_range and f.luma.shape == (432, 768)
        grey = cv2.cvtColor(colour[f.index], cv2.COLOR_BGR2GRAY).astype(np.int16)
        diff = np.abs(STUDIO_TO_FULL[f.luma].astype(np.int16) - grey)
        assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 6


@pytest.mark.parametrize(
    "fourcc, ext, expected",
    [
        ("mp4v", "mp4", "studio"),  # MPEG-4 part 2, yuv420p: 16..235
        ("MJPG", "avi", "full"),  # Motion JPEG (USB webcams, many IP cameras): 0..255
        ("PNG ", "avi", "colour"),  # RGB pictures: no Y plane, decoded in colour
    ],
)
def test_each_format_is_read_as_studio_or_full_range_luma_or_in_colour(tmp_path, fourcc, ext, expected):
    import cv2

    from edge_component.capture.luma import STUDIO_TO_FULL

    source = _colour_frames(CLIP, 12)
    path = tmp_path / f"clip.{ext}"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 10, (768, 432))
    for image in source:
        writer.write(image)
    writer.release()
    frames = list(replay(str(path), 5.0))
    assert len(frames) == 6
    decoded = _colour_frames(path, 12)
    for f in frames:
        kind = "colour" if f.image is not None else "studio" if f.studio_range else "full"
        assert kind == expected
        luma = STUDIO_TO_FULL[f.luma] if f.studio_range else f.luma
        grey = cv2.cvtColor(decoded[f.index], cv2.COLOR_BGR2GRAY)
        assert np.abs(luma.astype(np.int16) - grey).mean() < 2.0


def test_reading_the_luma_plane_prints_no_opencv_warning(capfd):
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(10), strict=False)]
    assert len(frames) == 10
    err = capfd.readouterr().err
    assert "unsupported picture format" not in err.lower()


@pytest.mark.parametrize(
    "fourcc, ext, expected", [("mp4v", "mp4", "studio"), ("MJPG", "avi", "full"), ("PNG ", "avi", "colour")]
)
def test_a_black_first_frame_does_not_fool_the_luma_check(tmp_path, fourcc, ext, expected):
    """A flat frame matches any plane in any range: the check waits for a frame with contrast."""
    import cv2

    path = tmp_path / f"black-first.{ext}"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 10, (768, 432))
    writer.write(np.zeros((432, 768, 3), np.uint8))
    for image in _colour_frames(CLIP, 9):
        writer.write(image)
    writer.release()
    frames = list(replay(str(path), 5.0))
    kinds = {"colour" if f.image is not None else "studio" if f.studio_range else "full" for f in frames}
    assert kinds == {expected}


def test_planar_rgb_is_decoded_in_colour_even_when_its_first_frames_are_monochrome():
    """The first plane of planar RGB is green, equal to the grey of a monochrome picture
    (a camera in infrared mode), so only the pixel format can say it is not luma."""
    import cv2

    from edge_component.capture.luma import luma_range

    path = REPO / "tests" / "data" / "planar-rgb-mono-then-colour.mkv"
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert int(cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)).to_bytes(4, "little") == b"G3\x00\x08"  # gbrp
    cap.release()
    assert luma_range(str(path)) is None
    frames = list(replay(str(path), 5.0))
    assert len(frames) == 10 and all(f.image is not None for f in frames)
