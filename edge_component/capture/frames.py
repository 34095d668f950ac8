"""What capture hands to analysis: :class:`Frame`, the counters of a source
(:class:`CaptureStats`) and :func:`prefetch`, which decodes ahead in a thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .luma import STUDIO_TO_FULL


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
    # Live sources: the wall clock (Unix s) when the frame was read; ``time_s`` stays
    # monotonic for intervals, while the alert's date follows a clock that steps (NTP).
    wall_s: float | None = None

    @classmethod
    def from_colour(cls, index: int, time_s: float, image: np.ndarray) -> Frame:
        """A frame decoded in colour (BGR uint8, H x W x 3); its luma is the image's grey."""
        return cls(index, time_s, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), image)

    def colour(self) -> np.ndarray:
        """The BGR image, or, on the luma path, the luma as a grey BGR image (0..255)."""
        if self.image is not None:
            return self.image
        luma = cv2.LUT(self.luma, STUDIO_TO_FULL) if self.studio_range else self.luma
        return cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)


@dataclass(frozen=True, slots=True)
class StreamLost:
    """A live source's frames stopped (the stream failed, ended or stalled past the
    read timeout); yielded between frames by a live feed opened with ``mark_losses``.
    ``time_s`` is on the frames' clock (monotonic s), ``wall_s`` the wall clock (Unix s)
    when the loss was noticed, ``last_frame_s`` the ``time_s`` of the last frame before
    it, ``error`` what failed."""

    time_s: float
    wall_s: float
    last_frame_s: float
    error: str


@dataclass(slots=True)
class CaptureStats:
    frames_in: int = 0  # frames read (grabbed) from the source
    analysed: int = 0  # frames decoded and handed to analysis
    bad_frames: int = 0  # frames that failed to decode or had the wrong shape
    dropped: int = 0  # live: decoded frames replaced by a newer one before analysis
    reconnects: int = 0  # live: times the source was reopened after a failure or stall
    fps: float = 0.0  # the source's nominal frame rate
    last_error: str = ""  # live: cleared once frames flow again after a failure
    state: str = "connecting"  # live: connecting | running | reconnecting (a replay: connecting | running)
    last_frame_at: float = 0.0  # wall clock (Unix s) of the newest frame read; 0 before the first

    def as_dict(self) -> dict[str, float | int | str]:
        return {k: getattr(self, k) for k in self.__slots__}


def prefetch(frames: Iterator[Frame], depth: int = 8) -> Iterator[Frame]:
    """Run ``frames`` (a replay) in a reader thread, ``depth`` frames ahead, so decoding
    the next frames overlaps analysing this one (OpenCV releases the GIL in both).
    Order and content are unchanged; an exception in the reader is raised here."""
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
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
