"""Tracks: one per object across analysed frames, decided on the median of its scores.

:class:`ObjectTracker` wraps norfair's ``Tracker`` (tryolabs/norfair, through its
maintained fork ``norfair-enough``, which supports numpy 2; Frigate tracks with norfair
too, ``frigate/track/norfair_tracker.py``). Each box is two points (top-left,
bottom-right) filtered by norfair's Kalman filter; a detection matches a track when
the bottom centre moved little relative to the track's size and the size changed little
(the distance Frigate uses: a standing person whose box flickers stays one track, a
second person entering elsewhere does not join it). Norfair matches only equal labels.

A track exists after ``min_hits`` consecutive detections and ends after ``max_misses``
analysed frames without one, however long the object stood still: the event stage ends
an event when its track ends, not when the background model forgets the object. Scores
flicker, so a track is decided on the median of its last ``score_history`` frames (0 for
a frame it was not detected in), as Frigate does: ``confirmed`` once that median reaches
the label's ``threshold``, and it stays confirmed.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from norfair import Detection as NorfairDetection
from norfair import OptimizedKalmanFilterFactory, Tracker

from .regions import FloatBox, FrameDetection
from .settings import LabelFilter, TrackingSettings

# norfair's Tracker warns on every construction that a callable distance is "scalar";
# its vectorized distances are only its built-in names (iou, euclidean, ...), which are
# not the bottom-centre distance below, so that one advice is dropped and nothing else.
_SCALAR_ADVICE = "You are using a scalar distance function"


def _not_scalar_advice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_SCALAR_ADVICE)


logging.getLogger("norfair.tracker").addFilter(_not_scalar_advice)


def box_distance(detection: NorfairDetection, tracked) -> float:
    """Distance between a detection and a track's estimate, both 2x2 arrays of box
    corners (pixels): the bottom centre's displacement in units of the estimate's width
    and height, and how much larger one box is than the other (ratio - 1) in width and
    height, combined as a Euclidean norm. Infinite for a degenerate box."""
    det, est = np.asarray(detection.points, float), np.asarray(tracked.estimate, float)
    dw, dh = det[1] - det[0]
    ew, eh = est[1] - est[0]
    if not np.all(np.isfinite([dw, dh, ew, eh])) or min(dw, dh, ew, eh) <= 0:
        return float("inf")
    dx = (det[:, 0].mean() - est[:, 0].mean()) / ew
    dy = (det[1, 1] - est[1, 1]) / eh
    return float(np.linalg.norm([dx, dy, max(dw, ew) / min(dw, ew) - 1.0, max(dh, eh) / min(dh, eh) - 1.0]))


@dataclass
class Track:
    """One tracked object. ``box`` is its last detected box (x0, y0, x1, y1, frame px),
    ``score`` the median of its recent scores (0..1), ``top_score`` the highest that
    median reached; times are the analysed frames' times in seconds."""

    id: int
    label: str
    box: FloatBox
    score: float
    top_score: float
    confirmed: bool
    first_seen_s: float
    last_seen_s: float
    hits: int
    history: list[float] = field(default_factory=list, repr=False)


def _snapshot(track: Track) -> Track:
    return replace(track, history=list(track.history))


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """What one analysed frame changed: ``active`` tracks (after ``min_hits``, before
    they end), ``started`` the ones that became active in this frame, ``ended`` the ones
    the tracker lost in this frame. Each is a snapshot as of this frame."""

    active: list[Track]
    started: list[Track]
    ended: list[Track]


