"""Label files for clips: which zones to watch and when something abnormal happens.

Format (JSON, one file per clip)::

    {
      "clip": "../clips/lobby.mp4",          # path relative to this file
      "camera": {"name": "lobby",            # zones/masks as in the component config,
                 "zones": [{"name": "room", "polygon": [[0,0],[1,0],[1,1],[0,1]]}],
                 "masks": []},                # coordinates normalised 0..1
      "abnormal": [{"start_s": 6, "end_s": 20}, ...]   # media seconds, end exclusive
    }

A window is labelled 1 when the media time of the frame that closes it falls inside an
abnormal interval, else 0.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_component.config import Polygon


class LabelError(ValueError):
    """A label file is unreadable or inconsistent; the message names the file and key."""


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Interval":
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class LabelCamera(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    zones: list[Polygon] = Field(min_length=1)
    masks: list[Polygon] = Field(default_factory=list)


class ClipLabels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    clip: str
    camera: LabelCamera
    abnormal: list[Interval]
    notes: str = ""
    attribution: str = ""

    def is_abnormal(self, time_s: float) -> bool:
        return any(iv.start_s <= time_s < iv.end_s for iv in self.abnormal)


def load_labels(path: str | Path) -> tuple[ClipLabels, Path]:
    """Read a label file; returns the labels and the clip's resolved path.

    Raises LabelError naming the file and the bad key, or a missing clip.
    """
    path = Path(path)
    try:
        labels = ClipLabels.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: cannot read label file: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise LabelError(f"{path}: {problems}") from None
    clip = (path.parent / labels.clip).resolve()
    if not clip.is_file():
        raise LabelError(f"{path}: clip not found: {clip}")
    return labels, clip
