"""Zones and masks in pixels: the normalised polygons of the configuration (0..1 of the
frame, origin top-left) drawn onto a frame of a given size. Used by configuration
checks (a zone entirely under masks) and by motion analysis."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import cv2
import numpy as np


class HasPolygon(Protocol):
    @property
    def polygon(self) -> Sequence[tuple[float, float]]: ...


def polygon_mask(polygons: Iterable[HasPolygon], width: int, height: int) -> np.ndarray:
    """uint8 mask (height x width), 1 inside any of the normalised ``polygons``."""
    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        pts = np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in poly.polygon], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask
