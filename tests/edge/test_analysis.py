"""Motion analysis and window features on real decoded footage."""

from __future__ import annotations

import numpy as np
import pytest

from edge_component.capture.frames import CaptureStats
from edge_component.capture.source import SourceError
from edge_component.capture.replay import replay
from edge_component.config import ComponentConfig, ConfigError, parse_config
from edge_component.analysis.features import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES, check_feature_contract
from edge_component.analysis.windows import analyse_frames, analyse_source
from tests.conftest import CLIP, REPO

WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _config(**camera) -> ComponentConfig:
    cam = {"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}], **camera}
    return parse_config({"cameras": [cam]})


@pytest.fixture(scope="module")
def windows():
    cfg = _config()
    stats = CaptureStats()
    ws = [(w.frame.time_s, w.features) for w in analyse_source(cfg.cameras[0], cfg, stats)]
    return ws, stats


def test_replay_reads_every_frame_and_analyses_at_the_detection_rate(windows):
    ws, stats = windows
    assert stats.fps == pytest.approx(10.0)
    assert abs(stats.frames_in - 1394) <= 2  # container count may differ by one or two
    # 10 fps source at 5 analyses/s: every other frame decoded, the rest only grabbed
    assert stats.analysed == pytest.approx(stats.frames_in / 2, abs=1)
    assert stats.bad_frames == 0
    times = [t for t, _ in ws]
    assert np.allclose(np.diff(times), 0.2, atol=1e-6)


def test_features_separate_presence_from_an_empty_room(windows):
    ws, _ = windows
    fg = FEATURE_NAMES.index("fg_ratio_mean")
    empty = [f[fg] for t, f in ws if 1.0 < t < 5.5 or 47.5 < t < 50.0]
    standing_still = [f[fg] for t, f in ws if 30.0 < t < 40.0]  # person at the table, barely moving
    assert max(empty) < 0.01
    assert min(standing_still) > 0.05  # still in the foreground: the background did not absorb them
    mv = FEATURE_NAMES.index("motion_ratio_mean")
    assert np.mean([f[mv] for t, f in ws if 30.0 < t < 40.0]) < 0.01  # and it is presence, not motion


def test_every_feature_vector_has_the_contract_shape(windows):
    ws, _ = windows
    for _, f in ws:
        assert f.shape == (N_FEATURES,) and f.dtype == np.float32
        assert np.all(np.isfinite(f))


def test_a_sudden_brightening_of_the_whole_frame_recalibrates_instead_of_detecting():
    cfg = _config()
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(25))]  # first 5 s: empty room
    for f in frames[12:]:  # lights switched on at frame 12 and stay on
        f.luma = np.clip(f.luma.astype(np.int16) + 70, 0, 255).astype(np.uint8)
    out = list(analyse_frames(iter(frames), cfg.cameras[0], cfg))
    assert out[12].stats.recalibrated
    fg = FEATURE_NAMES.index("fg_ratio_max")
    assert max(w.features[fg] for w in out[13:]) < 0.01


def test_a_mask_over_the_zone_hides_the_person():
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(60))]  # 0..12 s, a person from 6 s
    left = [[0, 0], [0.9, 0], [0.9, 1], [0, 1]]  # where the person walks in the first 12 s
    unmasked, masked = _config(), _config(masks=[{"name": "left", "polygon": left}])
    seen = [w.features[0] for w in analyse_frames(iter(frames), unmasked.cameras[0], unmasked)]
    hidden = [w.features[0] for w in analyse_frames(iter(frames), masked.cameras[0], masked)]
    assert max(seen) > 0.05
    assert max(hidden) < 0.01


def test_a_zone_entirely_under_masks_is_a_config_error():
    with pytest.raises(ConfigError, match="'room' is entirely covered by masks"):
        _config(masks=[{"name": "all", "polygon": WHOLE}])


