"""One alert end to end, without Lambda: validate, then for a start alert notify
(through the optional deduplicator and throttle), for an end whose camera went
offline during the event notify that (deduplicated, not throttled), and for an update
that brings the event's uploaded snapshot send its link (deduplicated; held back with
its start). The handler and the local demo both call :func:`process_alert`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from vigil_alerts.delivery import CameraThrottle, EventDeduplicator
from vigil_alerts.evidence import SNAPSHOT_PREFIX, own_snapshot_key  # noqa: F401 (re-exported)
from vigil_alerts.feedback import FeedbackLinks, FeedbackSigner
from vigil_alerts.notify import (
    format_notification,
    format_offline_end,
    format_snapshot_update,
    publish,
    snapshot_link,
)
from vigil_alerts.receipt import CLOCK_SKEW_MAX_S, MAX_DELIVERY_DELAY_S, check_clock, split_receipt
from vigil_alerts.validation import TOPIC_THING_KEY, validate_alert
from vigil_feedback.store import record_end

logger = logging.getLogger(__name__)

# process_alert's "status" values.
NOTIFIED = "notified"
ACKNOWLEDGED = "acknowledged"  # update / end: valid, nobody is told
THROTTLED = "throttled"
DUPLICATE = "duplicate"
REFUSED = "refused"  # another stage's thing: not this stage's to notify about

# The end_reason (schema 1.2) of an event whose live camera lost its stream: worth telling.
CAMERA_OFFLINE = "camera_offline"
# What keys an event's snapshot follow-up apart from its start in the deduplicator.
SNAPSHOT_FOLLOW_UP = "snapshot"
# process_alert's "snapshot" values for an update carrying an s3_key it does not link.
FOREIGN_KEY = "foreign_key"  # outside snapshots/<the alert's thing>/
NO_BUCKET = "no_bucket"  # no evidence bucket or S3 client configured
START_HELD = "start_held"  # the throttle held the event's start back
START_UNSEEN = "start_unseen"  # no completed start yet: it may still be throttled


def process_alert(
    event: Any,
    *,
    sns_client: Any,
    topic_arn: str,
    site_name: str = "Vigil",
    time_zone: str = "UTC",
    stage: str = "",
    evidence_bucket: str | None = None,
    s3_client: Any = None,
    deduplicator: EventDeduplicator | None = None,
    throttle: CameraThrottle | None = None,
    now: datetime | None = None,
    clock_skew_max_s: int = CLOCK_SKEW_MAX_S,
    max_delivery_delay_s: int = MAX_DELIVERY_DELAY_S,
    owns_thing: Callable[[str], bool] | None = None,
    feedback: FeedbackSigner | None = None,
    events_table: str | None = None,
    dynamodb_client: Any = None,
    training_bucket: str | None = None,
    training_s3_client: Any = None,
) -> dict[str, Any]:
    """Handle one topic-rule event: the alert dict plus ``topic_thing_name``.

    With ``evidence_bucket`` and ``s3_client`` a snapshot the device uploaded under
    ``snapshots/<thing>/`` (``snapshot.s3_key``) gets a presigned link in the body.

    The event's ``received_at_ms`` (the rule's ``timestamp()``) is the reference for the
    device's clock (:mod:`vigil_alerts.receipt`: ahead by more than
    ``clock_skew_max_s``, or older than ``max_delivery_delay_s``, is a wrong clock, and
    the notification says so); without it ``now`` is.

    With ``owns_thing``, an event whose topic thing it rejects is ``"refused"`` before
    validation, and nothing is published: stages sharing an account never notify about
    each other's cameras (the topic rule filters them too; this holds if it did not).

    Raises ``InvalidAlertError`` (nothing published) if the event is not a valid alert
    of the thing in its topic; SNS and DynamoDB errors propagate.

    An ``end`` with ``end_reason`` ``camera_offline`` notifies that the camera went
    offline during the event (once per event with the deduplicator; not throttled: it
    follows a start that was let through or held, and says the camera is now dark).

    An ``update`` with ``snapshot.s3_key`` (the device uploaded the event's snapshot)
    sends "Snapshot of ..." with a presigned link, once per event with the
    deduplicator, only for a key under ``snapshots/<thing>/`` and only with
    ``evidence_bucket`` and ``s3_client``; otherwise it is ``"acknowledged"`` with
    ``snapshot`` saying why (``"foreign_key"``, ``"no_bucket"``). It takes no throttle
    slot, but when the deduplicator's record shows the event's start was throttled it
    stays silent too (``"throttled"``, ``snapshot`` ``"start_held"``): a held event
    must not come through by its picture; nor when it has no completed start yet
    (``"acknowledged"``, ``snapshot`` ``"start_unseen"``). Updates without ``s3_key`` stay silent.

    With ``feedback``, each notification carries its signed "false alarm" and "correct"
    links. With ``events_table`` and ``dynamodb_client``, every ``end`` is stored on its
    event (:func:`vigil_feedback.store.record_end`: its ``features``, for a verdict to
    turn into training rows) before anything is notified; ``"features_stored"`` in the
    result says whether it carried features. With ``training_bucket`` and
    ``training_s3_client`` too, an end whose event already has a verdict (given while it
    was open) writes its training rows then; ``"rows_key"`` in the result names them.

    Returns a JSON-serialisable dict: ``status`` (``"notified"``, ``"acknowledged"``
    for update/end, ``"throttled"``, ``"duplicate"`` for a start already handled, or
    ``"refused"``, then with ``thing_name`` only),
    ``event_id``, ``event_type``, ``thing_name``, ``camera``, ``device_clock`` (``"ok"``
    or ``"wrong"``), and for a notification
    ``message_id`` and ``held_reported`` (throttled alerts it summarised).
    ``now`` (aware datetime) defaults to the current time.
    """
    topic_thing = event.get(TOPIC_THING_KEY) if isinstance(event, dict) else None
    if owns_thing is not None and isinstance(topic_thing, str) and not owns_thing(topic_thing):
        return {"status": REFUSED, "thing_name": topic_thing[:128]}
    event, received_at = split_receipt(event)
    alert = validate_alert(event)
    moment = now or datetime.now(UTC)
    clock = check_clock(alert, received_at, now=moment, max_ahead_s=clock_skew_max_s, max_age_s=max_delivery_delay_s)
    summary = {key: alert[key] for key in ("event_id", "event_type", "thing_name", "camera")}
    summary["device_clock"] = "wrong" if clock.wrong else "ok"
    if alert["event_type"] == "end" and events_table and dynamodb_client is not None:
        rows = record_end(
            dynamodb_client,
            events_table,
            alert,
            ttl_s=feedback.link_s if feedback else 0,
            now=moment,
            s3=training_s3_client,
            bucket=training_bucket,
            stage=stage,
        )
        summary["features_stored"] = bool(alert.get("features"))
        if rows:
            summary["rows_key"] = rows
    offline_end = alert["event_type"] == "end" and alert.get("end_reason") == CAMERA_OFFLINE
    links = _links(feedback, alert, moment) if alert["event_type"] == "start" or offline_end else None
    if offline_end:
        return _notify_offline(alert, summary, sns_client, topic_arn, site_name, time_zone, stage, deduplicator, links)
    if alert["event_type"] == "update" and (alert.get("snapshot") or {}).get("s3_key"):
        return _notify_snapshot(
            alert,
            summary,
            sns_client=sns_client,
            topic_arn=topic_arn,
            site_name=site_name,
            time_zone=time_zone,
            stage=stage,
            evidence_bucket=evidence_bucket,
            s3_client=s3_client,
            deduplicator=deduplicator,
        )
    if alert["event_type"] != "start":
        return {**summary, "status": ACKNOWLEDGED}

    def notify_once(*, alert: dict[str, Any]) -> dict[str, Any]:
        admission = throttle.admit(alert["thing_name"], alert["camera"], moment) if throttle else None
        if admission and not admission.allowed:
            return {**summary, "status": THROTTLED}
        key = (alert.get("snapshot") or {}).get("s3_key")
        linkable = key and evidence_bucket and s3_client and own_snapshot_key(key, alert["thing_name"])
        link = snapshot_link(s3_client, evidence_bucket, key) if linkable else None
        notification = format_notification(
            alert,
            site_name=site_name,
            time_zone=time_zone,
            stage=stage,
            evidence_bucket=evidence_bucket,
            snapshot_url=link,
            suppressed=admission.held if admission else None,
            now=moment,
            clock=clock,
            feedback=links,
        )
        try:
            message_id = publish(sns_client, topic_arn, notification)
        except Exception:
            if admission:
                throttle.release(admission)
            raise
        if admission:
            throttle.settle(alert["thing_name"], alert["camera"], admission)
        held = admission.held.count if admission else 0
        return {**summary, "status": NOTIFIED, "message_id": message_id, "held_reported": held}

    return _once(deduplicator, notify_once, alert)


def _once(
    deduplicator: EventDeduplicator | None, notify_once: Callable[..., dict[str, Any]], alert: dict[str, Any]
) -> dict[str, Any]:
    """``notify_once(alert=alert)`` through ``deduplicator`` (keyed on the alert's thing and
    event_id), or directly without one; a repeat returns the first result as ``DUPLICATE``."""
    if deduplicator is None:
        return notify_once(alert=alert)
    result = deduplicator.run(notify_once, alert=alert)
    if result.pop("duplicate", False):
        return {**result, "status": DUPLICATE, "first_status": result["status"]}
    return result


def _links(feedback: FeedbackSigner | None, alert: dict[str, Any], moment: datetime) -> FeedbackLinks | None:
    """The notification's feedback links; None (logged) if they cannot be signed: an
    alert without its links beats an alert held back by a Secrets Manager outage."""
    if feedback is None:
        return None
    try:
        return feedback.links(alert["thing_name"], alert["event_id"], moment)
    except Exception:
        logger.exception("feedback links not signed; notifying without them")
        return None


def _notify_offline(alert, summary, sns_client, topic_arn, site_name, time_zone, stage, deduplicator, links):
    """Publish the camera-offline notice of an end alert (``process_alert``'s result)."""

    def notify_once(*, alert: dict[str, Any]) -> dict[str, Any]:
        notification = format_offline_end(
            alert["alert"], site_name=site_name, time_zone=time_zone, stage=stage, feedback=links
        )
        message_id = publish(sns_client, topic_arn, notification)
        return {**summary, "status": NOTIFIED, "message_id": message_id, "held_reported": 0}

    # Keyed apart from the event's start (same thing and event_id), so each notifies once.
    keyed = {"thing_name": alert["thing_name"], "event_id": f"{alert['event_id']}:{CAMERA_OFFLINE}", "alert": alert}
    return _once(deduplicator, notify_once, keyed)


def _notify_snapshot(
    alert: dict[str, Any],
    summary: dict[str, Any],
    *,
    sns_client: Any,
    topic_arn: str,
    site_name: str,
    time_zone: str,
    stage: str,
    evidence_bucket: str | None,
    s3_client: Any,
    deduplicator: EventDeduplicator | None,
) -> dict[str, Any]:
    """Publish the snapshot follow-up of an update alert (``process_alert``'s result)."""
    key = alert["snapshot"]["s3_key"]
    if not own_snapshot_key(key, alert["thing_name"]):
        # Signing it would hand the device a link to another thing's picture.
        logger.warning("snapshot key outside the thing's prefix, not linked", extra={"s3_key": key[:512]})
        return {**summary, "status": ACKNOWLEDGED, "snapshot": FOREIGN_KEY}
    if not evidence_bucket or s3_client is None:
        return {**summary, "status": ACKNOWLEDGED, "snapshot": NO_BUCKET}
    if deduplicator is not None:
        start = deduplicator.first_result(alert=alert)
        if start is None:
            # The start is late (out of order) or in progress: it may yet be throttled, so
            # its picture must not go out first. Held, not deduplicated: a resend may still.
            return {**summary, "status": ACKNOWLEDGED, "snapshot": START_UNSEEN}
        if start.get("status") == THROTTLED:
            return {**summary, "status": THROTTLED, "snapshot": START_HELD}

    def notify_once(*, alert: dict[str, Any]) -> dict[str, Any]:
        link = snapshot_link(s3_client, evidence_bucket, key)
        notification = format_snapshot_update(
            alert["alert"],
            snapshot_url=link,
            site_name=site_name,
            time_zone=time_zone,
            stage=stage,
            evidence_bucket=evidence_bucket,
        )
        message_id = publish(sns_client, topic_arn, notification)
        return {**summary, "status": NOTIFIED, "message_id": message_id, "held_reported": 0}

    # Keyed apart from the event's start and offline notice, so each notifies once.
    keyed = {
        "thing_name": alert["thing_name"],
        "event_id": f"{alert['event_id']}:{SNAPSHOT_FOLLOW_UP}",
        "alert": alert,
    }
    return _once(deduplicator, notify_once, keyed)
