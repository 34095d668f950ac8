"""Opening video sources with OpenCV: files, network streams and cameras.

OpenCV ``VideoCapture`` with the FFmpeg backend for files and URLs
(``CAP_PROP_OPEN_TIMEOUT_MSEC``/``CAP_PROP_READ_TIMEOUT_MSEC`` bound opening and each
read of a network stream); a camera index opens with ``CAP_ANY``.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from edge_component.config import is_live, redact_source


class SourceError(RuntimeError):
    """A video source cannot be opened or is not a video."""


def open_capture(source: str, timeout_s: float = 10.0) -> cv2.VideoCapture:
    """Open a file, URL or camera index with OpenCV; SourceError if it cannot be read.

    ``timeout_s`` bounds opening and each read of a network stream (FFmpeg backend).
    """
    if not is_live(source) and not Path(source).is_file():
        raise SourceError(f"video file not found: {source}")
    if source.isdigit():
        cap = cv2.VideoCapture(int(source), cv2.CAP_ANY)
    else:
        ms = int(timeout_s * 1000)
        cap = cv2.VideoCapture(
            source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        )
    if not cap.isOpened():
        cap.release()
        raise SourceError(
            f"cannot open video source {redact_source(source)!r} (not a video, unsupported codec, or unreachable)"
        )
    return cap


def media_duration_s(source: str) -> float:
    """The file's nominal duration (frame count / frame rate, s); 0.0 if unknown."""
    cap = open_capture(source)
    try:
        fps, frames = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return frames / fps if fps and fps > 0 and frames and frames > 0 else 0.0
    finally:
        cap.release()
