"""What a person receives for a start alert (and for an end whose camera went offline
during the event, and for an update that brings the event's uploaded snapshot), and the
SNS publish that sends it.

:func:`format_notification` turns a validated alert into a :class:`Notification`: an
e-mail subject, a plain-text body, one SMS worth of text and the message attributes
subscribers filter on. :func:`publish` sends it as one SNS message with
``MessageStructure="json"`` so e-mail subscribers get the body and SMS subscribers the
short text.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil_alerts.evidence import own_snapshot_key
from vigil_alerts.feedback import FeedbackLinks
from vigil_alerts.receipt import ClockCheck
from vigil_alerts.sms import compose_sms, sms_length
from vigil_alerts.subject import place
from vigil_alerts.validation import parse_timestamp

logger = logging.getLogger(__name__)

PRODUCT = "Vigil"
# SNS: "less than 100 characters", no line breaks or control characters. Kept ASCII
# too, because e-mail subjects are 7-bit unless encoded.
SUBJECT_MAX = 99
# A start alert delivered this long after the event began says so (the device's
# outbox held it while offline).
LATE_AFTER = timedelta(minutes=5)
SMS_TYPE = "Transactional"
LABEL_WIDTH = 12  # "Suppressed: "
# How long a presigned snapshot link works at most (the Lambda role's session may end
# it sooner: a presigned URL dies with the credentials that signed it).
SNAPSHOT_LINK_S = 24 * 3600


@dataclass(frozen=True)
class Suppressed:
    """Start alerts of one camera the throttle held back since the last notification."""

    count: int
    since: datetime | None = None
    max_per_window: int | None = None
    window_s: int | None = None


@dataclass(frozen=True)
class Notification:
    """One SNS message: ``subject`` (e-mail), ``body`` (e-mail and default), ``sms``
    (one SMS) and ``attributes`` (name -> string value; all sent as String)."""

    subject: str
    body: str
    sms: str
    attributes: dict[str, str] = field(default_factory=dict)


def resolve_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; UTC (and an error log) if it is unknown, so a bad
    ``TIME_ZONE`` shows wrong clock times rather than losing the alert."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.error("unknown time zone %r, showing times in UTC", name)
        return ZoneInfo("UTC")


def severity(score: float, threshold: float) -> str:
    """``"high"`` in the upper half of the range above the threshold, ``"medium"`` at or
    above the threshold, ``"low"`` below it (a start sent on a debounced window)."""
    if score < threshold:
        return "low"
    if score >= threshold + (1.0 - threshold) / 2:
        return "high"
    return "medium"


def clean_subject(text: str) -> str:
    """``text`` as a valid SNS subject: accents folded to ASCII, other non-ASCII and
    control characters dropped, whitespace collapsed, at most 99 characters (cut at a
    word where one ends in the last 20). Names go through :func:`subject.place` first,
    which transliterates what this would drop."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    printable = "".join(ch if ch.isprintable() else " " for ch in folded)
    single = " ".join(printable.split())
    if len(single) <= SUBJECT_MAX:
        return single
    cut = single[: SUBJECT_MAX - 3]
    word_end = cut.rfind(" ")
    return (cut[:word_end] if word_end > len(cut) - 20 else cut).rstrip(" ,;:-") + "..."


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days"


def _both_times(moment: datetime, zone: ZoneInfo) -> str:
    """``moment`` in ``zone`` and in UTC, as an e-mail row shows it."""
    return f"{_local(moment, zone)} ({zone.key}); {_local(moment, ZoneInfo('UTC'))}"


def _where(site_name: str, stage: str) -> str:
    return f"{site_name} ({stage})" if stage else site_name


def _event_rows(
    site_name: str, stage: str, thing: str, camera: str, zone_name: str, started: str
) -> list[tuple[str, str]]:
    """The (label, value) rows an event's e-mail starts with: where, which camera, when."""
    return [
        ("Site", site_name),
        *([("Stage", stage)] if stage else []),
        ("Thing", thing),
        ("Camera", camera),
        ("Zone", zone_name),
        ("Started", started),
    ]


def _body(lead: str, rows: list[tuple[str, str]], closing: str) -> str:
    """An e-mail body: ``lead``, the ``rows`` as aligned "Label: value" lines, ``closing``."""
    return "\n".join([lead, "", *(f"{label + ':':<{LABEL_WIDTH}}{value}" for label, value in rows), "", closing])


def _sms_sender(names: list[str]) -> str:
    """ "Vigil Site (stage)", the opening of an SMS, from the names :func:`compose_sms` may have shortened."""
    shown = " ".join(filter(None, [names[0], f"({names[1]})" if names[1] else ""]))
    return f"{PRODUCT}{' ' + shown if shown else ''}"


