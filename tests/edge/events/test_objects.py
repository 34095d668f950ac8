"""From tracks to events (edge_component/events/objects.py), and how an object's
snapshot is drawn (edge_component/events/snapshots.py)."""

from __future__ import annotations

import numpy as np

from edge_component.config import DecisionSettings, Zone
from edge_component.events.objects import ObjectEvents
from edge_component.events.snapshots import annotate, caption_for
from edge_component.objects.tracking import Track, TrackUpdate

SHAPE = (200, 400)  # frame (height, width) px
LEFT = Zone(name="left", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])
RIGHT = Zone(name="right", polygon=[(0.5, 0), (1, 0), (1, 1), (0.5, 1)], objects=["person", "dog"])


def track(tid=1, label="person", box=(50.0, 20.0, 100.0, 180.0), score=0.8, first=1.0):
    return Track(tid, label, box, score, score, score >= 0.7, first, first, 3)


def events(*zones, **settings):
    return ObjectEvents(list(zones), DecisionSettings(**settings), lambda z, tid, t: f"{z:02d}{tid:06d}".ljust(32, "0"))


def kinds(out):
    return [(o.zone_index, o.transition.kind) for o in out]


def test_an_event_starts_when_a_watched_object_stands_in_the_zone_and_ends_when_its_track_does():
    ev = events(LEFT, RIGHT, update_every_s=5.0)
    t = track()  # bottom centre (75, 180): in the left zone
    assert kinds(ev.update(TrackUpdate([t], [t], []), 2.0, SHAPE)) == [(0, "start")]
    assert ev.update(TrackUpdate([t], [], []), 3.0, SHAPE) == []  # one event however long it stays
    assert kinds(ev.update(TrackUpdate([t], [], []), 7.0, SHAPE)) == [(0, "update")]
    (end,) = ev.update(TrackUpdate([], [], [t]), 9.0, SHAPE)
    assert end.transition.kind == "end" and end.transition.event.ended_s == 9.0
    assert end.transition.event.started_s == 1.0 and end.track.label == "person"


def test_the_bottom_centre_decides_the_zone_not_an_overhanging_box():
    ev = events(LEFT, RIGHT)
    # Mostly over the left zone, feet in the right one.
    t = track(box=(150.0, 20.0, 260.0, 180.0))
    assert kinds(ev.update(TrackUpdate([t], [t], []), 2.0, SHAPE)) == [(1, "start")]


def test_no_event_for_an_unwatched_label_a_low_median_a_masked_object_or_while_disarmed():
    masked = LEFT.model_copy(
        update={
            "masks": LEFT.model_validate(
                {
                    "name": "l",
                    "polygon": LEFT.polygon,
                    "masks": [{"name": "door", "polygon": [(0, 0.8), (0.5, 0.8), (0.5, 1), (0, 1)]}],
                }
            ).masks
        }
    )
    for zone, t, armed in [
        (LEFT, track(label="dog"), True),  # left watches person only
        (LEFT, track(score=0.6), True),  # below the default threshold 0.7
        (masked, track(), True),  # feet in the object mask
        (LEFT, track(), False),
    ]:
        ev = events(zone)
        assert ev.update(TrackUpdate([t], [t], []), 2.0, SHAPE, armed=armed) == []
    strict = LEFT.model_validate({"name": "l", "polygon": LEFT.polygon, "filters": {"person": {"threshold": 0.9}}})
    assert events(strict).update(TrackUpdate([track()], [], []), 2.0, SHAPE) == []


def test_close_ends_every_open_event():
    ev = events(LEFT, RIGHT)
    a, b = track(1), track(2, box=(250.0, 20.0, 300.0, 180.0))
    ev.update(TrackUpdate([a, b], [a, b], []), 2.0, SHAPE)
    assert ev.open_events == 2
    assert sorted(kinds(ev.close([a, b], 5.0))) == [(0, "end"), (1, "end")]
    assert ev.open_events == 0


def test_an_object_snapshot_shows_its_box_label_and_score_and_the_caption_fits_320_px():
    image = np.full((180, 320, 3), 90, np.uint8)
    caption = caption_for("front-door-camera", "driveway", "person", 0.83, 1234.5)
    out = annotate(image, [LEFT], [], (), caption, objects=[("person", 0.83, (100.0, 40.0, 180.0, 170.0))])
    # The box's yellow edge and a filled tag above it.
    yellow = (out == (0, 220, 255)).all(axis=2)
    assert yellow[100, 100] and yellow[40:150, 100].all()  # left edge, above the caption bar
    assert yellow[20:40, 100:160].mean() > 0.5  # the "person 0.83" tag
    # The caption's white text stays inside the frame: nothing drawn in the last 4 columns.
    strip = out[-24:, :]
    cols = np.where((strip > 200).all(axis=2).any(axis=0))[0]
    assert cols.size and cols.max() < 316
