"""Per-frame motion analysis inside zones: a background model that keeps a person who
stands still in the foreground, and recalibrates on a sudden change of the whole
frame (lights switched, infrared mode, auto exposure) instead of raising an alert.
A blank frame (one flat colour: a decoder's black first frame, a glitch, a camera
switching modes) carries no information: it neither starts nor changes the background.

Sources: selective running-average background subtraction (Piccardi, "Background
subtraction techniques: a review", 2004, section 2); OpenCV ``accumulateWeighted``,
``findContours`` (Suzuki and Abe, 1985) for blobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_component.capture.luma import STUDIO_TO_FULL
from edge_component.config import MotionSettings, Polygon
from edge_component.geometry import polygon_mask

# Standard deviation (grey levels, on the blurred analysis image) below which a frame is
# one flat colour. Real scenes, even dark ones, have sensor noise and texture well above
# it: the lowest over every frame of six CCTV-style test clips (the examples among them) is 9.6.
BLANK_STD = 1.5


@dataclass(frozen=True, slots=True)
class FrameStats:
    """What one analysed frame says about one zone. Ratios are 0..1 of the zone's area
    (``global_change`` of the whole frame); ``brightness`` is the frame's mean grey 0..1."""

    fg_ratio: float
    blob_ratio: float
    blob_count: int
    motion_ratio: float
    global_change: float
    brightness: float
    recalibrated: bool
    boxes: tuple[tuple[int, int, int, int], ...] = ()  # (x, y, w, h) in source-frame pixels