def format_notification(
    alert: Mapping[str, Any],
    *,
    site_name: str = "Vigil",
    time_zone: str = "UTC",
    stage: str = "",
    evidence_bucket: str | None = None,
    snapshot_url: str | None = None,
    suppressed: Suppressed | None = None,
    now: datetime | None = None,
    clock: ClockCheck | None = None,
    feedback: FeedbackLinks | None = None,
) -> Notification:
    """The notification for a validated ``start`` alert (see ``alert.schema.json``).

    Times are shown in ``time_zone`` (IANA) and in UTC. ``snapshot_url`` (a presigned
    link, see :func:`snapshot_link`) is shown under the snapshot. ``now`` (aware,
    default the current time) decides whether the alert is marked as delivered late,
    unless ``clock`` (:func:`receipt.check_clock`) gives the receipt time. When
    ``clock`` finds the device's clock wrong, the receipt time is shown as when it
    happened, with what the device said and why it looks wrong. ``feedback`` adds the
    "false alarm" and "correct" links (:func:`with_feedback`).
    """
    zone = resolve_zone(time_zone)
    started = parse_timestamp(alert["started_at"], "started_at")
    now = now or datetime.now(UTC)
    score, threshold = float(alert["score"]), float(alert["threshold"])
    level = severity(score, threshold)
    camera, zone_name, thing = alert["camera"], alert["zone"], alert["thing_name"]
    where = _where(site_name, stage)
    clock_wrong = bool(clock and clock.wrong)
    shown_start = clock.received_at if clock_wrong else started
    as_received = f", as received (the device said {alert['started_at']})" if clock_wrong else ""
    delay = (clock.received_at if clock else now) - started

    # Schema 1.1: an object's event says what was seen ("Person in zone yard").
    seen = alert.get("label")
    what = f"{seen[:1].upper()}{seen[1:]} in zone {zone_name}" if seen else ""
    headline = f"{what}: {camera}" if seen else f"Intrusion: {camera}/{zone_name}"
    subject = clean_subject(f"[{PRODUCT}] {headline} at {place(site_name, stage, thing)}")

    rows = [
        *_event_rows(site_name, stage, thing, camera, zone_name, _both_times(shown_start, zone) + as_received),
        *([("Clock", "the device clock looks wrong: " + "; ".join(clock.problems))] if clock_wrong else []),
        *([("Seen", seen)] if seen else []),
        ("Score", f"{score:.2f} (threshold {threshold:.2f})"),
        ("Severity", level),
    ]
    snapshot = alert.get("snapshot")
    key = (snapshot or {}).get("s3_key")
    uploaded = bool(key and own_snapshot_key(key, thing))
    if snapshot:
        if key and not uploaded:
            rows.append(
                (
                    "Snapshot",
                    f"{snapshot['file']} (uploaded under a key outside this thing's snapshot prefix; not shown)",
                )
            )
        elif snapshot.get("s3_key") and evidence_bucket:
            rows.append(("Snapshot", f"{snapshot['file']}, s3://{evidence_bucket}/{snapshot['s3_key']}"))
        elif snapshot.get("s3_key"):
            rows.append(("Snapshot", f"{snapshot['file']}, evidence bucket key {snapshot['s3_key']}"))
        else:
            rows.append(("Snapshot", f"{snapshot['file']} (kept on the device)"))
        if snapshot_url and uploaded:
            rows.append(("Link", f"{snapshot_url} (valid for up to {_duration(timedelta(seconds=SNAPSHOT_LINK_S))})"))
    if alert.get("model_sha256"):
        rows.append(("Model", f"sha256 {alert['model_sha256'][:16]}"))
    rows.append(("Event ID", alert["event_id"]))
    if delay > LATE_AFTER and not clock_wrong:
        rows.append(("Delivered", f"{_duration(delay)} after the event started"))
    if suppressed and suppressed.count:
        since = f" since {_local(suppressed.since, zone)}" if suppressed.since else ""
        rule = (
            f" (at most {suppressed.max_per_window} per {_duration(timedelta(seconds=suppressed.window_s))})"
            if suppressed.max_per_window and suppressed.window_s
            else ""
        )
        rows.append(("Suppressed", f"{suppressed.count} earlier alert(s) from this camera not sent{since}{rule}"))

    body = _body(
        f"{what} (camera {camera}) at {where}."
        if seen
        else f"Intrusion detected by camera {camera} (zone {zone_name}) at {where}.",
        rows,
        f"Video stays on the device; only this alert{' and its snapshot' if uploaded else ''} left it.",
    )

    held = f" +{suppressed.count} held" if suppressed and suppressed.count else ""
    when = shown_start.astimezone(zone).strftime("%H:%M %Z") + (" rcvd, device clock wrong" if clock_wrong else "")
    extras = (f", score {score:.2f}", f". Event {alert['event_id'][:8]}")

    def render_sms(names: list[str], keys: list[str], kept: int) -> str:
        return (
            f"{_sms_sender(names)}: {seen or 'intrusion'} {keys[0]}/{keys[1]} {when}"
            f"{extras[0] if kept > 0 else ''}{held}{extras[1] if kept > 1 else ''}"
        )

    sms = compose_sms(render_sms, names=[site_name, stage], keys=[camera, zone_name], extras=len(extras))

    attributes = {"severity": level, "thing_name": thing, "camera": camera, "zone": zone_name}
    return with_feedback(Notification(subject=subject, body=body, sms=sms, attributes=attributes), feedback, zone)


