"""Zone membership by the bottom centre, object masks, and the object settings' errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_component.objects.settings import LabelFilter, RegionSettings, TrackingSettings, ZoneObjects
from edge_component.objects.zones import ZoneGeometry, bottom_centre, in_zone, masked

ROOM = Path(__file__).resolve().parents[3] / "examples" / "clips" / "one-by-one-person-detection.mp4"

SHAPE = (432, 768)
FLOOR_RIGHT = [(0.5, 0.6), (1.0, 0.6), (1.0, 1.0), (0.5, 1.0)]  # lower right quarter of the frame


def test_bottom_centre_is_where_the_feet_are():
    assert bottom_centre((100, 50, 200, 350)) == (150.0, 350.0)


def test_an_object_is_in_a_zone_by_its_feet_not_by_its_body():
    feet_in = (400, 50, 500, 400)  # body mostly above the zone, feet inside it
    assert in_zone(feet_in, FLOOR_RIGHT, SHAPE)
    head_over = (300, 300, 420, 420)  # overlaps the zone, feet centre at x=360 < 384: outside
    assert not in_zone(head_over, FLOOR_RIGHT, SHAPE)
    above = (500, 10, 700, 250)  # entirely above the zone line (y = 0.6 * 431 = 258.6)
    assert not in_zone(above, FLOOR_RIGHT, SHAPE)
    # A box down to the frame's last row counts in a whole-frame zone.
    assert in_zone((0, 0, 768, 432), [(0, 0), (1, 0), (1, 1), (0, 1)], SHAPE)


def test_a_detected_person_stands_in_the_zone_drawn_round_the_table(detector, grab):
    frame = grab(ROOM, 30.0)
    h, w = frame.shape[:2]
    person = next(d for d in detector.detect(frame, 0.5) if d.label == "person")
    box = (person.box[0] * w, person.box[1] * h, person.box[2] * w, person.box[3] * h)
    geometry = ZoneGeometry(
        [
            [(0.35, 0.7), (0.9, 0.7), (0.9, 1.0), (0.35, 1.0)],  # floor by the table
            [(0.0, 0.0), (0.3, 0.0), (0.3, 1.0), (0.0, 1.0)],
        ],
        (h, w),
    )  # left wall
    assert geometry.containing(box) == [0]
    # The same floor as an object mask hides the person; a mask on the wall does not.
    assert masked(box, ZoneGeometry([[(0.35, 0.7), (0.9, 0.7), (0.9, 1.0), (0.35, 1.0)]], (h, w)))
    assert not masked(box, ZoneGeometry([[(0.0, 0.0), (0.3, 0.0), (0.3, 0.3)]], (h, w)))


def test_polygons_out_of_range_are_refused():
    with pytest.raises(ValueError, match="polygon 0"):
        ZoneGeometry([[(0, 0), (1.2, 0), (1, 1)]], SHAPE)
    with pytest.raises(ValueError, match="at least 3"):
        ZoneGeometry([[(0, 0), (1, 1)]], SHAPE)


def test_defaults_watch_people_with_frigates_scores():
    zone = ZoneObjects()
    assert zone.objects == ["person"] and not zone.motion_only
    assert zone.filter_for("person") == LabelFilter(min_score=0.5, threshold=0.7)
    assert ZoneObjects(motion_only=True).motion_only


def _error(model, data) -> str:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return str(exc.value)


def test_errors_name_the_key():
    msg = _error(ZoneObjects, {"objects": ["person", "persn"]})
    assert "objects.1" in msg and "'persn' is not a label" in msg and "person" in msg
    msg = _error(ZoneObjects, {"objects": ["person"], "filters": {"person": {"min_scor": 0.4}}})
    assert "filters.person.min_scor" in msg
    msg = _error(ZoneObjects, {"objects": ["person"], "filters": {"person": {"min_score": 0.8, "threshold": 0.6}}})
    assert "filters.person" in msg and "below min_score" in msg
    msg = _error(ZoneObjects, {"objects": ["person"], "filters": {"car": {"min_score": 0.4}}})
    assert "filters" in msg and "not in objects" in msg
    msg = _error(ZoneObjects, {"objects": ["car"], "motion_only": True})
    assert "motion_only" in msg
    msg = _error(ZoneObjects, {"objects": []})
    assert "objects" in msg
    msg = _error(ZoneObjects, {"masks": [{"name": "tree", "polygon": [[0, 0], [1.5, 0], [1, 1]]}]})
    assert "masks.0" in msg and "outside 0..1" in msg
    msg = _error(LabelFilter, {"min_score": True})
    assert "min_score: expected a number" in msg
    msg = _error(TrackingSettings, {"min_hits": 5, "max_misses": 5})
    assert "min_hits (5) must be below max_misses (5)" in msg
    assert "min_size" in _error(RegionSettings, {"min_size": 8})
