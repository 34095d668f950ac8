"""Regions around motion on real footage, and their geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_component.objects.detector import Detection
from edge_component.objects.regions import (
    FrameDetection,
    boxes_from_mask,
    crop,
    region_around,
    regions_for,
    suppress_duplicates,
    to_frame,
)

ROOM = Path(__file__).resolve().parents[3] / "examples" / "clips" / "one-by-one-person-detection.mp4"


@pytest.fixture(scope="module")
def room_to_31s(detector, run_objects):
    return run_objects(ROOM, detector, until_s=31.0, keep_frame_at=30.0)


def test_a_person_is_found_in_a_crop_around_the_motion_and_mapped_back_into_the_frame(detector, room_to_31s, iou):
    steps, frame = room_to_31s
    step = next(s for s in steps if abs(s.time_s - 30.0) < 0.11)
    h, w = step.frame_shape
    assert step.motion_boxes and 1 <= len(step.regions) <= 2
    region = step.regions[0]
    assert region[2] - region[0] == region[3] - region[1] < w  # square, smaller than the frame
    people = [d for d in step.detections if d.label == "person"]
    assert len(people) == 1 and people[0].score >= 0.7
    box = people[0].box
    assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
    # The crop's box, mapped back, is where the whole frame puts the same person.
    whole = [d for d in detector.detect(frame, 0.5) if d.label == "person"][0]
    whole_px = (whole.box[0] * w, whole.box[1] * h, whole.box[2] * w, whole.box[3] * h)
    assert iou(box, whole_px) > 0.7


def test_an_empty_room_costs_no_detector_call(room_to_31s):
    steps, _ = room_to_31s
    empty = [s for s in steps if 1.0 <= s.time_s <= 5.0]  # before the first person enters at 6 s
    assert len(empty) == 21 and sum(s.calls for s in empty) == 0


def test_regions_are_square_at_least_the_minimum_and_inside_the_frame():
    shape = (432, 768)
    r = region_around((10, 400, 30, 430), shape, min_size=160)  # small box in the corner
    assert r == (0, 272, 160, 432)
    r = region_around((300, 0, 500, 432), shape, min_size=160, multiplier=1.5)  # taller than the frame
    assert r[2] - r[0] == r[3] - r[1] == 648 and r[1] == 0 and 0 <= r[0] and r[2] <= 768
    assert crop(np.ones((432, 768, 3), np.uint8), r).shape == (648, 648, 3)  # padded below the frame


def test_nearby_motion_boxes_share_a_region_and_distant_ones_do_not():
    shape = (432, 768)
    assert len(regions_for([(100, 100, 140, 180), (150, 110, 180, 190)], shape)) == 1
    assert len(regions_for([(20, 20, 60, 100), (650, 300, 700, 400)], shape)) == 2
    # A box inside a tracked object's region adds no region of its own.
    assert regions_for([(400, 260, 480, 380)], shape, object_boxes=[(380, 10, 520, 340)]) == [
        region_around((380, 10, 520, 340), shape)
    ]
    assert regions_for([], shape) == []


def test_mask_contours_become_boxes_in_frame_pixels():
    mask = np.zeros((180, 320), np.uint8)
    mask[50:90, 100:120] = 1
    mask[0:2, 0:2] = 1  # noise
    assert boxes_from_mask(mask, min_area_px=20, scale=(2.4, 2.4)) == [(240, 120, 288, 216)]


def test_detections_map_back_linearly_and_duplicates_from_overlapping_regions_collapse():
    shape = (432, 768)
    a, b = (200, 0, 500, 300), (300, 100, 460, 260)
    person_a = to_frame([Detection("person", 0.8, (0.4, 0.2, 0.8, 0.9))], a, shape)[0]
    assert person_a.box == pytest.approx((320, 60, 440, 270))
    assert not person_a.clipped
    # The same person seen cut by region b's edge.
    person_b = to_frame([Detection("person", 0.85, (0.125, -0.25, 0.875, 0.995))], b, shape)[0]
    assert person_b.clipped
    kept = suppress_duplicates([person_a, person_b])
    assert kept == [person_a]  # the whole view wins over the higher-scored clipped one
    car = FrameDetection("car", 0.6, (320, 60, 440, 270), a, False)
    assert len(suppress_duplicates([person_a, car])) == 2  # per label
