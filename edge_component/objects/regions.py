"""Regions: square crops around motion where the detector looks, and the way back.

Motion says *where* to look; the detector (300x300 input) finds small objects only when
it sees them large, so it runs on square regions around the motion boxes rather than on
the whole frame resized. A region is the motion box's longer side times ``multiplier``,
at least ``min_size`` pixels, centred on the box and shifted to stay inside the frame;
regions whose boxes lie close together are merged so one call covers them. Detections
come back normalised to their region, are mapped to frame pixels, and duplicates from
overlapping regions are suppressed per label (non-maximum suppression), a detection cut
by a region's inner edge ranking below a whole one.

Boxes everywhere here are ``(x0, y0, x1, y1)`` in frame pixels (origin top-left,
x1/y1 exclusive for integer regions). Reference read, not copied: Frigate's
``calculate_region`` (``frigate/util/image.py``), ``get_cluster_candidates`` and
``reduce_detections`` (``frigate/util/object.py``), and the region loop of
``frigate/video/detect.py`` (github.com/blakeblackshear/frigate).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .detector import Detection, ObjectDetector

Box = tuple[int, int, int, int]
FloatBox = tuple[float, float, float, float]

# A detection within this many pixels of a region edge that is not a frame edge is
# "clipped": part of the object may lie outside the crop (Frigate uses 5 px).
EDGE_PX = 5
# A clipped detection ranks in NMS as if it scored at most this (Frigate: 0.6), so the
# region that saw the whole object wins.
CLIPPED_RANK = 0.6


@dataclass(frozen=True, slots=True)
class FrameDetection:
    """One detection in frame coordinates: ``box`` (x0, y0, x1, y1) in frame pixels
    (floats, inside the frame), ``region`` the crop it came from, ``clipped`` True when
    the box touches an inner edge of its region."""

    label: str
    score: float
    box: FloatBox
    region: Box
    clipped: bool


def boxes_from_mask(mask: np.ndarray, min_area_px: int = 1, scale: tuple[float, float] = (1.0, 1.0)) -> list[Box]:
    """Bounding boxes of the outer contours of a binary foreground mask.

    ``mask``: H x W, nonzero = foreground (uint8 or bool), e.g. the motion stage's
    foreground within the zones. Contours smaller than ``min_area_px`` (mask pixels) are
    noise. ``scale`` = (frame width / mask width, frame height / mask height) maps boxes
    from the analysis resolution to frame pixels.
    """
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    sx, sy = scale
    out = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if max(cv2.contourArea(c), 1.0) < min_area_px:
            continue
        out.append((int(x * sx), int(y * sy), int(np.ceil((x + w) * sx)), int(np.ceil((y + h) * sy))))
    return out


def boxes_from_xywh(boxes: Iterable[tuple[int, int, int, int]]) -> list[Box]:
    """(x, y, w, h) boxes, as :class:`edge_component.analysis.motion.FrameStats` carries them,
    to (x0, y0, x1, y1)."""
    return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in boxes]


def region_around(
    box: Sequence[float], frame_shape: tuple[int, int], min_size: int = 160, multiplier: float = 1.5
) -> Box:
    """A square region around ``box`` (frame pixels) in a frame of ``frame_shape``
    (height, width): side = longer side of the box times ``multiplier``, at least
    ``min_size`` px, a multiple of 4, and no larger than the frame's longer side; centred
    on the box, then shifted to lie inside the frame. Where the side exceeds the frame's
    shorter side the region overhangs it (:func:`crop` pads with black)."""
    h, w = frame_shape[:2]
    x0, y0, x1, y1 = box
    side = int(max(x1 - x0, y1 - y0) * multiplier) // 4 * 4
    side = min(max(side, min_size), max(w, h))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    left = int(min(max(cx - side / 2.0, 0), max(0, w - side)))
    top = int(min(max(cy - side / 2.0, 0), max(0, h - side)))
    return (left, top, left + side, top + side)


def _union(boxes: Sequence[Sequence[float]]) -> FloatBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(box: Sequence[float], region: Sequence[float]) -> bool:
    return box[0] >= region[0] and box[1] >= region[1] and box[2] <= region[2] and box[3] <= region[3]


def regions_for(
    boxes: Sequence[Sequence[float]],
    frame_shape: tuple[int, int],
    min_size: int = 160,
    multiplier: float = 1.5,
    max_growth: float = 1.25,
    object_boxes: Sequence[Sequence[float]] = (),
) -> list[Box]:
    """Regions covering every motion box, merged where that costs little resolution.

    ``boxes``: motion boxes (frame pixels); ``object_boxes``: boxes of objects already
    being tracked (their last detected boxes). Object boxes get regions first, largest
    first, then motion boxes; a box lying inside a region already made adds none, so
    the parts of one person that motion splits (an occluding table leaves legs and
    torso as two blobs) are looked at once, whole, around the person's tracked box.
    Then two clusters merge while their regions overlap and the region of their union
    is no wider than ``max_growth`` times the larger of the two (or no wider than
    ``min_size``), so nearby blobs share one call while distant objects keep crops that
    show them large. Returns one square region per cluster (see :func:`region_around`),
    largest first; an empty list for no boxes.
    """

    def by_area(bs: Sequence[Sequence[float]]) -> list[Sequence[float]]:
        return sorted((b for b in bs if b[2] > b[0] and b[3] > b[1]), key=lambda b: -_area(b))

    clusters: list[list[Sequence[float]]] = []
    made: list[Box] = []
    for b in by_area(object_boxes) + by_area(boxes):
        if not any(_inside(b, r) for r in made):
            clusters.append([b])
            made.append(region_around(b, frame_shape, min_size, multiplier))
    merged = True
    while merged and len(clusters) > 1:
        merged = False
        regions = [region_around(_union(c), frame_shape, min_size, multiplier) for c in clusters]
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                if not _overlap(regions[i], regions[j]):
                    continue
                joint = region_around(_union(clusters[i] + clusters[j]), frame_shape, min_size, multiplier)
                side = joint[2] - joint[0]
                if side <= min_size or side <= max_growth * max(
                    regions[i][2] - regions[i][0], regions[j][2] - regions[j][0]
                ):
                    clusters[i] = clusters[i] + clusters.pop(j)
                    merged = True
                    break
            if merged:
                break
    out = [region_around(_union(c), frame_shape, min_size, multiplier) for c in clusters]
    return sorted(set(out), key=lambda r: -(r[2] - r[0]))


def crop(frame: np.ndarray, region: Box) -> np.ndarray:
    """The pixels of ``region`` (x0, y0, x1, y1) from ``frame`` (H x W or H x W x 3),
    padded with black where the region overhangs the frame, so the crop is square and
    the detector's normalised boxes map back linearly."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = region
    inside = frame[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    if inside.shape[0] == y1 - y0 and inside.shape[1] == x1 - x0:
        return inside
    out = np.zeros((y1 - y0, x1 - x0) + frame.shape[2:], frame.dtype)
    out[max(0, -y0) : max(0, -y0) + inside.shape[0], max(0, -x0) : max(0, -x0) + inside.shape[1]] = inside
    return out


def to_frame(detections: Iterable[Detection], region: Box, frame_shape: tuple[int, int]) -> list[FrameDetection]:
    """Map detections normalised to ``region`` back to frame pixels, clamped to the
    frame (height, width); each is marked ``clipped`` if it touches an inner edge of the
    region (within :data:`EDGE_PX`)."""
    h, w = frame_shape[:2]
    x0, y0, x1, y1 = region
    sw, sh = x1 - x0, y1 - y0
    out = []
    for d in detections:
        bx0 = min(max(x0 + d.box[0] * sw, 0.0), float(w))
        by0 = min(max(y0 + d.box[1] * sh, 0.0), float(h))
        bx1 = min(max(x0 + d.box[2] * sw, 0.0), float(w))
        by1 = min(max(y0 + d.box[3] * sh, 0.0), float(h))
        if bx1 <= bx0 or by1 <= by0:
            continue  # entirely in the padding beyond the frame
        clipped = (
            (x0 > EDGE_PX and bx0 - x0 <= EDGE_PX)
            or (y0 > EDGE_PX and by0 - y0 <= EDGE_PX)
            or (w - x1 > EDGE_PX and x1 - bx1 <= EDGE_PX)
            or (h - y1 > EDGE_PX and y1 - by1 <= EDGE_PX)
        )
        out.append(FrameDetection(d.label, d.score, (bx0, by0, bx1, by1), region, clipped))
    return out


def suppress_duplicates(
    detections: Sequence[FrameDetection], iou_threshold: float = 0.4, contained: float = 0.9
) -> list[FrameDetection]:
    """One detection per object when regions overlap: per label, non-maximum
    suppression at ``iou_threshold`` (cv2.dnn.NMSBoxes; clipped detections rank as at
    most :data:`CLIPPED_RANK`), then a box lying at least ``contained`` (0..1 of its
    area) inside a larger kept box of the same label is dropped (a part of the same
    object). Best score first."""
    kept: list[FrameDetection] = []
    for label in sorted({d.label for d in detections}):
        group = [d for d in detections if d.label == label]
        rects = [[d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]] for d in group]
        ranks = [min(d.score, CLIPPED_RANK) if d.clipped else d.score for d in group]
        idx = np.array(cv2.dnn.NMSBoxes(rects, ranks, 0.0, iou_threshold)).reshape(-1)
        survivors = sorted((group[i] for i in idx), key=lambda d: _area(d.box), reverse=True)
        for d in survivors:
            if not any(_intersection(d.box, k.box) >= contained * _area(d.box) for k in kept if k.label == label):
                kept.append(d)
    return sorted(kept, key=lambda d: -d.score)


def _area(b: Sequence[float]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def detect_in_regions(
    detector: ObjectDetector, frame: np.ndarray, regions: Sequence[Box], min_score: float = 0.3
) -> list[FrameDetection]:
    """Run ``detector`` once per region of ``frame`` (H x W x 3 BGR or H x W grey) and
    return the de-duplicated detections (score >= ``min_score``) in frame pixels. No
    regions: no detector call and no detections."""
    found: list[FrameDetection] = []
    for region in regions:
        found += to_frame(detector.detect(crop(frame, region), min_score), region, frame.shape[:2])
    return suppress_duplicates(found)
