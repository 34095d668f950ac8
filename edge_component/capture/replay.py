"""Frame sources.

- Replay (:func:`replay`, files): every frame is read in order and media time is the
  clock, so a run is repeatable.
- Live (:func:`live`, cameras, RTSP/HTTP streams, or a file paced as a camera): a
  reader thread keeps reading so the stream never backs up; only the newest frame is
  analysed and an older one still waiting is dropped and counted. A stream that fails,
  ends or stalls past the read timeout is reopened with exponential backoff.

In both, frames between analyses are grabbed, not decoded to images. A replay reads
only the luma (Y) plane of the frames it analyses (``CAP_PROP_CONVERT_RGB`` off: the
decoder's own plane, copied, no colour conversion), after checking on its first frame
with contrast that the plane matches the grey of the colour image and whether it is studio range
(16..235, most H.264/HEVC) or full range (0..255, JPEG-style); a format whose plane
does not match (a GIF's BGRA, for one) is decoded in colour instead. Colour for a
replay's snapshots is decoded on demand (:class:`ColourFrames`). A live source is
decoded in colour (snapshots need it; at a few analyses per second it costs little).

Sources: OpenCV ``VideoCapture`` with the FFmpeg backend (``grab``/``retrieve``,
``CAP_PROP_CONVERT_RGB``, ``CAP_PROP_OPEN_TIMEOUT_MSEC``/``CAP_PROP_READ_TIMEOUT_MSEC``);
studio and full range: ITU-R BT.601-7, section 2.5.3.
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
from cv2.utils import logging as cvlog

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A video source cannot be opened or is not a video."""


@dataclass(slots=True)
class Frame:
    """One frame handed to analysis.

    ``luma`` (uint8, H x W) is what analysis reads: the decoder's Y plane on a replay's
    luma path (``studio_range`` True when it spans 16..235; analysis expands it to
    0..255 after downscaling), else the grey (BT.601) of the colour image, 0..255. The
    two agree within a few grey levels (measured on the example clips: a mean of about
    one level). ``image`` is the BGR colour image (H x W x 3) when the frame was decoded
    in colour (live sources, replays of formats without a usable Y plane), else None.
    """

    index: int  # 0-based index of the frame read from the source
    time_s: float  # media time from the start of the source (s)
    luma: np.ndarray
    image: np.ndarray | None = None
    studio_range: bool = False

    @classmethod
    def from_colour(cls, index: int, time_s: float, image: np.ndarray) -> "Frame":
        """A frame decoded in colour (BGR uint8, H x W x 3); its luma is the image's grey."""
        return cls(index, time_s, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), image)

    def colour(self) -> np.ndarray:
        """The BGR image, or, on the luma path, the luma as a grey BGR image (0..255)."""
        if self.image is not None:
            return self.image
        luma = cv2.LUT(self.luma, STUDIO_TO_FULL) if self.studio_range else self.luma
        return cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)


# Studio-range luma (16 = black, 235 = white) to full range (0..255), rounded and clipped.
STUDIO_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)


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
    Media time advances by the container's timestamp step from frame to frame, so a
    variable-frame-rate file (a phone, a recorder that drops frames or pauses) is timed
    as it was recorded; a step that is unknown, zero, backwards or over
    ``MAX_TIMESTAMP_GAP_S`` (a broken, repeated or reset timestamp) counts as one
    nominal frame period, and the steps after it are the container's again. Either way
    the same file always gives the same frames and times. Frames carry only their luma when the file's Y plane
    passes :func:`_luma_range`'s check (``Frame.image`` is None: see
    :class:`ColourFrames` for colour), else the colour image and its grey.
    """
    stats = stats if stats is not None else CaptureStats()
    studio = _luma_range(source)
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
                ok, image = _retrieve_plane(cap)
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
            stats.last_error = (f"ended at frame {stats.frames_in} of {int(declared)} declared, "
                                f"{t:.1f} s of {duration:.1f} s (truncated file?)")
            log.warning("%s: %s", source, stats.last_error)
    finally:
        cap.release()


# Pixel formats (as FFmpeg's raw-video tags, CAP_PROP_CODEC_PIXEL_FORMAT) whose first
# plane is 8-bit luma: planar and semi-planar YUV at any chroma subsampling, and grey.
# Anything else (RGB, palette, packed YUV, more than 8 bits) is decoded in colour.
LUMA_PLANE_FORMATS = frozenset({
    b"I420", b"IYUV", b"YV12", b"J420", b"NV12", b"NV21", b"Y42B", b"422P", b"444P", b"Y444",
    b"Y41B", b"411P", b"440P", b"Y800", b"GREY", b"Y1\x00\x08",
})

# A timestamp step longer than this is taken as broken (an MPEG-TS clock wraps after
# 26.5 h), not as a pause in the recording (s).
MAX_TIMESTAMP_GAP_S = 3600.0

_QUIET = threading.Lock()


def _retrieve_plane(cap: cv2.VideoCapture) -> tuple[bool, np.ndarray | None]:
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


def _luma_range(source: str, tolerance: float = 4.0, probe_frames: int = 100) -> bool | None:
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
                ok, plane = _retrieve_plane(luma)
            except cv2.error:
                return None
            if not ok or plane is None or plane.ndim != 2 or plane.dtype != np.uint8 or plane.shape != bgr.shape[:2]:
                return None  # not an 8-bit planar YUV picture (RGB, palette, 10-bit, ...)
            verdict = _judge_plane(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), plane, tolerance)
            if verdict != "undecided":
                if verdict is None:
                    log.info("%s: the luma plane does not match the colour image; decoding in colour", source)
                return verdict
        log.info("%s: no frame among the first %d has the contrast to tell studio from full range; decoding in colour",
                 source, probe_frames)
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
                    frame = Frame.from_colour(index, now - t0, image)
                    with cond:
                        if mailbox:
                            stats.dropped += 1  # the analysis is behind: only the newest counts
                            mailbox.clear()
                        mailbox.append(frame)
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
