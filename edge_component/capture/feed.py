"""One camera's frames as the rest of the component sees them: :func:`open_replay` for
files, :func:`open_live` for cameras and streams. A :class:`Feed` hides how frames are
read and where a snapshot's colour image comes from."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .colour import ColourFrames
from .frames import CaptureStats, Frame, StreamLost, prefetch
from .live import LiveSettings, live
from .replay import replay


@dataclass
class Feed:
    """Frames of one source and how to read them again.

    ``media_time`` is True for replays (``Frame.time_s`` is media time) and False for
    live sources (monotonic seconds), whose ``frames`` also carry a :class:`StreamLost`
    between frames when the stream is lost. ``identity`` names a replayed file as it is now
    (absolute path, size and modification time), None for live sources.
    """

    source: str
    frames: Iterator[Frame | StreamLost]
    stats: CaptureStats
    media_time: bool
    identity: str | None = None
    _colour: ColourFrames | None = field(default=None, repr=False)

    def colour(self, frame: Frame) -> np.ndarray | None:
        """The BGR image of ``frame``: its own when it was decoded in colour, else, for a
        replay opened with ``colour=True``, decoded again from the file (None if the file
        no longer holds it; see :class:`~.colour.ColourFrames`). Call it while frames
        come in order, so the file is only ever read forward."""
        if frame.image is not None:
            return frame.image
        return self._colour.get(frame) if self._colour is not None else None

    def close(self) -> None:
        if self._colour is not None:
            self._colour.close()


def open_replay(source: str, detection_fps: float, *, colour: bool = False) -> Feed:
    """A file replayed in media order, decoded ahead in a thread (:func:`.frames.prefetch`).
    ``colour``: frames analysed as luma only can be decoded in colour again for
    snapshots. Raises SourceError (here or while iterating) if the file cannot be read."""
    st = os.stat(source)
    identity = f"{os.path.abspath(source)}|{st.st_size}|{st.st_mtime_ns}"
    stats = CaptureStats()
    frames = prefetch(replay(source, detection_fps, stats))
    return Feed(source, frames, stats, True, identity, ColourFrames(source) if colour else None)


def open_live(
    source: str, detection_fps: float, *, stop: threading.Event, read_timeout_s: float, backoff_max_s: float
) -> Feed:
    """A live source followed until ``stop`` is set; a failing source is reopened with
    backoff (:func:`.live.live`), never raised; each loss of the stream is marked by a
    :class:`StreamLost` among the frames."""
    stats = CaptureStats()
    settings = LiveSettings(read_timeout_s=read_timeout_s, backoff_max_s=backoff_max_s)
    frames = live(source, detection_fps, stats, stop=stop, settings=settings, mark_losses=True)
    return Feed(source, frames, stats, False)
