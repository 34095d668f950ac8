"""Evidence snapshots: the alert frame as a JPEG, annotated with the zones (green),
masks (grey), motion boxes (red) and objects (yellow, with label and score), kept on
the device with bounded disk use."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge_component.config import Polygon
from edge_component.geometry import polygon_mask

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fit(text: str, width: int, scale: float = 0.5) -> float:
    """The largest font scale up to ``scale`` at which ``text`` fits ``width`` px (at least 0.3)."""
    (tw, _), _ = cv2.getTextSize(text, FONT, scale, 1)
    return max(0.3, min(scale, scale * width / max(tw, 1)))


def caption_for(camera: str, zone: str, label: str, score: float, time_s: float) -> str:
    """An object snapshot's caption, short enough for a 320-px frame:
    ``person 0.82 in room (cam) 12.3s``."""
    return f"{label} {score:.2f} in {zone} ({camera}) {time_s:.1f}s"


def annotate(
    image: np.ndarray,
    zones: Sequence[Polygon],
    masks: Sequence[Polygon],
    boxes,
    label: str,
    objects: Sequence[tuple[str, float, tuple[float, float, float, float]]] = (),
) -> np.ndarray:
    """A copy of the BGR ``image`` with zones, masks, motion ``boxes`` (x, y, w, h px),
    ``objects`` as (label, score, (x0, y0, x1, y1) px) and the caption ``label``, shrunk
    to fit the frame's width."""
    out = image.copy()
    h, w = out.shape[:2]

    def pts(poly: Polygon) -> np.ndarray:
        return np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in poly.polygon], np.int32)

    for m in masks:
        cv2.polylines(out, [pts(m)], True, (128, 128, 128), 2)
    for z in zones:
        cv2.polylines(out, [pts(z)], True, (0, 200, 0), 2)
        x0, y0 = pts(z)[0]
        cv2.putText(out, z.name, (int(x0) + 4, int(y0) + 16), FONT, 0.5, (0, 200, 0), 1, cv2.LINE_AA)
    for x, y, bw, bh in boxes:
        cv2.rectangle(out, (x, y), (x + bw, y + bh), (0, 0, 255), 2)
    for name, score, (bx0, by0, bx1, by1) in objects:
        p0, p1 = (int(bx0), int(by0)), (int(bx1) - 1, int(by1) - 1)
        cv2.rectangle(out, p0, p1, (0, 220, 255), 2)
        tag = f"{name} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(tag, FONT, 0.45, 1)
        ty = p0[1] - 4 if p0[1] >= th + 6 else p0[1] + th + 4  # above the box, or inside at the top
        tx = min(p0[0], max(0, w - tw - 2))
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 2, ty + 3), (0, 220, 255), -1)
        cv2.putText(out, tag, (tx + 1, ty), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(out, (0, h - 24), (w, h), (0, 0, 0), -1)
    cv2.putText(out, label, (6, h - 7), FONT, _fit(label, w - 12), (255, 255, 255), 1, cv2.LINE_AA)
    return out


def black_out(image: np.ndarray, privacy_masks: Sequence[Polygon]) -> np.ndarray:
    """A copy of ``image`` with every pixel inside ``privacy_masks`` set to 0 (black);
    ``image`` itself when there are none."""
    if not privacy_masks:
        return image
    h, w = image.shape[:2]
    out = image.copy()
    out[polygon_mask(privacy_masks, w, h).astype(bool)] = 0
    return out


class SnapshotStore:
    """Writes JPEGs into ``directory``, keeping at most ``max_files`` (oldest deleted)."""

    def __init__(self, directory: str | Path, max_files: int = 200, quality: int = 85):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_files = max_files
        self.quality = quality

    def save(self, name: str, image: np.ndarray, privacy_masks: Sequence[Polygon] = ()) -> Path:
        """Write ``name`` (a ``*.jpg`` file name) atomically; returns its path. Pixels
        inside ``privacy_masks`` (normalised polygons) are black in the file: the only
        copy that is ever written or uploaded."""
        image = black_out(image, privacy_masks)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {name}")
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        self._prune(room_for=1)  # make room first: a full disk is the usual reason a write fails
        try:
            tmp.write_bytes(buf.tobytes())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def _prune(self, room_for: int = 0) -> None:
        for stale in self.directory.glob("*.tmp"):  # left by a crash mid-write
            stale.unlink(missing_ok=True)
        files = sorted(self.directory.glob("*.jpg"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[: max(0, len(files) + room_for - self.max_files)]:
            old.unlink(missing_ok=True)
