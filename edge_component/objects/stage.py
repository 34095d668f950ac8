"""The detection stage of one camera: per analysed frame, regions around the motion in
the zones that watch objects, the detector on them, and tracks across frames.

Motion says *where* to look and the trained model *whether* it is worth looking
(``gate_score``); the detector says *what* is there. A frame with no motion in any
object zone and no object being tracked costs no detector call and no colour decode.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_component.config import ObjectDetectionSettings, Zone

from .detector import ObjectDetector
from .regions import boxes_from_xywh, detect_in_regions, regions_for
from .settings import LabelFilter
from .tracking import ObjectTracker, TrackUpdate


def watched_labels(zones: Sequence[Zone]) -> frozenset[str]:
    """Labels some zone of the camera watches (motion-only zones watch none)."""
    return frozenset(label for z in zones if not z.motion_only for label in z.objects)


def tracker_filters(zones: Sequence[Zone]) -> dict[str, LabelFilter]:
    """Per label, the most permissive filter of the zones that watch it: the tracker
    keeps every detection some zone may count; each zone applies its own threshold."""
    out: dict[str, LabelFilter] = {}
    for label in watched_labels(zones):
        filters = [z.filter_for(label) for z in zones if not z.motion_only and label in z.objects]
        out[label] = LabelFilter.model_construct(
            min_score=min(f.min_score for f in filters), threshold=min(f.threshold for f in filters)
        )
    return out


@dataclass
class StageCounters:
    frames: int = 0  # analysed frames seen
    frames_detected: int = 0  # frames the detector ran on
    calls: int = 0  # detector invocations (one per region)
    detect_s: float = 0.0  # wall time in the detector, crops and NMS included


class ObjectStage:
    """Regions, detector and tracker of one camera.

    ``zones``: the camera's zones (motion-only ones are ignored); ``detector``: loaded
    once per camera worker and shared by its replays; ``gate_score``: the trained
    model's window score (0..1) from which motion is worth the detector, unless the
    settings give one. Call :meth:`regions` with a frame's
    motion boxes, then :meth:`update` with the regions and the frame's image (BGR, or grey
    where no colour is available), once per analysed frame in order.
    """

    def __init__(
        self, zones: Sequence[Zone], settings: ObjectDetectionSettings, detector: ObjectDetector, gate_score: float
    ):
        self.zones = list(zones)
        self.settings = settings
        self.gate_score = settings.gate_score if settings.gate_score is not None else gate_score
        self.detector = detector
        self.labels = watched_labels(zones)
        self.tracker = ObjectTracker(settings.tracking, tracker_filters(zones))
        self.counters = StageCounters()
        self.frame_shape: tuple[int, int] = (1, 1)  # (height, width) of the last frame, px
        self._min_score = min((f.min_score for f in tracker_filters(zones).values()), default=1.0)
        self._since = 0  # analysed frames skipped since the tracker's last update
        self._skip = False  # this frame is skipped on purpose (every track at rest)

    def wants(self, zone_index: int, score: float, boxes: Sequence[tuple[int, int, int, int]]) -> bool:
        """Whether a zone's motion this frame is worth the detector: an object zone with
        motion boxes whose window score (trained model, 0..1) reaches ``gate_score``."""
        return not self.zones[zone_index].motion_only and bool(boxes) and score >= self.gate_score

    def regions(
        self, motion_boxes: Sequence[tuple[int, int, int, int]], frame_shape: tuple[int, int]
    ) -> list[tuple[int, int, int, int]]:
        """Square regions (x0, y0, x1, y1, frame px) for motion boxes (x, y, w, h, frame
        px, as FrameStats carries them; smaller than ``min_box_px`` dropped) and the
        boxes of objects being tracked. Empty: nothing to look at this frame."""
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        r = self.settings.regions
        boxes = [b for b in boxes_from_xywh(motion_boxes) if (b[2] - b[0]) * (b[3] - b[1]) >= r.min_box_px]
        tracked = self.tracker.boxes()
        self._skip = self._at_rest(boxes, len(tracked))
        if self._skip or (not boxes and not tracked):
            return []
        return regions_for(boxes, frame_shape, r.min_size, r.multiplier, object_boxes=tracked)

    def _at_rest(self, boxes: Sequence[tuple[int, int, int, int]], held: int) -> bool:
        # Every object the tracker holds is a confirmed track detected last time, all
        # motion lies inside their boxes, and the re-detect interval has not run out:
        # nothing new can be there, so the detector is skipped. Motion elsewhere wakes it.
        resting = self.tracker.resting()
        if not resting or len(resting) != held or self._since + 1 >= self.settings.tracking.redetect_every:
            return False
        return all(any(_within(b, t.box) for t in resting) for b in boxes)

    def update(
        self, image: np.ndarray | None, regions: Sequence[tuple[int, int, int, int]], time_s: float
    ) -> TrackUpdate:
        """Detect in ``regions`` of ``image`` (none: no call) and advance the tracks to
        ``time_s`` with the detections of watched labels."""
        self.counters.frames += 1
        if self._skip and not regions:
            self._skip = False
            self._since += 1
            return self.tracker.hold()
        found = []
        if regions and image is not None:
            t0 = time.perf_counter()
            before = self.detector.calls
            found = [
                d for d in detect_in_regions(self.detector, image, regions, self._min_score) if d.label in self.labels
            ]
            self.counters.calls += self.detector.calls - before
            self.counters.frames_detected += 1
            self.counters.detect_s += time.perf_counter() - t0
        period, self._since = self._since + 1, 0
        return self.tracker.update(found, time_s, period)

    def end_all(self):
        """End every track (the source ended); returns them."""
        self._since, self._skip = 0, False
        return self.tracker.end_all()


def _within(box: Sequence[float], track_box: Sequence[float], margin: float = 0.1) -> bool:
    """Whether ``box`` lies inside ``track_box`` grown by ``margin`` of its size each side."""
    mx, my = margin * (track_box[2] - track_box[0]), margin * (track_box[3] - track_box[1])
    return (
        box[0] >= track_box[0] - mx
        and box[1] >= track_box[1] - my
        and box[2] <= track_box[2] + mx
        and box[3] <= track_box[3] + my
    )
