"""What one camera's run produced: counters for the camera report and telemetry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_component.capture.frames import CaptureStats


@dataclass
class CameraReport:
    camera: str
    stats: CaptureStats
    wall_s: float = 0.0
    inference_s: float = 0.0
    windows: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)  # every message published
    failed: list[dict[str, Any]] = field(default_factory=list)  # messages the publisher refused
    snapshot_errors: int = 0  # snapshots that could not be written (disk full, permissions)
    invalid_scores: int = 0  # windows whose model output was not a probability (NaN, outside 0..1)
    blank_frames: int = 0  # analysed frames of one flat colour, skipped (a camera sending only these is blind)
    recalibrations: int = 0  # background relearnt after lighting or scene changes
    detector_calls: int = 0  # object detector invocations (one per region)
    detected_frames: int = 0  # analysed frames the detector ran on
    detect_s: float = 0.0  # wall time in the detection stage (crops, detector, NMS)
    colour_s: float = 0.0  # wall time decoding colour images of replayed frames to detect on
    stopped: bool = False  # the run was told to stop before its source ended

    @property
    def source_fps(self) -> float:  # source frames processed per wall-clock second
        return self.stats.frames_in / self.wall_s if self.wall_s else 0.0

    @property
    def starts(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["event_type"] == "start"]
