"""Evidence snapshots: the alert frame as a JPEG, annotated with the zones (green),
masks (grey) and motion boxes (red), kept on the device with bounded disk use."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edge_component.config import Polygon


def annotate(image: np.ndarray, zones: list[Polygon], masks: list[Polygon], boxes, label: str) -> np.ndarray:
    """A copy of the BGR ``image`` with zones, masks, boxes (x, y, w, h px) and a label."""
    out = image.copy()
    h, w = out.shape[:2]

    def pts(poly: Polygon) -> np.ndarray:
        return np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in poly.polygon], np.int32)

    for m in masks:
        cv2.polylines(out, [pts(m)], True, (128, 128, 128), 2)
    for z in zones:
        cv2.polylines(out, [pts(z)], True, (0, 200, 0), 2)
        x0, y0 = pts(z)[0]
        cv2.putText(
            out, z.name, (int(x0) + 4, int(y0) + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 200, 0), 1, cv2.LINE_AA
        )
    for x, y, bw, bh in boxes:
        cv2.rectangle(out, (x, y), (x + bw, y + bh), (0, 0, 255), 2)
    cv2.rectangle(out, (0, h - 24), (w, h), (0, 0, 0), -1)
    cv2.putText(out, label, (6, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class SnapshotStore:
    """Writes JPEGs into ``directory``, keeping at most ``max_files`` (oldest deleted)."""

    def __init__(self, directory: str | Path, max_files: int = 200, quality: int = 85):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_files = max_files
        self.quality = quality

    def save(self, name: str, image: np.ndarray) -> Path:
        """Write ``name`` (a ``*.jpg`` file name) atomically; returns its path."""
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
