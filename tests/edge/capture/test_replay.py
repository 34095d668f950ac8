"""Replay of files (edge_component/capture/replay.py): every frame in order, timed by its
timestamps, bad files reported clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_component.capture.frames import CaptureStats
from edge_component.capture.replay import replay
from edge_component.capture.source import SourceError
from edge_component.config import ComponentConfig, parse_config

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _config(**camera) -> ComponentConfig:
    cam = {"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}], **camera}
    return parse_config({"cameras": [cam]})


def test_replay_reads_every_frame_and_analyses_at_the_detection_rate(windows):
    ws, stats = windows
    assert stats.fps == pytest.approx(10.0)
    assert abs(stats.frames_in - 1394) <= 2  # container count may differ by one or two
    # 10 fps source at 5 analyses/s: every other frame decoded, the rest only grabbed
    assert stats.analysed == pytest.approx(stats.frames_in / 2, abs=1)
    assert stats.bad_frames == 0
    times = [t for t, _ in ws]
    assert np.allclose(np.diff(times), 0.2, atol=1e-6)


def test_missing_and_non_video_sources_fail_clearly(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        list(replay(str(tmp_path / "nope.mp4"), 5.0))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError):
        list(replay(str(junk), 5.0))


def test_a_still_image_is_not_replayed_as_a_video(tmp_path):
    import cv2

    ok, frame = cv2.VideoCapture(str(CLIP)).read()
    still = tmp_path / "still.jpg"
    cv2.imwrite(str(still), frame)
    with pytest.raises(SourceError, match="single frame"):
        list(replay(str(still), 5.0))


def test_a_truncated_file_is_played_to_where_it_ends_and_reported(tmp_path):
    cut = tmp_path / "cut.mp4"
    data = CLIP.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    stats = CaptureStats()
    frames = list(replay(str(cut), 5.0, stats))
    assert 0 < stats.frames_in < 1394 and len(frames) == stats.analysed
    assert "truncated" in stats.last_error


def test_a_variable_frame_rate_file_is_timed_by_its_timestamps(tmp_path):
    """A recorder that drops frames or pauses writes a variable-frame-rate file: media time
    follows the container's timestamps, not frame count / nominal rate."""
    from PIL import Image

    rng = np.random.default_rng(0)
    durations_ms = [100] * 10 + [1000] + [100] * 5 + [400] + [100] * 4  # pauses of 1 s and 0.4 s
    images = []
    for i in range(len(durations_ms)):
        frame = rng.integers(60, 140, (120, 160), dtype=np.uint8)  # texture, so not a blank frame
        frame[40:80, 5 * i : 5 * i + 30] = 250  # something moving
        images.append(Image.fromarray(frame).convert("P"))
    path = tmp_path / "vfr.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations_ms, loop=0)
    stats = CaptureStats()
    frames = list(replay(str(path), 100.0, stats))  # 100 analyses/s: every frame analysed
    assert [f.index for f in frames] == list(range(len(durations_ms)))
    expected = np.concatenate([[0], np.cumsum(durations_ms[:-1])]) / 1000.0
    np.testing.assert_allclose([f.time_s for f in frames], expected, atol=0.011)
    assert stats.last_error == ""  # fewer frames than nominal rate x duration is not truncation
