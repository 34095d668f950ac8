"""Colour images of a replayed file's analysed frames, decoded again on demand."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .frames import Frame
from .luma import STUDIO_TO_FULL
from .source import SourceError, open_capture

log = logging.getLogger(__name__)


class ColourFrames:
    """Colour (BGR) images of a replayed file's analysed frames, decoded on demand: the
    snapshots of a luma-only replay.

    ``get(frame)`` reads forward from where it stopped, and from the start again for an
    earlier frame (seeking is not exact on B-frame, MPEG-TS or variable-rate files, and
    a neighbouring frame can look the same but for a small moving object). Every image
    is checked against the luma that was analysed, so a snapshot can only show that
    frame: None if the file no longer holds it (replaced, cut, unreadable). The last
    image is kept, so the zones of one frame share one decode. Snapshots in media order
    decode the file at most once more, and only as far as the last snapshot.
    """

    # The same frame decoded both ways differs by at most 1.4 grey levels on average and
    # 10 in the worst 8x8 block (saturated colours; measured on eight test clips); a
    # neighbouring frame with something moving, by 20 or more in some block even when
    # the mover is 20x20 pixels of 768x432. Frames that pass are the same picture.
    SAME_MEAN = 3.0
    SAME_BLOCK = 14.0

    def __init__(self, source: str):
        self.source = source
        self._cap: cv2.VideoCapture | None = None
        self._next = 0  # index of the frame the next grab() reads
        self._last: tuple[int, np.ndarray] | None = None
        self.rereads = 0  # reads from the start for an earlier frame

    def get(self, frame: Frame) -> np.ndarray | None:
        if frame.index < 0:
            return None
        if self._last is not None and self._last[0] == frame.index:
            return self._last[1]
        try:
            if self._cap is not None and frame.index < self._next:
                self.rereads += 1
                self.close()
            if self._cap is None:
                self._cap = open_capture(self.source)
            image = self._read_to(frame)
        except (SourceError, cv2.error) as exc:
            log.warning("%s: frame %d not decoded in colour: %s", self.source, frame.index, exc)
            return None
        if image is None:
            log.warning("%s: frame %d could not be decoded again in colour (file changed?)", self.source, frame.index)
            return None
        self._last = (frame.index, image)
        return image

    def _read_to(self, frame: Frame) -> np.ndarray | None:
        """Grab forward to ``frame.index`` and return its colour image if it matches the
        analysed luma, else None."""
        assert self._cap is not None
        while self._next <= frame.index:
            if not self._cap.grab():
                return None
            self._next += 1
        ok, image = self._cap.retrieve()
        if not ok or image is None or image.ndim != 3 or image.shape[:2] != frame.luma.shape:
            return None
        return image if self._same_picture(image, frame) else None

    def _same_picture(self, image: np.ndarray, frame: Frame) -> bool:
        luma = cv2.LUT(frame.luma, STUDIO_TO_FULL) if frame.studio_range else frame.luma
        diff = cv2.absdiff(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), luma)
        h, w = diff.shape
        blocks = cv2.resize(diff, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        return float(cv2.mean(diff)[0]) <= self.SAME_MEAN and float(blocks.max()) <= self.SAME_BLOCK

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._next = 0