class MotionAnalyzer:
    """Analyses frames of one camera for a set of zones.

    ``analyse(luma, studio_range)`` takes a frame's luma (uint8, H x W, any size;
    ``studio_range`` True if it spans 16..235, as a video's Y plane usually does; a
    BGR image, H x W x 3, is turned to grey first) and returns one :class:`FrameStats`
    per zone, in the order the zones were given. The first frame only initialises the
    background (all stats zero).
    """

    def __init__(
        self,
        settings: MotionSettings,
        zones: Sequence[Polygon],
        masks: Sequence[Polygon] | None = None,
        analyses_per_s: float = 5.0,
    ):
        self.settings = settings
        self.zones = zones
        self.masks = masks or []
        self._shape: tuple[int, int] | None = None  # source (h, w)
        self._background: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._zone_masks: list[np.ndarray] = []
        self._kernel = np.ones((3, 3), np.uint8)
        self.recalibrations = 0
        self.blank_frames = 0  # frames skipped as one flat colour
        self._brightness: float | None = None  # of the last frame that was not blank
        self._widespread = 0  # consecutive analysed frames with most of the frame changed
        self._scene_change_frames = max(1, round(settings.scene_change_s * analyses_per_s))

    def _prepare(self, frame: np.ndarray, studio_range: bool) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._shape != (h, w):
            # First frame, or the stream came back at another resolution: start over.
            self._shape = (h, w)
            aw = self.settings.analysis_width
            ah = max(1, round(h * aw / w))
            self._size = (aw, ah)
            self._scale = (w / aw, h / ah)
            ignore = polygon_mask(self.masks, aw, ah)
            self._zone_masks = [polygon_mask([z], aw, ah) & (1 - ignore) for z in self.zones]
            self._zone_areas = [max(1, int(m.sum())) for m in self._zone_masks]
            self._background = None
            self._previous = None
        # Grey first, then halve with pyrDown (blurs, so no aliasing) and finish with a
        # linear resize: about 10x cheaper than INTER_AREA on the colour frame. Studio
        # range is expanded on the small image, where the lookup costs least.
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        while grey.shape[1] >= 2 * self._size[0]:
            grey = cv2.pyrDown(grey)
        if (grey.shape[1], grey.shape[0]) != self._size:
            grey = cv2.resize(grey, self._size, interpolation=cv2.INTER_LINEAR)
        if studio_range:
            grey = cv2.LUT(grey, STUDIO_TO_FULL)
        k = self.settings.blur_kernel | 1
        return cv2.GaussianBlur(grey, (k, k), 0) if k > 1 else grey

    def _photometric_correction(self, grey: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """The background under the frame's lighting: ``gain * background + offset``
        (float32), fitted by least squares on the pixels that are not moving (what moves
        is an object, not the light), every 4th pixel each way."""
        still = moving[::4, ::4] == 0
        b = self._background[::4, ::4][still]
        g = grey[::4, ::4][still].astype(np.float32)
        if b.size < 50 or float(b.std()) < 1e-3:  # nearly everything moves, or a flat image
            b, g = self._background.ravel(), grey.ravel().astype(np.float32)
        gain, offset = np.polyfit(b, g, 1) if float(b.std()) > 1e-3 else (1.0, float(g.mean() - b.mean()))
        return np.clip(self._background * np.float32(gain) + np.float32(offset), 0, 255).astype(np.float32)

    def _changed(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """uint8 mask, 1 where ``a`` and ``b`` differ by more than the threshold."""
        return cv2.threshold(cv2.absdiff(a, b), self.settings.diff_threshold, 1, cv2.THRESH_BINARY)[1]

    def analyse(self, luma: np.ndarray, studio_range: bool = False) -> list[FrameStats]:
        grey = self._prepare(luma, studio_range)
        mean, std = cv2.meanStdDev(grey)
        brightness = float(mean[0, 0]) / 255.0
        if float(std[0, 0]) < BLANK_STD:
            # Learning a blank frame would make the whole next real frame "foreground" for
            # as long as the background takes to relearn; skip it, as if it never came.
            self.blank_frames += 1
            kept = self._brightness if self._brightness is not None else brightness
            return [FrameStats(0.0, 0.0, 0, 0.0, 0.0, kept, False) for _ in self.zones]
        self._brightness = brightness
        if self._background is None:
            self._background = grey.astype(np.float32)
            self._previous = grey
            return [FrameStats(0.0, 0.0, 0, 0.0, 0.0, brightness, False) for _ in self.zones]

        s = self.settings
        background_u8 = cv2.convertScaleAbs(self._background)
        fg = self._changed(grey, background_u8)
        global_change = cv2.countNonZero(fg) / fg.size
        moving = self._changed(grey, self._previous)
        self._previous = grey

        recalibrated = False
        if global_change > s.recalibrate_fraction / 5:
            # Much of the frame differs. Lighting (lights, infrared switch, auto exposure,
            # a fade) changes gain and offset: fit both between background and frame on
            # the pixels that are not moving and correct the background, so whoever is in
            # view stays foreground and nothing is absorbed. Tried from a fifth of the
            # recalibration fraction, so a gradual change is followed step by step
            # (docs/decisions.md, "Lighting correction").
            corrected = self._photometric_correction(grey, moving)
            fg_corrected = self._changed(grey, cv2.convertScaleAbs(corrected))
            left = cv2.countNonZero(fg_corrected) / fg.size
            # Most of the frame: lighting if it leaves no more than the fraction. Less of
            # it: lighting only if it explains at least half, which a person does not.
            lighting = (
                left <= s.recalibrate_fraction if global_change > s.recalibrate_fraction else left <= global_change / 2
            )
            if lighting:
                self._background = corrected
                fg = fg_corrected
                recalibrated = True
                self.recalibrations += 1
                self._widespread = 0
            elif global_change > s.recalibrate_fraction:
                # Not lighting: a new scene (camera moved) or something filling the view.
                # Learn it anew only if it stays for scene_change_s.
                self._widespread += 1
                if self._widespread >= self._scene_change_frames:
                    self._background = grey.astype(np.float32)
                    self.recalibrations += 1
                    self._widespread = 0
                    return [FrameStats(0.0, 0.0, 0, 0.0, global_change, brightness, True) for _ in self.zones]
            else:
                self._widespread = 0
        else:
            self._widespread = 0

        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)
        # Selective update: learn the still scene fast, absorb foreground only slowly.
        cv2.accumulateWeighted(grey, self._background, s.background_alpha, mask=cv2.compare(fg, 0, cv2.CMP_EQ))
        if s.foreground_alpha > 0:
            cv2.accumulateWeighted(grey, self._background, s.foreground_alpha, mask=fg)

        out = []
        sx, sy = self._scale
        for zmask, area in zip(self._zone_masks, self._zone_areas, strict=True):
            zfg = cv2.bitwise_and(fg, zmask)
            fg_pixels = int(cv2.countNonZero(zfg))
            blobs: list[tuple[float, tuple[int, int, int, int]]] = []
            if fg_pixels:
                # Outer contours: blobs as a person sees them (holes filled), far cheaper
                # than labelling every pixel on a mostly empty mask.
                contours, _ = cv2.findContours(zfg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                min_area = max(1.0, s.min_blob_fraction * area)
                for c in contours:
                    a = cv2.contourArea(c)
                    if a >= min_area:
                        blobs.append((a, cv2.boundingRect(c)))
            boxes = tuple((int(x * sx), int(y * sy), int(w * sx), int(h * sy)) for _, (x, y, w, h) in blobs)
            out.append(
                FrameStats(
                    fg_ratio=fg_pixels / area,
                    blob_ratio=max(a for a, _ in blobs) / area if blobs else 0.0,
                    blob_count=len(blobs),
                    motion_ratio=cv2.countNonZero(cv2.bitwise_and(moving, zmask)) / area,
                    global_change=global_change,
                    brightness=brightness,
                    recalibrated=recalibrated,
                    boxes=boxes,
                )
            )
        return out