def with_feedback(notification: Notification, links: FeedbackLinks | None, zone: ZoneInfo) -> Notification:
    """``notification`` with the two feedback links at the end of its body, and of its
    SMS only where they still fit one text (a signed link is ~250 characters, so in
    practice the SMS stays as it was and the links go by e-mail only)."""
    if links is None:
        return notification
    block = "\n".join(
        [
            "",
            "Was this alert right? One click tells Vigil, and teaches its model this site:",
            f"{'False alarm:':<{LABEL_WIDTH + 1}}{links.false_alarm}",
            f"{'Correct:':<{LABEL_WIDTH + 1}}{links.correct}",
            f"(links work until {_local(links.expires, zone)}; the first answer counts)",
        ]
    )
    sms = f"{notification.sms} False alarm: {links.false_alarm} Correct: {links.correct}"
    _, used, allowed = sms_length(sms)
    return Notification(
        subject=notification.subject,
        body=notification.body + "\n" + block,
        sms=sms if used <= allowed else notification.sms,
        attributes=notification.attributes,
    )


def format_held_summary(
    thing: str,
    camera: str,
    held: Suppressed,
    *,
    site_name: str = "Vigil",
    time_zone: str = "UTC",
    stage: str = "",
    now: datetime | None = None,
) -> Notification:
    """The notification for start alerts of one camera that the throttle held back and
    no later notification reported (sent by the flush schedule once the window closes)."""
    zone = resolve_zone(time_zone)
    now = now or datetime.now(UTC)
    where = _where(site_name, stage)
    since = f" since {_local(held.since, zone)}" if held.since else ""
    rule = (
        f" (at most {held.max_per_window} per {_duration(timedelta(seconds=held.window_s))})"
        if held.max_per_window and held.window_s
        else ""
    )
    subject = clean_subject(f"[{PRODUCT}] {held.count} alerts held: {camera} at {place(site_name, stage, thing)}")
    body = "\n".join(
        [
            f"{held.count} alert(s) from camera {camera} of thing {thing} were not sent{since}{rule}.",
            "",
            f"{'Site:':<{LABEL_WIDTH}}{where}",
            f"{'Until:':<{LABEL_WIDTH}}{_local(now, zone)} ({zone.key})",
            "",
            "The camera may be watching a busy scene: check it, or its zone and schedule.",
        ]
    )

    sms_since = f" since {held.since.astimezone(zone).strftime('%H:%M %Z')}" if held.since else ""

    def render_sms(names: list[str], keys: list[str], _kept: int) -> str:
        return f"{_sms_sender(names)}: {held.count} more alerts held, camera {keys[0]}{sms_since}"

    sms = compose_sms(render_sms, names=[site_name, stage], keys=[camera])
    return Notification(subject, body, sms, {"severity": "summary", "thing_name": thing, "camera": camera})


