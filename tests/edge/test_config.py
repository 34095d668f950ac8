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


def test_a_zone_watches_person_by_default_and_the_demo_and_stage_configs_still_validate():
    import json

    import yaml

    from edge_component.config import load_config
    from infra.config import load_stages

    assert _config().cameras[0].zones[0].objects == ["person"] and not _config().cameras[0].zones[0].motion_only
    demo = load_config(REPO / "examples" / "demo-config.yaml")
    assert [z.objects for z in demo.cameras[0].zones] == [["person"]]
    assert yaml.safe_load((REPO / "examples" / "demo-config.yaml").read_text())["cameras"][0]["zones"]
    stages = load_stages(json.loads((REPO / "cdk.json").read_text())["context"]["vigil:stages"])
    for stage in stages.values():
        merge, _ = stage.edge.configuration_update()
        parsed = parse_config(
            {**merge, "cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}]}
        )
        assert parsed.cameras[0].zones[0].objects == ["person"]


def test_zone_object_settings_in_frigates_vocabulary():
    zone = {
        "name": "yard",
        "polygon": WHOLE,
        "objects": ["person", "dog"],
        "filters": {"person": {"min_score": 0.6, "threshold": 0.75}},
        "masks": [{"name": "tree", "polygon": [[0, 0], [0.2, 0], [0.2, 0.2]]}],
    }
    z = _config(zones=[zone, {"name": "road", "polygon": WHOLE, "motion_only": True}]).cameras[0].zones
    assert z[0].filter_for("person").threshold == 0.75 and z[0].filter_for("dog").min_score == 0.5
    assert z[0].masks[0].name == "tree" and z[1].motion_only


@pytest.mark.parametrize(
    "zone, key, words",
    [
        ({"objects": ["persn"]}, "cameras.0.zones.0.objects.0", "did you mean person"),
        ({"objects": []}, "cameras.0.zones.0", "objects: list at least one label"),
        ({"filters": {"person": {"min_scor": 0.5}}}, "cameras.0.zones.0.filters.person.min_scor", "Extra inputs"),
        (
            {"filters": {"person": {"min_score": 0.8, "threshold": 0.6}}},
            "cameras.0.zones.0.filters.person",
            "below min_score",
        ),
        ({"filters": {"car": {"min_score": 0.5}}}, "cameras.0.zones.0", "not in objects"),
        ({"motion_only": True, "objects": ["car"]}, "cameras.0.zones.0", "motion-only zone watches no labels"),
        ({"masks": [{"name": "m", "polygon": [[0, 0], [2, 0], [1, 1]]}]}, "cameras.0.zones.0.masks.0", "outside 0..1"),
        ({"motion_only": "sometimes"}, "cameras.0.zones.0.motion_only", "boolean"),
    ],
)
def test_bad_zone_object_settings_name_the_key(zone, key, words):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        _config(zones=[{"name": "z", "polygon": WHOLE, **zone}])
    assert words in str(err.value)


def test_object_detection_stage_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"object_detection\.gate_score"):
        parse_config(
            {
                "cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}],
                "object_detection": {"gate_score": 2},
            }
        )
    with pytest.raises(ConfigError, match=r"object_detection\.tracking"):
        parse_config(
            {
                "cameras": [{"name": "c", "source": "x", "zones": [{"name": "z", "polygon": WHOLE}]}],
                "object_detection": {"tracking": {"min_hits": 12}},
            }
        )


def test_zone_object_settings_survive_the_json_the_runtime_hands_each_camera_worker():
    zones = [
        {"name": "road", "polygon": WHOLE, "motion_only": True},
        {"name": "yard", "polygon": WHOLE, "objects": ["dog"], "filters": {"dog": {"threshold": 0.8}}},
    ]
    config = _config(zones=zones)
    assert ComponentConfig.model_validate_json(config.model_dump_json()) == config
