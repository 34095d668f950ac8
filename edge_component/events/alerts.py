"""Alert messages: built from event transitions, validated against the shared schema
(``contracts/alert.schema.json``) before anything is published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from edge_component.contracts.alerts import SCHEMA_VERSION, validate_alert

from .decision import Transition


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_alert(
    tr: Transition,
    *,
    thing_name: str,
    camera: str,
    zone: str,
    threshold: float,
    clock_origin: datetime,
    media_time: bool,
    model_sha256: str | None = None,
    snapshot_file: str | None = None,
    label: str | None = None,
    box: list[float] | tuple[float, ...] | None = None,
    features: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The alert message for one transition, validated (AlertValidationError if not).

    ``clock_origin`` is the UTC wall time of tracker time 0, so tracker seconds map to
    wall-clock timestamps; ``media_time`` adds ``media_offset_s`` (replays of files).
    An object's event also carries its ``label`` and ``box`` (x0, y0, x1, y1, each 0..1
    of the frame), with ``score`` and ``threshold`` the label's median score and threshold.
    ``features`` (end messages only) is the event's sampled window feature vectors
    (:meth:`~edge_component.events.window_sample.WindowSample.message_part`). An end
    carries the transition's reason as ``end_reason`` (an END_* word of events.decision).
    """
    ev = tr.event
    msg: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": ev.event_id,
        "event_type": tr.kind,
        "sequence": ev.sequence,
        "thing_name": thing_name,
        "camera": camera,
        "zone": zone,
        "started_at": _iso(clock_origin + timedelta(seconds=ev.started_s)),
        "sent_at": _iso(clock_origin + timedelta(seconds=tr.time_s)),
        "score": round(float(tr.score if tr.kind == "start" else ev.peak_score), 4),
        "threshold": round(float(threshold), 4),
    }
    if tr.kind == "end" and ev.ended_s is not None:
        msg["ended_at"] = _iso(clock_origin + timedelta(seconds=ev.ended_s))
    if media_time:
        msg["media_offset_s"] = round(tr.time_s, 3)
    if model_sha256:
        msg["model_sha256"] = model_sha256
    if snapshot_file:
        msg["snapshot"] = {"file": snapshot_file}
    if label is not None:
        msg["label"] = label
    if box is not None:
        msg["box"] = [round(min(max(float(v), 0.0), 1.0), 4) for v in box]
    if tr.kind == "end" and tr.reason is not None:
        msg["end_reason"] = tr.reason
    if features is not None and tr.kind == "end":
        msg["features"] = features
    validate_alert(msg)
    return msg
