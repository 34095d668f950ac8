"""Replay of video files: every frame is read in order and media time is the clock, so
a run is repeatable.

Frames between analyses are grabbed, not decoded to images. A replay analyses the
luma plane where the file's format allows it (:mod:`.luma`); colour for its snapshots
is decoded on demand (:class:`~edge_component.capture.colour.ColourFrames`).

Sources: OpenCV ``VideoCapture`` with the FFmpeg backend (``grab``/``retrieve``,
``CAP_PROP_CONVERT_RGB``, ``CAP_PROP_POS_MSEC``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import cv2
import numpy as np

from .frames import CaptureStats, Frame
from .luma import luma_range, retrieve_plane
from .source import SourceError, open_capture

log = logging.getLogger(__name__)

# A timestamp step longer than this is taken as broken (an MPEG-TS clock wraps after
# 26.5 h), not as a pause in the recording (s).
MAX_TIMESTAMP_GAP_S = 3600.0


def replay(source: str, detection_fps: float, stats: CaptureStats | None = None) -> Iterator[Frame]:
    """Yield the frames of a video file to analyse, at ``detection_fps`` analyses per
    second of media time, reading every frame in order.

    Raises SourceError if the file cannot be opened or holds no decodable frame.
    Media time advances by the container's timestamp step from frame to frame, so a
    variable-frame-rate file (a phone, a recorder that drops frames or pauses) is timed
    as it was recorded; a step that is unknown, zero, backwards or over
    ``MAX_TIMESTAMP_GAP_S`` (a broken, repeated or reset timestamp) counts as one
    nominal frame period, and the steps after it are the container's again. Either way
    the same file always gives the same frames and times. Frames carry only their luma when the file's Y plane
    passes :func:`luma_range`'s check (``Frame.image`` is None: see
    :class:`~edge_component.capture.colour.ColourFrames` for colour), else the colour image and its grey.
    """
    stats = stats if stats is not None else CaptureStats()
    studio = luma_range(source)
    cap = open_capture(source)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not fps or fps <= 0 or fps > 1000:
            raise SourceError(f"{source}: container reports no usable frame rate ({fps})")
        stats.fps = fps
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
        luma_only = studio is not None and cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        last_slot = -1
        index = -1
        t = last_pts = 0.0
        expected_shape = None
        while True:
            if not cap.grab():
                break  # end of file
            index += 1
            stats.frames_in += 1
            stats.last_frame_at, stats.state = time.time(), "running"
            pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if index > 0:
                step = pts - last_pts  # NaN if either is unknown
                t += step if 0.0 < step <= MAX_TIMESTAMP_GAP_S else 1.0 / fps
            last_pts = pts
            slot = int(t * detection_fps + 1e-6)  # analysis slot this frame falls in
            if slot == last_slot:
                continue
            last_slot = slot
            if luma_only:
                ok, image = retrieve_plane(cap)
                good = ok and image is not None and image.ndim == 2 and image.dtype == np.uint8
                frame = Frame(index, t, image, None, bool(studio)) if good else None
            else:
                ok, image = cap.retrieve()
                frame = Frame.from_colour(index, t, image) if ok and image is not None and image.ndim == 3 else None
            if frame is None or (expected_shape and frame.luma.shape != expected_shape):
                stats.bad_frames += 1
                continue
            expected_shape = frame.luma.shape
            stats.analysed += 1
            yield frame
        if stats.analysed == 0:
            raise SourceError(f"{source}: no decodable frame")
        if stats.frames_in == 1:
            raise SourceError(f"{source}: holds a single frame (a still image?); replay needs a video")
        duration = declared / fps
        if declared > 0 and stats.frames_in < 0.9 * declared and t + 1.0 / fps < 0.9 * duration:
            # Container counts may be off by a frame or two, and are estimates for a
            # variable frame rate: a tenth missing, in frames and in time, is a cut-off file.
            stats.last_error = (
                f"ended at frame {stats.frames_in} of {int(declared)} declared, "
                f"{t:.1f} s of {duration:.1f} s (truncated file?)"
            )
            log.warning("%s: %s", source, stats.last_error)
    finally:
        cap.release()
