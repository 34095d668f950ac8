"""Label files for clips: which zones to watch and when something abnormal happens.

Format (JSON, one file per clip)::

    {
      "clip": "../clips/lobby.mp4",          # path relative to this file
      "camera": {"name": "lobby",            # zones/masks as in the component config,
                 "zones": [{"name": "room", "polygon": [[0,0],[1,0],[1,1],[0,1]]}],
                 "masks": []},                # coordinates normalised 0..1
      "abnormal": [{"start_s": 6, "end_s": 20, "label": "person"}, ...]
    }                                         # media seconds, end exclusive

A window is labelled 1 when the media time of the frame that closes it falls inside an
abnormal interval, else 0. ``label`` (optional, a COCO label of the object detector)
says what is in view during the interval, so evaluation can report per label; a zone
may give ``objects``/``filters``/``masks``/``motion_only`` as in the component config.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_component.config import Polygon, Zone
from edge_component.objects.settings import Label

# An interval may end up to this long after the clip's last analysed frame: a labeller
# rounding "until the end" up to the next second, not a clip cut short.
END_TOLERANCE_S = 1.0


class LabelError(ValueError):
    """A label file is unreadable or inconsistent; the message names the file and key."""


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    label: Label | None = Field(None, description="what is in view, e.g. person; absent: not labelled per object")

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class LabelCamera(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    zones: list[Zone] = Field(min_length=1)
    masks: list[Polygon] = Field(default_factory=list)


class ClipLabels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    clip: str
    camera: LabelCamera
    abnormal: list[Interval]
    notes: str = ""
    attribution: str = ""

    @model_validator(mode="after")
    def _intervals_apart(self) -> ClipLabels:
        # Two overlapping intervals are one event labelled twice, or a typo: the
        # evaluation would count one alert against two events.
        ordered = sorted(enumerate(self.abnormal), key=lambda p: p[1].start_s)
        for (i, a), (j, b) in pairwise(ordered):
            if b.start_s < a.end_s:
                raise ValueError(
                    f"abnormal intervals {i} ({a.start_s}-{a.end_s} s) and {j} "
                    f"({b.start_s}-{b.end_s} s) overlap; merge them into one event"
                )
        return self

    def beyond(self, end_s: float) -> list[Interval]:
        """The abnormal intervals that run past ``end_s`` (media s, where the clip ends)
        by more than :data:`END_TOLERANCE_S`, in order of start."""
        return sorted((iv for iv in self.abnormal if iv.end_s > end_s + END_TOLERANCE_S), key=lambda iv: iv.start_s)

    def is_abnormal(self, time_s: float) -> bool:
        return any(iv.start_s <= time_s < iv.end_s for iv in self.abnormal)


def not_utf8(lines: Iterable[bytes]) -> str:
    """Where the first line of ``lines`` that is not UTF-8 is, for an error message."""
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return (
                f"line {number} is not UTF-8 text (byte 0x{line[exc.start]:02x}, byte {exc.start + 1} of the line); "
                "save the file as UTF-8"
            )
    return "not UTF-8 text; save the file as UTF-8"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise LabelError(f"duplicate keys {duplicates}")
    return dict(pairs)


def load_labels(path: str | Path) -> tuple[ClipLabels, Path]:
    """Read a label file (UTF-8, with or without a byte-order mark); returns the labels
    and the clip's resolved path.

    Raises LabelError naming the file and the bad key (a duplicated key too), a file
    that is not UTF-8 (naming the line), or a missing clip.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        labels = ClipLabels.model_validate(json.loads(data.decode("utf-8-sig"), object_pairs_hook=_unique_keys))
    except UnicodeDecodeError:
        raise LabelError(f"{path}: {not_utf8(data.splitlines())}") from None
    except (OSError, json.JSONDecodeError, LabelError) as exc:
        raise LabelError(f"{path}: cannot read label file: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise LabelError(f"{path}: {problems}") from None
    clip = (path.parent / labels.clip).resolve()
    if not clip.is_file():
        raise LabelError(f"{path}: clip not found: {clip}")
    return labels, clip
