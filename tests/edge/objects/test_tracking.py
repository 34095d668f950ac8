"""Tracks with norfair: real footage for one track per person, synthetic boxes for the
hit/miss/median rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_component.objects.regions import FrameDetection
from edge_component.objects.settings import LabelFilter, TrackingSettings
from edge_component.objects.tracking import ObjectTracker

REPO = Path(__file__).resolve().parents[3]
CLIPS = REPO / "examples" / "clips"
ROOM = CLIPS / "one-by-one-person-detection.mp4"


def _person_tracks(steps, start_s, end_s):
    return {t.id for s in steps if start_s <= s.time_s <= end_s for t in s.update.active if t.label == "person"}


@pytest.fixture(scope="module")
def second_person(detector, run_objects):
    # Ground truth: the second person is in view 23-45 s and stands at the table, barely
    # moving, for most of it (examples/labels/one-by-one-person-detection.json).
    return run_objects(ROOM, detector, until_s=49.0)[0]


def test_a_person_standing_still_keeps_one_track_id_across_consecutive_frames(second_person):
    during = [s for s in second_person if 24.0 <= s.time_s <= 44.0]
    assert len(during) == 101  # every analysed frame at 5 per second
    ids = [[t.id for t in s.update.active if t.label == "person"] for s in during]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 1
    track = next(t for t in during[-1].update.active if t.label == "person")
    assert track.confirmed and track.score >= 0.7  # Frigate's default threshold on the median


def test_the_track_ends_soon_after_the_person_leaves(second_person):
    ended = [(s.time_s, t) for s in second_person if s.time_s > 44.0 for t in s.update.ended if t.label == "person"]
    assert len(ended) == 1
    time_s, track = ended[0]
    # Leaves at 45 s; 10 analysed frames without a detection (2 s) end the track.
    assert 45.0 <= time_s <= 47.5 and track.last_seen_s <= 45.5


@pytest.mark.slow
def test_a_person_who_stood_for_a_minute_ends_with_their_track_though_the_background_keeps_a_ghost(
    detector, run_objects
):
    # examples/labels/objects/standing-person.json: in view 6-72 s (standing 9-69 s) and 75-97 s.
    steps = run_objects(CLIPS / "standing-person.mp4", detector)[0]
    confirmed = {}
    for s in steps:
        for t in s.update.active:
            if t.label == "person" and t.confirmed:
                confirmed.setdefault(t.id, s.time_s)
    assert len(confirmed) == 2  # one track per person
    first, second = sorted(confirmed, key=confirmed.get)
    assert 6.0 <= confirmed[first] <= 7.5 and 75.0 <= confirmed[second] <= 76.5
    end = next(s.time_s for s in steps for t in s.update.ended if t.id == first)
    assert 72.0 <= end <= 77.0  # within 5 s of leaving
    # Between the two people the first one's ghost is still foreground (motion boxes at
    # the table), and no person track is open: the ghost does not hold the event.
    gap = [s for s in steps if end < s.time_s < 74.6]
    assert gap and all(s.motion_boxes for s in gap)
    assert not any(t.label == "person" for s in gap for t in s.update.active)


@pytest.mark.parametrize("clip", ["road-topdown.avi", "car-detection.mp4"])
def test_a_car_seen_from_above_is_never_a_person(detector, clip, run_objects):
    steps = run_objects(CLIPS / clip, detector)[0]
    labels = json.loads(
        (
            REPO
            / "examples"
            / "labels"
            / ("test" if Path(clip).stem == "car-detection" else "objects")
            / f"{Path(clip).stem}.json"
        ).read_text()
    )
    with_car = [s for s in steps if any(iv["start_s"] <= s.time_s <= iv["end_s"] for iv in labels["abnormal"])]
    assert sum(s.calls for s in with_car) >= len(with_car) // 2  # the detector did look at the cars
    assert any(d.score >= 0.5 for s in with_car for d in s.detections)  # and saw something there
    assert not [d for s in steps for d in s.detections if d.label == "person" and d.score >= LabelFilter().min_score]
    assert not [t for s in steps for t in s.update.active if t.label == "person" and t.confirmed]


def _det(score, box=(100.0, 100.0, 150.0, 250.0), label="person"):
    return FrameDetection(label, score, box, (0, 0, 300, 300), False)


def test_a_track_exists_after_min_hits_and_ends_after_max_misses():
    tracker = ObjectTracker(TrackingSettings(min_hits=3, max_misses=5))
    started = [bool(tracker.update([_det(0.8)], i * 0.2).started) for i in range(6)]
    assert started == [False, False, True, False, False, False]
    ended_at = [bool(tracker.update([], 1.2 + i * 0.2).ended) for i in range(6)]
    assert ended_at == [False, False, False, False, True, False]


def test_the_median_decides_not_one_frame():
    tracker = ObjectTracker(filters={"person": LabelFilter(min_score=0.5, threshold=0.7)})
    for i, score in enumerate([0.55, 0.6, 0.9, 0.58, 0.6, 0.95, 0.6]):
        update = tracker.update([_det(score)], i * 0.2)
    (track,) = update.active
    assert not track.confirmed and track.score == pytest.approx(0.6) and track.top_score < 0.7
    for i in range(7, 14):
        update = tracker.update([_det(0.8)], i * 0.2)
    assert update.active[0].confirmed and update.active[0].id == track.id


def test_detections_below_min_score_are_ignored_and_a_distant_box_is_another_track():
    tracker = ObjectTracker(filters={"person": LabelFilter(min_score=0.6, threshold=0.7)})
    for i in range(4):
        update = tracker.update([_det(0.55)], i * 0.2)
    assert update.active == []
    for i in range(4, 8):
        update = tracker.update([_det(0.8), _det(0.8, (400.0, 50.0, 450.0, 200.0))], i * 0.2)
    assert len({t.id for t in update.active}) == 2


def test_building_a_tracker_drops_only_norfairs_scalar_distance_advice(caplog):
    """norfair 2.4's Tracker logs "You are using a scalar distance function..." on each
    construction (norfair/tracker.py); the tracker drops that line and no other."""
    import logging

    caplog.set_level(logging.WARNING, logger="norfair")
    ObjectTracker(TrackingSettings(min_hits=3, max_misses=5))
    logging.getLogger("norfair.tracker").warning("another norfair warning")
    said = [r.getMessage() for r in caplog.records if r.name.startswith("norfair")]
    assert said == ["another norfair warning"]
