"""The feature contract: one implementation, used by the edge at run time and by
training to featurise labelled clips, so training and serving cannot disagree.

A *window* is the last ``window_s`` seconds of analysed frames of one zone (at the
default 5 analyses/s and 1 s, five frames). Every analysed frame closes a window and
yields one feature vector, a float32 array of shape ``(len(FEATURE_NAMES),)`` in the
order of :data:`FEATURE_NAMES`. The model bundle's manifest records these names and
:data:`FEATURE_VERSION`; the edge refuses a bundle whose list differs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .motion import FrameStats

FEATURE_VERSION = "3"  # 2: blobs are outer contours (holes filled); 3: lighting correction, blank frames skipped
FEATURE_NAMES: tuple[str, ...] = (
    "fg_ratio_mean",  # share of the zone differing from the background, mean over the window
    "fg_ratio_max",
    "blob_ratio_max",  # area inside the largest foreground blob's outer contour / zone area
    "blob_count_mean",  # foreground blobs above the noise size
    "motion_ratio_mean",  # share of the zone that changed since the previous analysed frame
    "motion_ratio_max",
    "global_change_max",  # share of the whole frame differing from the background
    "brightness_delta_max",  # largest change of mean brightness between analysed frames (0..1)
)
N_FEATURES = len(FEATURE_NAMES)


def window_length(window_s: float, detection_fps: float) -> int:
    """Analysed frames per window (at least 1)."""
    return max(1, round(window_s * detection_fps))


@dataclass(slots=True)
class WindowFeaturizer:
    """Rolling window of :class:`FrameStats` for one zone.

    ``push(stats)`` adds one analysed frame and returns the window's feature vector
    (float32, shape ``(N_FEATURES,)``). A recalibration of the background clears the
    window, so a lighting change cannot leak into the next second's features.
    """

    length: int
    _frames: deque = None  # type: ignore[assignment]
    _last_brightness: float | None = None

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"window length must be >= 1 frame, got {self.length}")
        self._frames = deque(maxlen=self.length)

    def push(self, stats: FrameStats) -> np.ndarray:
        delta = 0.0 if self._last_brightness is None else abs(stats.brightness - self._last_brightness)
        self._last_brightness = stats.brightness
        if stats.recalibrated:
            self._frames.clear()
        self._frames.append((stats, delta))
        fr = [s for s, _ in self._frames]
        fg = [s.fg_ratio for s in fr]
        mv = [s.motion_ratio for s in fr]
        return np.array(
            [
                sum(fg) / len(fg),
                max(fg),
                max(s.blob_ratio for s in fr),
                sum(s.blob_count for s in fr) / len(fr),
                sum(mv) / len(mv),
                max(mv),
                max(s.global_change for s in fr),
                max(d for _, d in self._frames),
            ],
            dtype=np.float32,
        )


def check_feature_contract(names: list[str] | tuple[str, ...], version: str) -> None:
    """Raise ValueError naming the first difference between a model's feature list and
    the one this code computes."""
    if str(version) != FEATURE_VERSION:
        raise ValueError(f"model expects feature version {version!r}, this edge computes {FEATURE_VERSION!r}")
    names = list(names)
    if names != list(FEATURE_NAMES):
        for i, (got, want) in enumerate(zip(names, FEATURE_NAMES, strict=False)):
            if got != want:
                raise ValueError(f"feature {i} is {got!r} in the model but {want!r} here (order or name differs)")
        raise ValueError(f"model has {len(names)} features, this edge computes {N_FEATURES}")
