"""Motion analysis (edge_component/analysis/motion.py): recalibration on lighting changes,
masks, normalised zones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_component.analysis.features import (
    FEATURE_NAMES,
)
from edge_component.analysis.windows import analyse_frames
from edge_component.capture.replay import replay
from edge_component.config import ComponentConfig, parse_config

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _config(**camera) -> ComponentConfig:
    cam = {"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}], **camera}
    return parse_config({"cameras": [cam]})


def test_a_sudden_brightening_of_the_whole_frame_recalibrates_instead_of_detecting():
    cfg = _config()
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(25), strict=False)]  # first 5 s: empty room
    for f in frames[12:]:  # lights switched on at frame 12 and stay on
        f.luma = np.clip(f.luma.astype(np.int16) + 70, 0, 255).astype(np.uint8)
    out = list(analyse_frames(iter(frames), cfg.cameras[0], cfg))
    assert out[12].stats.recalibrated
    fg = FEATURE_NAMES.index("fg_ratio_max")
    assert max(w.features[fg] for w in out[13:]) < 0.01


def test_a_mask_over_the_zone_hides_the_person():
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(60), strict=False)]  # 0..12 s, a person from 6 s
    left = [[0, 0], [0.9, 0], [0.9, 1], [0, 1]]  # where the person walks in the first 12 s
    unmasked, masked = _config(), _config(masks=[{"name": "left", "polygon": left}])
    seen = [w.features[0] for w in analyse_frames(iter(frames), unmasked.cameras[0], unmasked)]
    hidden = [w.features[0] for w in analyse_frames(iter(frames), masked.cameras[0], masked)]
    assert max(seen) > 0.05
    assert max(hidden) < 0.01


def test_zones_are_normalised_so_one_config_fits_any_resolution():
    import cv2

    cfg = _config(zones=[{"name": "right-half", "polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}])
    frames = [f for f, _ in zip(replay(str(CLIP), 5.0), range(60), strict=False)]
    small = [type(f)(f.index, f.time_s, cv2.resize(f.luma, (384, 216)), None, f.studio_range) for f in frames]
    big = [w.features for w in analyse_frames(iter(frames), cfg.cameras[0], cfg)]
    little = [w.features for w in analyse_frames(iter(small), cfg.cameras[0], cfg)]
    np.testing.assert_allclose(np.array(big)[:, 0], np.array(little)[:, 0], atol=0.02)