@pytest.mark.parametrize(
    "text, message",
    [
        ("cameras: []\ncameras: []", "given twice"),
        ("detection_fps: yes\ncameras: []", "detection_fps: expected a number, got true"),
        ("- 1\n- 2", "must be a mapping"),
    ],
)
def test_config_files_refuse_duplicate_keys_booleans_for_numbers_and_lists(tmp_path, text, message):
    from edge_component.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_replay_mode_refuses_a_live_source():
    with pytest.raises(ConfigError, match="mode 'replay' reads files"):
        _config(source="rtsp://127.0.0.1:8554/cam", mode="replay")


def test_zones_are_normalised_so_one_config_fits_any_resolution():
    import cv2

    cfg = _config(zones=[{"name": "right-half", "polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}])
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(60))]
    small = [type(f)(f.index, f.time_s, cv2.resize(f.luma, (384, 216)), None, f.studio_range) for f in frames]
    big = [w.features for w in analyse_frames(iter(frames), cfg.cameras[0], cfg)]
    little = [w.features for w in analyse_frames(iter(small), cfg.cameras[0], cfg)]
    np.testing.assert_allclose(np.array(big)[:, 0], np.array(little)[:, 0], atol=0.02)


def test_missing_and_non_video_sources_fail_clearly(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        list(replay(str(tmp_path / "nope.mp4"), 5.0))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError):
        list(replay(str(junk), 5.0))


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}], "detecton_fps": 5}, "detecton_fps"),
        ({"cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": [[0, 0], [1.5, 0], [1, 1]]}]}]}, "cameras.0.zones.0.polygon"),
        ({"cameras": [{"name": "c", "source": "x", "zones": []}]}, "cameras.0.zones"),
        ({"cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}], "decision": {"cooldown_s": -1}}, "decision.cooldown_s"),
        ({"cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}], "decision": {"threshold": 1.5}}, "decision.threshold"),
        ({"cameras": []}, "cameras"),
    ],
)
def test_bad_config_names_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(raw)


def test_feature_contract_mismatch_names_the_difference():
    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match="feature 0"):
        check_feature_contract(swapped, FEATURE_VERSION)
    with pytest.raises(ValueError, match="version"):
        check_feature_contract(FEATURE_NAMES, "0")
    check_feature_contract(FEATURE_NAMES, FEATURE_VERSION)


def test_armed_schedule_windows_follow_days_midnight_and_daylight_saving():
    from datetime import datetime, timezone

    from edge_component.events.schedule import ArmedSchedule

    s = ArmedSchedule.model_validate({"time_zone": "Europe/London",
                                      "windows": [{"days": ["fri"], "start": "22:00", "end": "06:00"}]})
    utc = timezone.utc
    assert s.is_armed(datetime(2026, 1, 9, 22, 30, tzinfo=utc))  # Friday 22:30 GMT
    assert s.is_armed(datetime(2026, 1, 10, 5, 59, tzinfo=utc))  # Saturday 05:59, still Friday's window
    assert not s.is_armed(datetime(2026, 1, 10, 22, 30, tzinfo=utc))  # Saturday evening
    assert not s.is_armed(datetime(2026, 1, 9, 6, 30, tzinfo=utc))  # Friday morning belongs to Thursday
    assert s.is_armed(datetime(2026, 7, 10, 21, 30, tzinfo=utc))  # 22:30 BST in summer
    with pytest.raises(ConfigError, match="unknown IANA time zone"):
        parse_config({"cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}],
                                   "armed": {"time_zone": "Mars/Olympus", "windows": [{"start": "1:00", "end": "2:00"}]}}]})


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("start: 22:00\nend: '06:00'", "quoted string 'HH:MM'"),  # YAML 1.1 reads 22:00 as 1320
        ("start: '22:00+01:00'\nend: '06:00'", "not a local time"),
        ("start: '25:00'\nend: '06:00'", "not a local time"),
        ("start: '08:00'\nend: '08:00'", "never be armed"),
    ],
)
def test_armed_window_times_must_be_quoted_local_hh_mm(yaml_text, message):
    import yaml

    window = yaml.safe_load(yaml_text)
    with pytest.raises(ConfigError, match=message):
        parse_config({"cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}],
                                   "armed": {"windows": [window]}}]})


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


