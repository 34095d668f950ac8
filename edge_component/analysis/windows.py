"""Capture -> motion analysis -> window features, for one camera.

:func:`analyse_source` is the one path from pixels to feature vectors. The edge's
camera pipeline (``edge_component/camera.py``) scores what it yields; training
(``training/dataset.py``) labels what it yields. Same code, same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edge_component.capture.frames import CaptureStats, Frame, StreamLost
from edge_component.capture.replay import replay
from edge_component.config import CameraConfig, ComponentConfig

from .features import WindowFeaturizer, window_length
from .motion import FrameStats, MotionAnalyzer


@dataclass(slots=True)
class Window:
    """One closed window of one zone."""

    frame: Frame  # the analysed frame that closed the window
    zone_index: int
    zone: str
    features: np.ndarray  # float32, shape (N_FEATURES,)
    stats: FrameStats  # the closing frame's stats (boxes for the snapshot)


def analyse_frames(
    frames: Iterator[Frame | StreamLost],
    camera: CameraConfig,
    config: ComponentConfig,
    analyzer: MotionAnalyzer | None = None,
) -> Iterator[Window | StreamLost]:
    """Turn analysed frames into windows, one per zone per frame. ``analyzer`` (made
    from the config when not given) is passed in by a caller that reads its counters.
    A :class:`StreamLost` (live feeds) is passed on in its place, after the windows of
    every frame before it, and starts the windows afresh: no window spans the gap."""
    analyzer = analyzer or MotionAnalyzer(config.motion, camera.zones, camera.masks, config.detection_fps)
    length = window_length(config.window_s, config.detection_fps)
    featurizers = [WindowFeaturizer(length) for _ in camera.zones]
    for frame in frames:
        if isinstance(frame, StreamLost):
            featurizers = [WindowFeaturizer(length) for _ in camera.zones]
            yield frame
            continue
        for i, (stats, fz) in enumerate(
            zip(analyzer.analyse(frame.luma, frame.studio_range), featurizers, strict=True)
        ):
            yield Window(frame, i, camera.zones[i].name, fz.push(stats), stats)


def analyse_source(
    camera: CameraConfig, config: ComponentConfig, stats: CaptureStats | None = None
) -> Iterator[Window]:
    """Replay ``camera.source`` (a file) and yield its windows in media order.

    Raises capture.SourceError if the file cannot be read.
    """
    for item in analyse_frames(replay(camera.source, config.detection_fps, stats), camera, config):
        if isinstance(item, Window):  # a replay loses no stream: windows only
            yield item
