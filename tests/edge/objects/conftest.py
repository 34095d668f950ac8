"""Shared parts of the object-stage tests: the real detector, real clips decoded by
OpenCV, and the motion -> regions -> detector -> tracker loop the edge will run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_component.analysis.motion import MotionAnalyzer
from edge_component.config import MotionSettings, Polygon
from edge_component.objects.detector import ObjectDetector
from edge_component.objects.regions import FrameDetection, boxes_from_xywh, detect_in_regions, regions_for
from edge_component.objects.tracking import ObjectTracker, TrackUpdate

REPO = Path(__file__).resolve().parents[3]
CLIPS = REPO / "examples" / "clips"
ROOM = CLIPS / "one-by-one-person-detection.mp4"
WHOLE = Polygon(name="all", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])


@pytest.fixture(scope="session")
def detector() -> ObjectDetector:
    return ObjectDetector()


def frames_at(clip: Path, analyses_per_s: float = 5.0, until_s: float | None = None):
    """(time_s, BGR frame) of every frame the edge would analyse at ``analyses_per_s``."""
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    assert fps > 0, clip
    step = max(1, round(fps / analyses_per_s))
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok or (until_s is not None and i / fps > until_s):
            break
        if i % step == 0:
            yield i / fps, frame
        i += 1
    cap.release()


@dataclass
class Step:
    time_s: float
    frame_shape: tuple[int, int]
    motion_boxes: list
    regions: list
    calls: int
    detections: list[FrameDetection]
    update: TrackUpdate


def run_objects(
    clip: Path,
    detector: ObjectDetector,
    tracker: ObjectTracker | None = None,
    until_s: float | None = None,
    keep_frame_at: float | None = None,
):
    """Replay ``clip`` through motion (the repo's MotionAnalyzer, whole-frame zone),
    regions, the detector and the tracker; the steps, and the frame nearest
    ``keep_frame_at`` seconds."""
    motion = MotionAnalyzer(MotionSettings(), [WHOLE])
    tracker = tracker or ObjectTracker()
    steps, kept = [], None
    for t, frame in frames_at(clip, until_s=until_s):
        stats = motion.analyse(frame)[0]
        boxes = [b for b in boxes_from_xywh(stats.boxes) if (b[2] - b[0]) * (b[3] - b[1]) >= 64]
        regions = regions_for(boxes, frame.shape[:2], object_boxes=tracker.boxes())
        before = detector.calls
        found = detect_in_regions(detector, frame, regions)
        steps.append(Step(t, frame.shape[:2], boxes, regions, detector.calls - before, found, tracker.update(found, t)))
        if keep_frame_at is not None and abs(t - keep_frame_at) < 0.11:
            kept = frame
    return steps, kept


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def grab(clip: Path, time_s: float) -> np.ndarray:
    """The decoded frame nearest ``time_s`` (decoding from the start, as replay does)."""
    for t, frame in frames_at(clip, analyses_per_s=1000, until_s=time_s + 0.2):
        if t >= time_s - 1e-6:
            return frame
    raise AssertionError(f"{clip} has no frame at {time_s} s")


# The helpers above as fixtures (session-scoped, so module-scoped fixtures can use
# them): test modules take them as parameters and never import this conftest.
@pytest.fixture(name="run_objects", scope="session")
def run_objects_fixture():
    """``run_objects(clip, detector, tracker=None, until_s=None, keep_frame_at=None)``."""
    return run_objects


@pytest.fixture(name="grab", scope="session")
def grab_fixture():
    """``grab(clip, time_s)``: the decoded frame nearest ``time_s``."""
    return grab


@pytest.fixture(name="iou", scope="session")
def iou_fixture():
    """``iou(a, b)``: intersection over union of two (x0, y0, x1, y1) boxes."""
    return iou
