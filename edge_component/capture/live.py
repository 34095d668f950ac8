"""Live capture (cameras, RTSP/HTTP streams, or a file paced as a camera).

A reader thread keeps reading so the stream never backs up; only the newest frame is
analysed and an older one still waiting is dropped and counted. A stream that fails,
ends, stalls past the read timeout, changes resolution, gives ``max_bad_frames`` unusable
frames in a row, or makes the reader raise is reopened with exponential backoff. A live
source is decoded in colour (snapshots need it; at a few analyses per second it costs
little).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from edge_component.backoff import Backoff
from edge_component.config import is_live, redact_source

from .frames import CaptureStats, Frame, StreamLost
from .source import SourceError, open_capture

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveSettings:
    read_timeout_s: float = 10.0  # no frame for this long: the stream has stalled, reopen it
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    pace_files: bool = True  # a file in live mode plays at its own frame rate, like a camera
    max_bad_frames: int = 25  # decoded frames in a row that cannot be used: reopen the stream


def live(
    source: str,
    detection_fps: float,
    stats: CaptureStats | None = None,
    *,
    stop: threading.Event,
    settings: LiveSettings = LiveSettings(),
    opener: Callable[[str, float], cv2.VideoCapture] = open_capture,
    wall_clock: Callable[[], float] = time.time,
    mark_losses: bool = False,
) -> Iterator[Frame | StreamLost]:
    """Yield the newest frame of a live source, at most ``detection_fps`` per second,
    until ``stop`` is set. Never raises for a failing source: it is reopened with
    exponential backoff (``settings``) and the failure is counted in ``stats``.

    ``mark_losses``: once frames have flowed, a :class:`StreamLost` is yielded (once per
    loss) as soon as the reader gives the stream up (a failed or ended read) or no frame
    came for ``settings.read_timeout_s`` (a read that hangs), so a consumer can close
    what it had open without waiting for the stream to come back.

    ``Frame.time_s`` is seconds on the monotonic clock since the generator started;
    ``Frame.wall_s`` is ``wall_clock()`` (Unix seconds) when the frame was read;
    ``Frame.index`` counts frames grabbed since then.
    """
    stats = stats if stats is not None else CaptureStats()
    cond = threading.Condition()
    mailbox: list[Frame] = []
    t0 = time.monotonic()
    reader = threading.Thread(
        target=_live_reader,
        name=f"capture-{redact_source(source)}",
        daemon=True,
        args=(source, detection_fps, stats, stop, settings, opener, cond, mailbox, t0, wall_clock),
    )
    reader.start()
    last_frame: Frame | None = None
    last_at, lost = 0.0, False
    try:
        while not stop.is_set():
            with cond:
                if not mailbox:
                    cond.wait(timeout=0.2)
                frame = mailbox.pop() if mailbox else None
            if frame is None:
                if mark_losses and last_frame is not None and not lost:
                    now = time.monotonic()
                    # The reader marks a failed read at once; a read that hangs, only the clock shows.
                    if stats.state == "reconnecting" or now - last_at > settings.read_timeout_s:
                        lost = True
                        error = stats.last_error or f"no frame for {now - last_at:.1f}s"
                        yield StreamLost(now - t0, wall_clock(), last_frame.time_s, error)
                continue
            last_frame, last_at, lost = frame, time.monotonic(), False
            stats.analysed += 1
            yield frame
    finally:
        stop.set()
        reader.join(timeout=settings.read_timeout_s + 1)


def _live_reader(source, detection_fps, stats, stop, settings, opener, cond, mailbox, t0, wall_clock) -> None:
    period = 1.0 / detection_fps
    # Jittered so many cameras behind one NVR do not reconnect in step.
    backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, jitter_base=0.8, jitter_spread=0.4)
    paced = settings.pace_files and not is_live(source)
    shown = redact_source(source)  # what logs name: no userinfo (the password of rtsp://user:pass@...)
    index = 0
    while not stop.is_set():
        try:
            cap = opener(source, settings.read_timeout_s)
        except Exception as exc:  # SourceError, or an opener's bug: the camera retries either way
            stats.last_error = redact_source(str(exc) if isinstance(exc, SourceError) else f"cannot open: {exc!r}")
            stats.state = "reconnecting"
            log.warning(
                "camera source %s: %s; retrying in %.1fs",
                shown,
                stats.last_error,
                backoff.ceiling_s(backoff.failures + 1),
            )
        else:
            got_any = [False]
            try:
                index = _read_stream(
                    cap, source, period, paced, stats, stop, settings, cond, mailbox, t0, wall_clock, index, got_any
                )
            except Exception as exc:
                # A decoder handing over something unexpected must not kill the reader
                # (the camera would stay "running", blind): a lost stream, reopened.
                stats.last_error = redact_source(f"capture failed: {exc!r}")
                log.error("camera source %s: reading failed: %s", shown, stats.last_error, exc_info=exc)
            finally:
                cap.release()
            if not stop.is_set():
                stats.state = "reconnecting"
            if got_any[0]:
                backoff.reset()
            if not stop.is_set():  # a clean stop is no failure and reopens nothing
                log.warning(
                    "camera source %s: %s; reopening in %.1fs",
                    shown,
                    stats.last_error,
                    backoff.ceiling_s(backoff.failures + 1),
                )
        if stop.is_set():
            break
        stats.reconnects += 1
        stop.wait(backoff.failed())


def _read_stream(cap, source, period, paced, stats, stop, settings, cond, mailbox, t0, wall_clock, index, got_any):
    """Read one opened stream until ``stop`` or until it fails (``stats.last_error`` says
    how); returns the frame index reached. ``got_any[0]`` becomes True once a frame got
    through. Raises whatever the capture raises."""
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    stats.fps = fps if 0 < fps < 1000 else stats.fps
    frame_period = 1.0 / fps if paced and 0 < fps < 1000 else 0.0
    next_slot = time.monotonic()
    shape = None
    last_frame_at = time.monotonic()
    bad_run = 0  # decoded frames in a row that could not be used
    while not stop.is_set():
        if not cap.grab():
            stats.last_error = "stream ended or failed"
            return index
        now = time.monotonic()
        if now - last_frame_at > settings.read_timeout_s:
            stats.last_error = f"no frame for {now - last_frame_at:.1f}s"
            return index
        last_frame_at = now
        index += 1
        stats.frames_in += 1
        stats.last_frame_at = time.time()
        if frame_period:
            time.sleep(frame_period)  # a file stands in for a camera: real time
        if now < next_slot:
            continue  # grabbed, not decoded
        next_slot = max(next_slot + period, now)
        ok, image = cap.retrieve()
        image = _as_bgr(image) if ok else image
        problem = _unusable(ok, image)
        if problem:
            stats.bad_frames += 1
            bad_run += 1
            if bad_run >= settings.max_bad_frames:
                # The decoder gives nothing usable: reopening is the one thing left to try.
                stats.last_error = f"{bad_run} bad frames in a row ({problem})"
                return index
            continue
        if shape is not None and image.shape != shape:
            # A new stream profile (day/night, a setting changed on the camera): a new
            # picture, as after a reconnect; the stream is reopened at the new size and the
            # analysis starts over (MotionAnalyzer follows the frame size).
            (h0, w0), (h1, w1) = shape[:2], image.shape[:2]
            stats.last_error = f"resolution changed from {w0}x{h0} to {w1}x{h1}"
            return index
        bad_run = 0
        shape = image.shape
        if stats.state != "running":  # frames flow (again): the earlier failure is history
            if stats.last_error:
                log.info("camera source %s: frames again after: %s", redact_source(source), stats.last_error)
            stats.state, stats.last_error = "running", ""
        got_any[0] = True
        frame = Frame.from_colour(index, now - t0, image)
        frame.wall_s = wall_clock()
        with cond:
            if mailbox:
                stats.dropped += 1  # the analysis is behind: only the newest counts
                mailbox.clear()
            mailbox.append(frame)
            cond.notify()
    return index


def _as_bgr(image):
    """A grey (H x W or H x W x 1) or BGRA uint8 image as BGR; anything else unchanged."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size:
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.ndim == 3 and image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _unusable(ok: bool, image) -> str:
    """Why a retrieved frame cannot be analysed, or "" if it can (BGR, H x W x 3, uint8)."""
    if not ok or image is None:
        return "decode failed"
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        return f"not a BGR image: {image.dtype} {image.shape}"
    return ""