def test_prefetch_keeps_order_and_raises_the_readers_error(tmp_path):
    from edge_component.capture.frames import prefetch

    direct = [f.index for f in replay(str(CLIP), 5.0)]
    ahead = [f.index for f in prefetch(replay(str(CLIP), 5.0))]
    assert ahead == direct
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError):
        list(prefetch(replay(str(junk), 5.0)))


def _colour_frames(path, n):
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out = [cap.read()[1] for _ in range(n)]
    cap.release()
    return out


def test_a_replay_analyses_the_luma_plane_which_matches_the_grey_of_the_colour_image():
    import cv2

    from edge_component.capture.luma import STUDIO_TO_FULL

    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(20))]
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


def test_the_luma_and_colour_paths_give_the_same_features():
    """Live sources are analysed from the colour image, replays from the Y plane: a model
    trained on replays must see the same numbers live."""
    from edge_component.capture.frames import Frame

    cfg = _config()
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(100))]  # 0..20 s: empty, then a person
    colour = _colour_frames(CLIP, frames[-1].index + 1)
    as_colour = [Frame.from_colour(f.index, f.time_s, colour[f.index]) for f in frames]
    luma = np.array([w.features for w in analyse_frames(iter(frames), cfg.cameras[0], cfg)])
    rgb = np.array([w.features for w in analyse_frames(iter(as_colour), cfg.cameras[0], cfg)])
    assert luma[:, 0].max() > 0.05  # the person is in these frames
    # Measured over the whole clip: ratios within 0.005, the largest blob within 0.05 (a
    # blob that splits on one path and not the other), blob counts within 1.2.
    tolerance = np.array([0.01, 0.01, 0.05, 1.5, 0.01, 0.01, 0.01, 0.01], np.float32)
    assert np.all(np.abs(luma - rgb) <= tolerance)


def test_reading_the_luma_plane_prints_no_opencv_warning(capfd):
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(10))]
    assert len(frames) == 10
    err = capfd.readouterr().err
    assert "unsupported picture format" not in err.lower()


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


@pytest.mark.parametrize("fourcc, ext, expected", [("mp4v", "mp4", "studio"), ("MJPG", "avi", "full"), ("PNG ", "avi", "colour")])
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


def test_a_variable_frame_rate_file_is_timed_by_its_timestamps(tmp_path):
    """A recorder that drops frames or pauses writes a variable-frame-rate file: media time
    follows the container's timestamps, not frame count / nominal rate."""
    from PIL import Image

    rng = np.random.default_rng(0)
    durations_ms = [100] * 10 + [1000] + [100] * 5 + [400] + [100] * 4  # pauses of 1 s and 0.4 s
    images = []
    for i in range(len(durations_ms)):
        frame = rng.integers(60, 140, (120, 160), dtype=np.uint8)  # texture, so not a blank frame
        frame[40:80, 5 * i: 5 * i + 30] = 250  # something moving
        images.append(Image.fromarray(frame).convert("P"))
    path = tmp_path / "vfr.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations_ms, loop=0)
    stats = CaptureStats()
    frames = list(replay(str(path), 100.0, stats))  # 100 analyses/s: every frame analysed
    assert [f.index for f in frames] == list(range(len(durations_ms)))
    expected = np.concatenate([[0], np.cumsum(durations_ms[:-1])]) / 1000.0
    np.testing.assert_allclose([f.time_s for f in frames], expected, atol=0.011)
    assert stats.last_error == ""  # fewer frames than nominal rate x duration is not truncation


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
