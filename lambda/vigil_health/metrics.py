"""Telemetry messages to CloudWatch metric data: what the health alarms watch.

One telemetry message (edge_component/runtime.py, every ``telemetry_every_s``) becomes:

- ``Heartbeat`` = 1, dimensions ``Stage``, ``Thing``: a device silent for three periods
  has no data points, which its alarm treats as breaching;
- per camera, dimensions ``Stage``, ``Thing``, ``Camera``: ``CameraRunning`` (1 if the
  camera's ``state`` is ``running``, else 0) and, when the camera analysed frames since
  the previous message (``recent``), ``BlankFrameRatio`` (blank / analysed frames, 0..1).
  Without ``recent`` (a device before telemetry 1.1) there is no ratio: the counters are
  totals since the component started, and a ratio of totals would hide a covered camera.

Each data point is dated by the message's ``sent_at`` (see :func:`measured_at`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

NAMESPACE = "Vigil/Health"
HEARTBEAT = "Heartbeat"
CAMERA_RUNNING = "CameraRunning"
BLANK_FRAME_RATIO = "BlankFrameRatio"
STATES = frozenset({"starting", "connecting", "running", "reconnecting", "restarting", "failed", "done", "stopped"})
# IoT thing names and camera names as the edge configuration allows them; both become dimension values.
_NAME = re.compile(r"^[a-zA-Z0-9:_.-]{1,128}$")
TOPIC_THING_KEY = "topic_thing_name"
# A device's sent_at further than this from the receipt is a wrong clock: the metric is dated on receipt.
MAX_CLOCK_SKEW = timedelta(hours=1)
# Cameras per message: the edge configuration allows 16 (edge_component/config.py). Each
# camera name is a new Camera dimension value, i.e. new custom metrics billed per month:
# a device must not mint thousands. VIGIL_MAX_CAMERAS overrides it in the handler.
MAX_CAMERAS = 16


class InvalidTelemetryError(ValueError):
    """A telemetry message that cannot become metrics; the message says what is wrong."""


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidTelemetryError(f"{where}: must be a whole number >= 0, got {value!r}")
    return value


def measured_at(message: dict[str, Any], now: datetime) -> datetime:
    """When the device measured: its ``sent_at`` (ISO 8601, UTC) if within
    :data:`MAX_CLOCK_SKEW` of ``now``, else ``now`` (a device with a wrong clock must not
    date metrics outside what alarms evaluate)."""
    sent = message.get("sent_at")
    try:
        at = datetime.fromisoformat(str(sent).replace("Z", "+00:00"))
    except ValueError:
        return now
    if at.tzinfo is None or abs(at - now) > MAX_CLOCK_SKEW:
        return now
    return at


def metric_data(
    message: Any,
    stage: str,
    now: datetime | None = None,
    *,
    max_cameras: int = MAX_CAMERAS,
    problems: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The ``PutMetricData`` ``MetricData`` for one telemetry message as the topic rule
    delivers it (the device's message plus ``topic_thing_name``).

    The thing is the topic's (the device can publish only under its own name), and the
    message's ``thing_name`` must agree. Raises :class:`InvalidTelemetryError` naming the
    first problem: not an object, no or mismatched thing, ``cameras`` not an object of
    objects or more than ``max_cameras`` of them, a bad camera name, an unknown
    ``state``, a counter (``recent``) that is not a whole number >= 0 or more blank
    frames than analysed.

    With ``problems`` (a list), a camera whose counters are bad does not reject the
    message: that camera's metrics are left out and its problem appended, so the
    Heartbeat and the other cameras still go out.
    """
    if not isinstance(message, dict):
        raise InvalidTelemetryError(f"telemetry must be a JSON object, got {type(message).__name__}")
    thing = message.get(TOPIC_THING_KEY, message.get("thing_name"))
    if not isinstance(thing, str) or not _NAME.match(thing):
        raise InvalidTelemetryError(f"{TOPIC_THING_KEY}: missing or not a thing name: {thing!r}")
    if message.get("thing_name", thing) != thing:
        raise InvalidTelemetryError(f"thing_name {message.get('thing_name')!r} is not the topic's thing {thing!r}")
    cameras = message.get("cameras")
    if not isinstance(cameras, dict):
        raise InvalidTelemetryError(f"cameras: must be an object of camera name -> stats, got {cameras!r}")
    if len(cameras) > max_cameras:
        raise InvalidTelemetryError(f"cameras: {len(cameras)} cameras, at most {max_cameras} per message")
    at = measured_at(message, now or datetime.now(UTC))
    data: list[dict[str, Any]] = [_datum(HEARTBEAT, 1.0, "Count", at, Stage=stage, Thing=thing)]
    for camera, stats in sorted(cameras.items()):
        where = f"cameras.{camera}"
        if not _NAME.match(camera):
            raise InvalidTelemetryError(f"{where}: not a camera name")
        if not isinstance(stats, dict):
            raise InvalidTelemetryError(f"{where}: must be an object, got {stats!r}")
        state = stats.get("state")
        if state not in STATES:
            raise InvalidTelemetryError(f"{where}.state: {state!r} is not one of {sorted(STATES)}")
        dims = {"Stage": stage, "Thing": thing, "Camera": camera}
        running = _datum(CAMERA_RUNNING, 1.0 if state == "running" else 0.0, "Count", at, **dims)
        try:
            ratio = _blank_ratio(stats.get("recent"), where)
        except InvalidTelemetryError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        data.append(running)
        if ratio is not None:
            data.append(_datum(BLANK_FRAME_RATIO, ratio, "None", at, **dims))
    return data


def _blank_ratio(recent: Any, where: str) -> float | None:
    """blank / analysed frames of a camera's ``recent`` counters; None without them or
    with nothing analysed. InvalidTelemetryError for bad counters."""
    if recent is None:
        return None
    if not isinstance(recent, dict):
        raise InvalidTelemetryError(f"{where}.recent: must be an object, got {recent!r}")
    analysed = _count(recent.get("analysed"), f"{where}.recent.analysed")
    blank = _count(recent.get("blank_frames"), f"{where}.recent.blank_frames")
    if blank > analysed:
        raise InvalidTelemetryError(f"{where}.recent: blank_frames {blank} > analysed {analysed}")
    return blank / analysed if analysed else None


def _datum(name: str, value: float, unit: str, at: datetime, **dimensions: str) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Timestamp": at,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Value": value,
        "Unit": unit,
    }
