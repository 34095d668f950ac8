"""Configuration of the object stage, as leaf models: they import nothing from the code
that uses them (only the COCO label list), so the component configuration, the stage
config in ``cdk.json`` and the tests can all validate against them.

Vocabulary follows Frigate's (``objects``, ``filters``, ``min_score``, ``threshold``,
``mask``; docs.frigate.video/configuration/object_filters): a zone watches the labels in
``objects`` (default ``[person]``); a detection counts for a label only if it scores at
least ``min_score`` in its frame, and a track counts only once the median of its recent
scores reaches ``threshold``. ``motion_only: true`` keeps a zone on motion alone (for
what COCO has no good label for, such as cars seen from directly above).

Every model is frozen and ``extra="forbid"``, so a misspelt key is an error that names
the key; an unknown label is refused with the key and the nearest COCO names.
Coordinates are fractions of the frame (0..1, origin top-left), as for zones.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .labels import KNOWN_LABELS

DEFAULT_OBJECTS = ("person",)


def _known_label(label: str) -> str:
    if label not in KNOWN_LABELS:
        near = difflib.get_close_matches(label, sorted(KNOWN_LABELS), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else " (see edge_component/objects/labels.py)"
        raise ValueError(f"{label!r} is not a label of the COCO detector{hint}")
    return label


Label = Annotated[str, AfterValidator(_known_label)]
Point = Annotated[tuple[float, float], Field(description="(x, y), each 0..1 of frame width/height")]


class _Leaf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        # YAML reads yes/no/on/off as booleans, and pydantic would take True as 1.0.
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(data.get(name), bool) and field.annotation in (int, float):
                    raise ValueError(f"{name}: expected a number, got {str(data[name]).lower()}")
        return data


class LabelFilter(_Leaf):
    """Per-label scores (0..1). Frigate's defaults: 0.5 per frame, 0.7 on the median."""

    min_score: float = Field(0.5, ge=0, le=1, description="a detection scoring less in its frame is ignored")
    threshold: float = Field(
        0.7, ge=0, le=1, description="a track counts once the median of its recent scores reaches this"
    )

    @model_validator(mode="after")
    def _threshold_reachable(self) -> LabelFilter:
        if self.threshold < self.min_score:
            raise ValueError(
                f"threshold ({self.threshold}) is below min_score ({self.min_score}): "
                "a track's median of scores that each reach min_score is at least min_score"
            )
        return self


class ObjectMask(_Leaf):
    """An area where objects are ignored: a detection whose bottom centre lies inside."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    polygon: list[Point] = Field(min_length=3, max_length=64)

    @model_validator(mode="after")
    def _inside_unit_square(self) -> ObjectMask:
        for x, y in self.polygon:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"polygon: point ({x}, {y}) is outside 0..1; coordinates are fractions of the frame")
        return self


class ZoneObjects(_Leaf):
    """What counts in one zone: labels, their scores, object masks, or motion only."""

    objects: list[Label] = Field(
        default_factory=lambda: list(DEFAULT_OBJECTS),
        max_length=len(KNOWN_LABELS),
        description="labels that count in this zone",
    )
    filters: dict[Label, LabelFilter] = Field(default_factory=dict, description="per-label min_score and threshold")
    masks: list[ObjectMask] = Field(default_factory=list, description="areas where objects are ignored")
    motion_only: bool = Field(False, description="events from motion alone, as before objects were detected")

    @model_validator(mode="after")
    def _consistent(self) -> ZoneObjects:
        if self.motion_only:
            # The default objects are allowed: a dumped configuration (the runtime hands
            # each camera worker JSON) writes them out.
            if self.objects != list(DEFAULT_OBJECTS) or self.filters:
                raise ValueError("motion_only: a motion-only zone watches no labels; remove objects and filters")
            return self
        if not self.objects:
            raise ValueError("objects: list at least one label, or set motion_only: true")
        if len(set(self.objects)) != len(self.objects):
            raise ValueError(f"objects: a label is listed twice in {self.objects}")
        unwatched = sorted(set(self.filters) - set(self.objects))
        if unwatched:
            raise ValueError(
                f"filters: {unwatched} not in objects {self.objects}; a filter for a label "
                "the zone does not watch has no effect"
            )
        return self

    def filter_for(self, label: str) -> LabelFilter:
        """The label's filter, or the defaults."""
        return self.filters.get(label, LabelFilter())


class RegionSettings(_Leaf):
    """Square crops around motion (frame pixels)."""

    min_size: int = Field(160, ge=32, le=4096, description="smallest region side (px of the source frame)")
    multiplier: float = Field(1.5, ge=1.0, le=4.0, description="region side = longer side of the motion box times this")
    min_box_px: int = Field(
        64, ge=1, le=1_000_000, description="motion boxes smaller than this (px^2 of the source frame) are noise"
    )


class TrackingSettings(_Leaf):
    """Tracks across analysed frames (5 per second by default)."""

    min_hits: int = Field(2, ge=1, le=100, description="consecutive detections before a track exists")
    max_misses: int = Field(
        10, ge=2, le=1000, description="analysed frames without a detection after which a track ends"
    )
    distance_threshold: float = Field(
        2.5,
        gt=0,
        le=100,
        description="largest change of bottom centre and size (relative to the box) still matched to the same track",
    )
    score_history: int = Field(
        5, ge=1, le=100, description="recent analysed frames whose median score decides a track (5: 1 s at 5 per s)"
    )
    redetect_every: int = Field(
        5,
        ge=1,
        le=100,
        description="a confirmed track at rest (no motion outside its box) is re-detected only every this many "
        "analysed frames; 1: every frame",
    )

    @model_validator(mode="after")
    def _init_before_end(self) -> TrackingSettings:
        if self.min_hits >= self.max_misses:
            raise ValueError(f"min_hits ({self.min_hits}) must be below max_misses ({self.max_misses})")
        return self
