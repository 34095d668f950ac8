"""Where an object is: zone membership and object masks by the box's bottom centre.

An object is in a zone when the bottom centre of its box, where feet or wheels touch the
ground, lies inside the zone's polygon; a box that only overhangs a zone (a head over a
fence line, a tall truck seen in perspective) is not in it. Object masks work the same
way: a detection whose bottom centre lies in a mask is ignored. Frigate decides both
on the same point (``frigate/track/tracked_object.py`` zone check, ``is_object_filtered``
in ``frigate/util/object.py``).

Polygons are sequences of (x, y) points, each 0..1 of the frame's width/height (origin
top-left), the convention of ``edge_component/config.py``'s zones and masks; boxes are
(x0, y0, x1, y1) in frame pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

NormPolygon = Sequence[tuple[float, float]]


def bottom_centre(box: Sequence[float]) -> tuple[float, float]:
    """(x, y) in pixels of the middle of the box's lower edge."""
    return ((box[0] + box[2]) / 2.0, float(box[3]))


class ZoneGeometry:
    """Normalised polygons turned into pixel polygons for one frame size.

    ``polygons``: normalised polygons (at least 3 points each, 0..1); ``frame_shape``:
    (height, width) in pixels. ValueError for a polygon of fewer than 3 points or a point
    outside 0..1.
    """

    def __init__(self, polygons: Iterable[NormPolygon], frame_shape: tuple[int, int]):
        h, w = frame_shape[:2]
        self.frame_shape = (h, w)
        self._contours = []
        for i, poly in enumerate(polygons):
            pts = np.asarray(poly, np.float32)
            if pts.ndim != 2 or pts.shape[0] < 3 or pts.shape[1] != 2:
                raise ValueError(f"polygon {i}: needs at least 3 (x, y) points, got shape {pts.shape}")
            if (pts < 0).any() or (pts > 1).any():
                raise ValueError(f"polygon {i}: points must be fractions of the frame (0..1)")
            # Same pixel mapping as motion.polygon_mask: 0..1 onto 0..(size - 1).
            self._contours.append((pts * np.float32([w - 1, h - 1])).reshape(-1, 1, 2))

    def __len__(self) -> int:
        return len(self._contours)

    def contains(self, index: int, point: tuple[float, float]) -> bool:
        """True if ``point`` (pixels) lies inside or on the edge of polygon ``index``.
        The bottom row/right column of the frame counts as on a whole-frame polygon."""
        h, w = self.frame_shape
        x = min(float(point[0]), w - 1.0)
        y = min(float(point[1]), h - 1.0)
        return cv2.pointPolygonTest(self._contours[index], (x, y), False) >= 0

    def containing(self, box: Sequence[float]) -> list[int]:
        """Indices of the polygons holding the box's bottom centre."""
        p = bottom_centre(box)
        return [i for i in range(len(self._contours)) if self.contains(i, p)]


def in_zone(box: Sequence[float], polygon: NormPolygon, frame_shape: tuple[int, int]) -> bool:
    """True if the bottom centre of ``box`` (pixels) is inside the normalised ``polygon``
    in a frame of ``frame_shape`` (height, width). For many boxes, build a
    :class:`ZoneGeometry` once instead."""
    return ZoneGeometry([polygon], frame_shape).contains(0, bottom_centre(box))


def masked(box: Sequence[float], masks: ZoneGeometry) -> bool:
    """True if the box's bottom centre lies in any of the object ``masks``."""
    return bool(masks.containing(box))
