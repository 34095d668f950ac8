"""The luma path: analysing a file's decoded Y plane instead of its colour image.

A replay reads only the luma (Y) plane of the frames it analyses
(``CAP_PROP_CONVERT_RGB`` off: the decoder's own plane, copied, no colour conversion),
after checking on its first frame with contrast that the plane matches the grey of the
colour image and whether it is studio range (16..235, most H.264/HEVC) or full range
(0..255, JPEG-style); a format whose plane does not match (a GIF's BGRA, for one) is
decoded in colour instead.

Studio and full range: ITU-R BT.601-7, section 2.5.3.
"""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np
from cv2.utils import logging as cvlog

from .source import open_capture

log = logging.getLogger(__name__)

# Studio-range luma (16 = black, 235 = white) to full range (0..255), rounded and clipped.
STUDIO_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)


# Pixel formats (as FFmpeg's raw-video tags, CAP_PROP_CODEC_PIXEL_FORMAT) whose first
# plane is 8-bit luma: planar and semi-planar YUV at any chroma subsampling, and grey.
# Anything else (RGB, palette, packed YUV, more than 8 bits) is decoded in colour.
LUMA_PLANE_FORMATS = frozenset(
    {
        b"I420",
        b"IYUV",
        b"YV12",
        b"J420",
        b"NV12",
        b"NV21",
        b"Y42B",
        b"422P",
        b"444P",
        b"Y444",
        b"Y41B",
        b"411P",
        b"440P",
        b"Y800",
        b"GREY",
        b"Y1\x00\x08",
    }
)

_QUIET = threading.Lock()


def retrieve_plane(cap: cv2.VideoCapture) -> tuple[bool, np.ndarray | None]:
    """``cap.retrieve()`` with CONVERT_RGB off: the decoded picture's first plane.
    OpenCV warns on every such call that it treats the format as 8UC1 (which is the
    point), so its log level is raised to errors for the call."""
    with _QUIET:
        level = cvlog.getLogLevel()
        cvlog.setLogLevel(cvlog.LOG_LEVEL_ERROR)
        try:
            return cap.retrieve()
        finally:
            cvlog.setLogLevel(level)


def luma_range(source: str, tolerance: float = 4.0, probe_frames: int = 100) -> bool | None:
    """Whether the file's decoded Y plane can stand in for the grey of its colour image:
    True if it is studio range (16..235), False if full range, None if it cannot (not an
    8-bit planar YUV picture, or no match within ``tolerance`` grey levels, mean absolute
    difference).

    Judged on the first frame, of the first ``probe_frames``, with enough contrast to
    tell the cases apart (a flat frame, such as a black first frame, matches any plane
    of any range); if none has, None: colour is always right. Raises SourceError if the
    file cannot be opened."""
    colour = open_capture(source)
    luma = open_capture(source)
    try:
        tag = int(colour.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)).to_bytes(4, "little", signed=True)
        if tag not in LUMA_PLANE_FORMATS:
            # Planar RGB's first plane is green, which equals the grey of a monochrome
            # picture (a camera in infrared mode): no picture can be trusted to tell.
            log.info("%s: pixel format %r has no 8-bit luma plane; decoding in colour", source, tag)
            return None
        if not luma.set(cv2.CAP_PROP_CONVERT_RGB, 0):
            return None
        for _ in range(probe_frames):
            ok, bgr = colour.read()
            if not ok or bgr is None or bgr.ndim != 3 or not luma.grab():
                return None  # the replay itself reports what is wrong with the file
            try:
                ok, plane = retrieve_plane(luma)
            except cv2.error:
                return None
            if not ok or plane is None or plane.ndim != 2 or plane.dtype != np.uint8 or plane.shape != bgr.shape[:2]:
                return None  # not an 8-bit planar YUV picture (RGB, palette, 10-bit, ...)
            verdict = _judge_plane(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), plane, tolerance)
            if verdict != "undecided":
                if verdict is None:
                    log.info("%s: the luma plane does not match the colour image; decoding in colour", source)
                return verdict
        log.info(
            "%s: no frame among the first %d has the contrast to tell studio from full range; decoding in colour",
            source,
            probe_frames,
        )
        return None
    finally:
        colour.release()
        luma.release()


def _judge_plane(grey: np.ndarray, plane: np.ndarray, tolerance: float) -> bool | None | str:
    """Compare one frame's grey (from colour) with its decoded plane: True (studio
    range), False (full range), None (not the luma: another picture, or no fit within
    ``tolerance`` levels) or "undecided" (too little contrast to tell: a spread under 8
    levels, or the two ranges fit about equally well, as they do near mid-grey)."""
    grey = grey[::3, ::3].astype(np.float32)  # every 9th pixel: plenty to judge, a few ms at most
    if float(grey.std()) < 8.0:
        return "undecided"
    plane = plane[::3, ::3]
    if float(plane.std()) < 1.0 or float(np.corrcoef(plane.ravel(), grey.ravel())[0, 1]) < 0.97:
        return None  # a different picture (packed pixels, another plane), whatever its range
    studio = float(np.abs(STUDIO_TO_FULL[plane] - grey).mean())
    full = float(np.abs(plane - grey).mean())
    best, other = min(studio, full), max(studio, full)
    if best > tolerance:
        return None
    if other < 1.5 * best + 0.2:
        return "undecided"
    return studio < full
