"""Telemetry messages to the DeviceStatus item (infra/model_loop.py's table, key
``thing_name``) that the model loop's canary check reads (lambda/vigil_loop/canary.py)
and the silent-device sweep (:mod:`vigil_health.sweep`) scans.

Item shape (all strings, ``None`` stored as NULL):

- ``thing_name``: the topic's thing;
- ``timestamp``: when the device measured (:func:`vigil_health.metrics.measured_at`:
  its ``sent_at``, or the receipt for a wrong clock), UTC, fixed width
  ``YYYY-MM-DDTHH:MM:SS.mmmZ`` so that string order is time order (the write condition
  compares strings);
- ``last_seen``: the receipt (the Lambda's clock), what the sweep calls last seen;
- ``sent_at``: the device's own field as sent (or NULL); ``schema_version``;
- ``model``: ``{sha256, version, file}`` and ``load_error`` when the device reports one
  (edge_component/runtime.py); absent when the message has no ``model``.

The write is a conditional PutItem: it lands only if no item exists or the stored
``timestamp`` is older, so a late (older) message never replaces a newer one
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
A refused older message still moves ``last_seen`` (the device is alive), nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vigil_health.metrics import TOPIC_THING_KEY, InvalidTelemetryError, measured_at

_MODEL_FIELDS = ("sha256", "version", "file", "load_error")


def iso(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (fixed width: sortable as a string)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _model(value: Any) -> dict[str, str | None]:
    if not isinstance(value, dict):
        raise InvalidTelemetryError(f"model: must be an object, got {value!r}")
    model: dict[str, str | None] = {}
    for key in _MODEL_FIELDS:
        field = value.get(key)
        if field is not None and not isinstance(field, str):
            raise InvalidTelemetryError(f"model.{key}: must be a string or null, got {field!r}")
        if key != "load_error" or field:
            model[key] = field
    return model


def status_item(message: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The DeviceStatus item for one telemetry message that
    :func:`vigil_health.metrics.metric_data` accepted (so the thing is valid), received
    at ``now`` (aware). Raises :class:`InvalidTelemetryError` for a ``model`` that is
    not an object of strings/nulls."""
    item: dict[str, Any] = {
        "thing_name": message[TOPIC_THING_KEY] if TOPIC_THING_KEY in message else message["thing_name"],
        "timestamp": iso(measured_at(message, now)),
        "last_seen": iso(now),
        "sent_at": message["sent_at"] if isinstance(message.get("sent_at"), str) else None,
        "schema_version": message["schema_version"] if isinstance(message.get("schema_version"), str) else None,
    }
    if "model" in message:
        item["model"] = _model(message["model"])
    return item


def write_status(table: Any, item: dict[str, Any]) -> bool:
    """Put ``item`` into ``table`` (a boto3 DynamoDB Table) unless the stored item is
    newer or as new (``timestamp``); then only its ``last_seen`` moves forward.
    Returns whether the item was written. Other DynamoDB errors propagate."""
    from botocore.exceptions import ClientError

    try:
        table.put_item(
            Item=item,
            ConditionExpression="attribute_not_exists(thing_name) OR #ts < :ts",
            ExpressionAttributeNames={"#ts": "timestamp"},
            ExpressionAttributeValues={":ts": item["timestamp"]},
        )
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    try:
        table.update_item(
            Key={"thing_name": item["thing_name"]},
            UpdateExpression="SET last_seen = :seen",
            ConditionExpression="attribute_exists(thing_name) AND "
            "(attribute_not_exists(last_seen) OR last_seen < :seen)",
            ExpressionAttributeValues={":seen": item["last_seen"]},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    return False
