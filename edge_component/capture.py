"""Frame sources.

- Replay (:func:`replay`, files): every frame is read in order and media time is the
  clock, so a run is repeatable.
- Live (:func:`live`, cameras, RTSP/HTTP streams, or a file paced as a camera): a
  reader thread keeps reading so the stream never backs up; only the newest frame is
  analysed and an older one still waiting is dropped and counted. A stream that fails,
  ends or stalls past the read timeout is reopened with exponential backoff.

In both, frames between analyses are grabbed, not decoded to images.
Sources: OpenCV ``VideoCapture`` with the FFmpeg backend (``grab``/``retrieve``,
``CAP_PROP_OPEN_TIMEOUT_MSEC``/``CAP_PROP_READ_TIMEOUT_MSEC``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

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
    dropped: int = 0  # live: decoded frames replaced by a newer one before analysis
    reconnects: int = 0  # live: times the source was reopened after a failure or stall
    fps: float = 0.0  # the source's nominal frame rate
    last_error: str = ""

    def as_dict(self) -> dict[str, float | int | str]:
        return {k: getattr(self, k) for k in self.__slots__}


def is_live(source: str) -> bool:
    """True for cameras and network streams; False for files (replayed in order)."""
    return source.isdigit() or "://" in source


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
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open video source {source!r} (not a video, unsupported codec, or unreachable)")
    return cap


def media_duration_s(source: str) -> float:
    """The file's nominal duration (frame count / frame rate, s); 0.0 if unknown."""
    cap = open_capture(source)
    try:
        fps, frames = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return frames / fps if fps and fps > 0 and frames and frames > 0 else 0.0
    finally:
        cap.release()


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
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
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
        if stats.frames_in == 1:
            raise SourceError(f"{source}: holds a single frame (a still image?); replay needs a video")
        if declared > 0 and stats.frames_in < 0.9 * declared:
            # Container counts may be off by a frame or two; a tenth missing is a cut-off file.
            stats.last_error = f"ended at frame {stats.frames_in} of {int(declared)} declared (truncated file?)"
            log.warning("%s: %s", source, stats.last_error)
    finally:
        cap.release()


def prefetch(frames: Iterator[Frame], depth: int = 8) -> Iterator[Frame]:
    """Run ``frames`` (a replay) in a reader thread, ``depth`` frames ahead, so decoding
    the next frames overlaps analysing this one (OpenCV releases the GIL in both).
    Order and content are unchanged; an exception in the reader is raised here."""
    import queue

    q: "queue.Queue[tuple[str, object]]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        q.put(("frame", frame), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(("error", exc))
        finally:
            close = getattr(frames, "close", None)
            if close is not None and stop.is_set():
                close()

    reader = threading.Thread(target=read, name="replay-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "frame":
                yield item  # type: ignore[misc]
            elif kind == "error":
                raise item  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()
        reader.join(timeout=5)


@dataclass(frozen=True, slots=True)
class LiveSettings:
    read_timeout_s: float = 10.0  # no frame for this long: the stream has stalled, reopen it
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    pace_files: bool = True  # a file in live mode plays at its own frame rate, like a camera


def live(
    source: str,
    detection_fps: float,
    stats: CaptureStats | None = None,
    *,
    stop: threading.Event,
    settings: LiveSettings = LiveSettings(),
    opener: Callable[[str, float], cv2.VideoCapture] = open_capture,
) -> Iterator[Frame]:
    """Yield the newest frame of a live source, at most ``detection_fps`` per second,
    until ``stop`` is set. Never raises for a failing source: it is reopened with
    exponential backoff (``settings``) and the failure is counted in ``stats``.

    ``Frame.time_s`` is seconds on the monotonic clock since the generator started;
    ``Frame.index`` counts frames grabbed since then.
    """
    stats = stats if stats is not None else CaptureStats()
    cond = threading.Condition()
    mailbox: list[Frame] = []
    t0 = time.monotonic()
    reader = threading.Thread(
        target=_live_reader, name=f"capture-{source}", daemon=True,
        args=(source, detection_fps, stats, stop, settings, opener, cond, mailbox, t0),
    )
    reader.start()
    try:
        while not stop.is_set():
            with cond:
                if not mailbox:
                    cond.wait(timeout=0.2)
                if not mailbox:
                    continue
                frame = mailbox.pop()
            stats.analysed += 1
            yield frame
    finally:
        stop.set()
        reader.join(timeout=settings.read_timeout_s + 1)


def _live_reader(source, detection_fps, stats, stop, settings, opener, cond, mailbox, t0) -> None:
    period = 1.0 / detection_fps
    backoff = settings.backoff_initial_s
    paced = settings.pace_files and not is_live(source)
    index = 0
    while not stop.is_set():
        try:
            cap = opener(source, settings.read_timeout_s)
        except SourceError as exc:
            stats.last_error = str(exc)
            log.warning("camera source %s: %s; retrying in %.1fs", source, exc, backoff)
        else:
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            stats.fps = fps if 0 < fps < 1000 else stats.fps
            frame_period = 1.0 / fps if paced and 0 < fps < 1000 else 0.0
            next_slot = time.monotonic()
            shape = None
            opened_at = time.monotonic()
            last_frame_at = opened_at
            got_any = False
            try:
                while not stop.is_set():
                    if not cap.grab():
                        stats.last_error = "stream ended or failed"
                        break
                    now = time.monotonic()
                    if now - last_frame_at > settings.read_timeout_s:
                        stats.last_error = f"no frame for {now - last_frame_at:.1f}s"
                        break
                    last_frame_at = now
                    index += 1
                    stats.frames_in += 1
                    if frame_period:
                        time.sleep(frame_period)  # a file stands in for a camera: real time
                    if now < next_slot:
                        continue  # grabbed, not decoded
                    next_slot = max(next_slot + period, now)
                    ok, image = cap.retrieve()
                    if not ok or image is None or image.ndim != 3 or (shape is not None and image.shape != shape):
                        stats.bad_frames += 1
                        continue
                    shape = image.shape
                    got_any = True
                    with cond:
                        if mailbox:
                            stats.dropped += 1  # the analysis is behind: only the newest counts
                            mailbox.clear()
                        mailbox.append(Frame(index, now - t0, image))
                        cond.notify()
            finally:
                cap.release()
            if got_any:
                backoff = settings.backoff_initial_s
            log.warning("camera source %s: %s; reopening in %.1fs", source, stats.last_error, backoff)
        if stop.is_set():
            break
        stats.reconnects += 1
        # Exponential backoff with jitter, so many cameras behind one NVR do not reconnect in step.
        stop.wait(backoff * (0.8 + 0.4 * random.random()))
        backoff = min(backoff * 2, settings.backoff_max_s)
