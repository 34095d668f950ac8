"""Frame sources. Replay mode (files) reads every frame in order, so results are
repeatable; frames between analyses are grabbed, not decoded to images.

Sources: OpenCV ``VideoCapture`` with the FFmpeg backend (``grab``/``retrieve``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A video source cannot be opened or is not a video."""


@dataclass(slots=True)
class Frame:
    index: int  # 0-based index of the frame read from the source
    time_s: float  # media time from the start of the source (s)
    image: np.ndarray  # BGR uint8, H x W x 3


@dataclass(slots=True)
class CaptureStats:
    frames_in: int = 0  # frames read (grabbed) from the source
    analysed: int = 0  # frames decoded and handed to analysis
    bad_frames: int = 0  # frames that failed to decode or had the wrong shape
    fps: float = 0.0  # the source's nominal frame rate


def is_live(source: str) -> bool:
    """True for cameras and network streams; False for files (replayed in order)."""
    return source.isdigit() or "://" in source


def open_capture(source: str) -> cv2.VideoCapture:
    """Open a file, URL or camera index with OpenCV; SourceError if it cannot be read."""
    if not is_live(source) and not Path(source).is_file():
        raise SourceError(f"video file not found: {source}")
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source, cv2.CAP_FFMPEG if not source.isdigit() else cv2.CAP_ANY)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open video source {source!r} (not a video, unsupported codec, or unreachable)")
    return cap


def replay(source: str, detection_fps: float, stats: CaptureStats | None = None) -> Iterator[Frame]:
    """Yield the frames of a video file to analyse, at ``detection_fps`` analyses per
    second of media time, reading every frame in order.

    Raises SourceError if the file cannot be opened or holds no decodable frame.
    Media time is ``index / fps`` (the container's nominal rate), so the same file
    always gives the same frames.
    """
    stats = stats if stats is not None else CaptureStats()
    cap = open_capture(source)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not fps or fps <= 0 or fps > 1000:
            raise SourceError(f"{source}: container reports no usable frame rate ({fps})")
        stats.fps = fps
        last_slot = -1
        index = -1
        expected_shape = None
        while True:
            if not cap.grab():
                break  # end of file
            index += 1
            stats.frames_in += 1
            t = index / fps
            slot = int(t * detection_fps + 1e-6)  # analysis slot this frame falls in
            if slot == last_slot:
                continue
            last_slot = slot
            ok, image = cap.retrieve()
            if not ok or image is None or image.ndim != 3 or (expected_shape and image.shape != expected_shape):
                stats.bad_frames += 1
                continue
            expected_shape = image.shape
            stats.analysed += 1
            yield Frame(index, t, image)
        if stats.analysed == 0:
            raise SourceError(f"{source}: no decodable frame")
    finally:
        cap.release()