def format_offline_end(
    alert: Mapping[str, Any],
    *,
    site_name: str = "Vigil",
    time_zone: str = "UTC",
    stage: str = "",
    feedback: FeedbackLinks | None = None,
) -> Notification:
    """The notification for a validated ``end`` alert whose ``end_reason`` is
    ``camera_offline``: the camera lost its stream while the event was open (an intruder
    may have unplugged it), so its start's notification is the last word from it."""
    zone = resolve_zone(time_zone)
    started = parse_timestamp(alert["started_at"], "started_at")
    lost = parse_timestamp(alert.get("ended_at") or alert["sent_at"], "ended_at")
    camera, zone_name, thing = alert["camera"], alert["zone"], alert["thing_name"]
    where = _where(site_name, stage)
    subject = clean_subject(f"[{PRODUCT}] Camera offline during an event: {camera} at {place(site_name, stage, thing)}")
    rows = [
        *_event_rows(site_name, stage, thing, camera, zone_name, _both_times(started, zone)),
        ("Last frame", _both_times(lost, zone)),
        *([("Seen", alert["label"])] if alert.get("label") else []),
        ("Event ID", alert["event_id"]),
    ]
    body = _body(
        f"Camera {camera} (zone {zone_name}) at {where} went offline during an event: its video stream was lost.",
        rows,
        "The camera may have been unplugged or covered. A new alert follows if it sees motion once it is back.",
    )
    when = lost.astimezone(zone).strftime("%H:%M %Z")

    def render_sms(names: list[str], keys: list[str], _kept: int) -> str:
        return f"{_sms_sender(names)}: camera {keys[0]}/{keys[1]} offline during an event {when}"

    sms = compose_sms(render_sms, names=[site_name, stage], keys=[camera, zone_name])
    attributes = {"severity": "offline", "thing_name": thing, "camera": camera, "zone": zone_name}
    return with_feedback(Notification(subject, body, sms, attributes), feedback, zone)


def format_snapshot_update(
    alert: Mapping[str, Any],
    *,
    snapshot_url: str,
    site_name: str = "Vigil",
    time_zone: str = "UTC",
    stage: str = "",
    evidence_bucket: str | None = None,
) -> Notification:
    """The follow-up for a validated ``update`` alert whose ``snapshot.s3_key`` the device
    uploaded (after the start went out): "Snapshot of" the event, with ``snapshot_url``
    (:func:`snapshot_link`). The caller has checked the key with ``own_snapshot_key``;
    ``ValueError`` if the alert carries no ``snapshot.s3_key``."""
    snapshot = alert.get("snapshot") or {}
    key = snapshot.get("s3_key")
    if not key:
        raise ValueError("a snapshot follow-up needs the alert's snapshot.s3_key")
    zone = resolve_zone(time_zone)
    started = parse_timestamp(alert["started_at"], "started_at")
    camera, zone_name, thing = alert["camera"], alert["zone"], alert["thing_name"]
    seen = alert.get("label")
    where = _where(site_name, stage)
    what = f"{seen} in zone {zone_name}" if seen else f"intrusion in zone {zone_name}"
    subject = clean_subject(f"[{PRODUCT}] Snapshot of {what}: {camera} at {place(site_name, stage, thing)}")
    stored = f"s3://{evidence_bucket}/{key}" if evidence_bucket else f"evidence bucket key {key}"
    rows = [
        *_event_rows(site_name, stage, thing, camera, zone_name, _both_times(started, zone)),
        *([("Seen", seen)] if seen else []),
        ("Snapshot", f"{snapshot['file']}, {stored}"),
        ("Link", f"{snapshot_url} (valid for up to {_duration(timedelta(seconds=SNAPSHOT_LINK_S))})"),
        ("Event ID", alert["event_id"]),
    ]
    body = _body(
        f"Snapshot of the {what} seen by camera {camera} at {where}.",
        rows,
        "Video stays on the device; only the alert and this snapshot left it.",
    )
    when = started.astimezone(zone).strftime("%H:%M %Z")

    # A presigned link is several hundred characters: the text points at the e-mail instead.
    def render_sms(names: list[str], keys: list[str], _kept: int) -> str:
        return f"{_sms_sender(names)}: snapshot of {keys[0]}/{keys[1]} {when} event sent by e-mail"

    sms = compose_sms(render_sms, names=[site_name, stage], keys=[camera, zone_name])
    attributes = {"severity": "snapshot", "thing_name": thing, "camera": camera, "zone": zone_name}
    return Notification(subject, body, sms, attributes)


def snapshot_link(s3_client: Any, bucket: str, key: str, expires_s: int = SNAPSHOT_LINK_S) -> str:
    """A presigned GET URL for the snapshot ``key`` in ``bucket``; computed locally by
    boto3, no request is sent."""
    return s3_client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s)


def publish(sns_client: Any, topic_arn: str, notification: Notification) -> str:
    """Publish ``notification`` to ``topic_arn``; returns the SNS MessageId.

    Errors from SNS propagate (the invocation fails and Lambda retries it).
    """
    attributes = {name: {"DataType": "String", "StringValue": value} for name, value in notification.attributes.items()}
    attributes["AWS.SNS.SMS.SMSType"] = {"DataType": "String", "StringValue": SMS_TYPE}
    response = sns_client.publish(
        TopicArn=topic_arn,
        Subject=notification.subject,
        Message=json.dumps({"default": notification.body, "email": notification.body, "sms": notification.sms}),
        MessageStructure="json",
        MessageAttributes=attributes,
    )
    return response["MessageId"]
