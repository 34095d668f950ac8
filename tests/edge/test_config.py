"""The component configuration (edge_component/config.py): bad keys and values are errors
that name them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_component.config import ComponentConfig, ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _config(**camera) -> ComponentConfig:
    cam = {"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}], **camera}
    return parse_config({"cameras": [cam]})


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


@pytest.mark.parametrize(
    "raw, key",
    [
        (
            {"cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}], "detecton_fps": 5},
            "detecton_fps",
        ),
        (
            {
                "cameras": [
                    {"name": "c", "source": "x", "zones": [{"name": "z", "polygon": [[0, 0], [1.5, 0], [1, 1]]}]}
                ]
            },
            "cameras.0.zones.0.polygon",
        ),
        ({"cameras": [{"name": "c", "source": "x", "zones": []}]}, "cameras.0.zones"),
        (
            {
                "cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}],
                "decision": {"cooldown_s": -1},
            },
            "decision.cooldown_s",
        ),
        (
            {
                "cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}],
                "decision": {"threshold": 1.5},
            },
            "decision.threshold",
        ),
        ({"cameras": []}, "cameras"),
    ],
)
def test_bad_config_names_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(raw)