class ObjectTracker:
    """Tracks of one camera.

    ``settings``: hit and miss counts (analysed frames), match distance, score history.
    ``filters``: per-label :class:`LabelFilter`; a label without one gets the defaults
    (``min_score`` 0.5, ``threshold`` 0.7). Detections below their label's ``min_score``
    are ignored before matching. Call :meth:`update` once per analysed frame, with that
    frame's detections (an empty list when the detector did not run or found nothing:
    the tracks still age).
    """

    def __init__(self, settings: TrackingSettings | None = None, filters: Mapping[str, LabelFilter] | None = None):
        self.settings = settings or TrackingSettings()
        self.filters = dict(filters or {})
        self._tracker = self._new_tracker()
        self._tracks: dict[int, Track] = {}

    def _new_tracker(self) -> Tracker:
        s = self.settings
        # norfair: +1 per matched frame, -1 per missed one; initialised when the counter
        # exceeds initialization_delay, dead when it falls below 0 from hit_counter_max.
        return Tracker(
            distance_function=box_distance,
            distance_threshold=s.distance_threshold,
            hit_counter_max=s.max_misses - 1,  # > initialization_delay: settings keep min_hits < max_misses
            initialization_delay=s.min_hits - 1,
            past_detections_length=max(4, s.min_hits),
            filter_factory=OptimizedKalmanFilterFactory(R=3.4),  # Frigate's: trusts boxes over prediction
        )

    def filter_for(self, label: str) -> LabelFilter:
        return self.filters.get(label, LabelFilter())

    def update(self, detections: Sequence[FrameDetection], time_s: float, period: int = 1) -> TrackUpdate:
        """Match ``detections`` (frame pixels) at ``time_s`` (seconds) to the tracks.
        ``period``: analysed frames since the last update (norfair's ``period``: frames
        skipped between detector runs count as one miss, not one each)."""
        kept = [d for d in detections if d.score >= self.filter_for(d.label).min_score]
        nd = [
            NorfairDetection(
                points=np.array([[d.box[0], d.box[1]], [d.box[2], d.box[3]]], float),
                scores=np.array([d.score, d.score]),
                label=d.label,
                data=d,
            )
            for d in kept
        ]
        seen = {id(d) for d in kept}  # norfair stores shallow copies; .data stays the same object
        alive = self._tracker.update(detections=nd, period=period)
        started = []
        current: dict[int, Track] = {}
        for obj in alive:
            det: FrameDetection = obj.last_detection.data
            matched = id(det) in seen
            track = self._tracks.get(obj.id)
            if track is None:
                # Initialised now: the detections that built it open its score history.
                track = Track(obj.id, det.label, det.box, 0.0, 0.0, False, time_s, time_s, 0)
                track.history = [p.data.score for p in obj.past_detections[:-1]]
                track.hits = len(track.history)
                started.append(track)
            track.history.append(det.score if matched else 0.0)
            del track.history[: -self.settings.score_history]
            if matched:
                track.box, track.last_seen_s = det.box, time_s
                track.hits += 1
            track.score = statistics.median(track.history)
            track.top_score = max(track.top_score, track.score)
            track.confirmed = track.confirmed or track.score >= self.filter_for(track.label).threshold
            current[obj.id] = track
        ended = [t for tid, t in self._tracks.items() if tid not in current]
        self._tracks = current
        # Snapshots: the tracks go on changing in later frames, what this frame said does not.
        snap = {tid: _snapshot(t) for tid, t in current.items()}
        return TrackUpdate(list(snap.values()), [snap[t.id] for t in started], [_snapshot(t) for t in ended])

    def hold(self) -> TrackUpdate:
        """The tracks as they are, for a frame the detector skipped on purpose: nothing
        ages, starts or ends (see ``TrackingSettings.redetect_every``)."""
        return TrackUpdate([_snapshot(t) for t in self._tracks.values()], [], [])

    def resting(self) -> list[Track]:
        """Confirmed tracks detected in the last update: candidates to skip re-detection."""
        return [t for t in self._tracks.values() if t.confirmed and t.history and t.history[-1] > 0.0]

    def boxes(self) -> list[FloatBox]:
        """Last detected boxes (frame px) of every object the tracker holds, tracks and
        objects not yet confirmed by ``min_hits`` alike: where the next frame's detector
        should look first (:func:`regions.regions_for`'s ``object_boxes``)."""
        return [o.last_detection.data.box for o in self._tracker.tracked_objects if o.hit_counter_is_positive]

    def end_all(self) -> list[Track]:
        """End every track (the stream ended or restarted); returns them."""
        ended = [_snapshot(t) for t in self._tracks.values()]
        self._tracks = {}
        self._tracker = self._new_tracker()
        return ended
