"""Armed schedules: when a camera raises alerts.

A schedule is a time zone and a list of windows, each a set of weekdays and a local
start and end time. A window whose end is earlier than its start runs past midnight
(``22:00``-``06:00`` on ``fri`` covers Friday 22:00 to Saturday 06:00). No schedule
means always armed. Local times follow the zone's daylight-saving rules (zoneinfo).
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


class ArmedWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    start: time = Field(description="local time the window opens, a quoted 'HH:MM'")
    end: time = Field(description="local time it closes, 'HH:MM'; earlier than start means the next day")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _local_hh_mm(cls, value: object) -> time:
        # YAML 1.1 reads an unquoted 22:00 as the base-60 integer 1320; refuse to guess.
        if isinstance(value, time) and value.tzinfo is None:
            return value
        if not isinstance(value, str) or not _HHMM.match(value.strip()):
            raise ValueError(f"{value!r} is not a local time: write it as a quoted string 'HH:MM', e.g. '22:00'")
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))

    @model_validator(mode="after")
    def _not_empty(self) -> ArmedWindow:
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start:%H:%M}: the window would never be armed")
        return self

    def covers(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        day = DAYS[local.weekday()]
        if self.start <= self.end:
            return day in self.days and self.start <= t < self.end
        # Past midnight: the evening part belongs to the listed day, the morning part to the day after it.
        yesterday = DAYS[(local.weekday() - 1) % 7]
        return (day in self.days and t >= self.start) or (yesterday in self.days and t < self.end)


class ArmedSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    time_zone: str = "UTC"
    windows: list[ArmedWindow] = Field(min_length=1)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {tz!r}") from None
        return tz

    def is_armed(self, when: datetime) -> bool:
        """True if ``when`` (timezone-aware) falls in any window, in the schedule's zone."""
        if when.tzinfo is None:
            raise ValueError("is_armed needs a timezone-aware datetime")
        local = when.astimezone(ZoneInfo(self.time_zone))
        return any(w.covers(local) for w in self.windows)
