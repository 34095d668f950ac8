"""The health Lambda: ``vigil_health.handler.handler``, invoked by the IoT topic rule
``SELECT *, topic(2) AS topic_thing_name FROM 'vigil/+/telemetry'`` (``WHERE`` the
stage's things, infra/health.py). Each message becomes CloudWatch metrics
(:mod:`vigil_health.metrics`), put in one ``PutMetricData`` call.

A camera whose counters are bad is left out (logged, counted ``TelemetryCameraRejected``);
the Heartbeat and the other cameras still go out.

Each message is counted (``TelemetryReceived``); a malformed one is logged (with the
problem and the thing), counted (``TelemetryRejected``, Powertools metrics in ``POWERTOOLS_METRICS_NAMESPACE``, default
"Vigil") and re-raised, as the alert Lambda does (lambda/app.py): the asynchronous
invocation fails (the function's ``Errors``) and the message ends on the function's
dead-letter queue instead of vanishing. Environment: ``VIGIL_STAGE`` (the ``Stage``
dimension), ``VIGIL_HEALTH_NAMESPACE`` (default ``Vigil/Health``),
``VIGIL_MAX_CAMERAS`` (cameras per message, default 16: more is rejected, each camera
name being new custom metrics), ``STAGE_THING_PREFIX`` / ``STAGE_THINGS`` (the stage's
things, as the alert Lambda's: another thing's message is refused, counted
``TelemetryRefused``, nothing put; both unset = every thing),
``VIGIL_DEVICE_STATUS_TABLE`` (the DeviceStatus table each message also updates,
:mod:`vigil_health.status`, for the model loop's canary check and the silent sweep).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from vigil_health.metrics import MAX_CAMERAS, NAMESPACE, TOPIC_THING_KEY, InvalidTelemetryError, metric_data
from vigil_health.status import status_item, write_status
from vigil_health.sweep import in_stage

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "vigil-health"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Vigil", service=SERVICE)
_client: Any = None
_table: Any = None
# PutMetricData takes at most 1000 metrics per call; a device has a handful of cameras.
_BATCH = 1000


def _cloudwatch() -> Any:
    global _client
    if _client is None:
        import boto3  # with the first message, not at cold start (and after moto's mock in tests)

        _client = boto3.client("cloudwatch")
    return _client


def _status_table() -> Any:
    global _table
    if _table is None:
        import boto3

        _table = boto3.resource("dynamodb").Table(os.environ["VIGIL_DEVICE_STATUS_TABLE"])
    return _table


def _max_cameras() -> int:
    raw = os.environ.get("VIGIL_MAX_CAMERAS", "").strip()
    if not raw:
        return MAX_CAMERAS
    if not raw.isdigit() or int(raw) < 1:
        raise RuntimeError(f"VIGIL_MAX_CAMERAS must be a whole number >= 1, got {raw!r}")
    return int(raw)


def _owns(thing: str) -> bool:
    prefix = os.environ.get("STAGE_THING_PREFIX", "").strip() or None
    names = frozenset(t.strip() for t in os.environ.get("STAGE_THINGS", "").split(",") if t.strip())
    return (prefix is None and not names) or in_stage(thing, prefix, names)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, int | bool]:
    """Put one telemetry message's metrics and its DeviceStatus item; returns
    ``{"metrics": n, "status_written": bool}`` (False: a newer message was already stored),
    with ``"refused": True`` (nothing put) for another stage's thing and
    ``"cameras_rejected"`` counting cameras left out for bad counters.

    Raises :class:`InvalidTelemetryError` (after logging and counting it) for a malformed
    message; CloudWatch and DynamoDB errors propagate. Both fail the invocation.
    """
    stage = os.environ["VIGIL_STAGE"]
    namespace = os.environ.get("VIGIL_HEALTH_NAMESPACE") or NAMESPACE
    thing = event.get(TOPIC_THING_KEY) if isinstance(event, dict) else None
    logger.append_keys(thing=thing if isinstance(thing, str) else repr(thing))
    metrics.add_metric(name="TelemetryReceived", unit=MetricUnit.Count, value=1)
    if isinstance(thing, str) and not _owns(thing):
        # The topic rule selects the stage's things; this holds if it did not.
        metrics.add_metric(name="TelemetryRefused", unit=MetricUnit.Count, value=1)
        logger.warning("telemetry refused: not one of this stage's things")
        return {"metrics": 0, "status_written": False, "refused": True}
    now = datetime.now(UTC)
    problems: list[str] = []
    try:
        data = metric_data(event, stage, now, max_cameras=_max_cameras(), problems=problems)
        item = status_item(event, now)  # validated before anything is put: not half a message
    except InvalidTelemetryError as exc:
        metrics.add_metric(name="TelemetryRejected", unit=MetricUnit.Count, value=1)
        logger.error("telemetry rejected", extra={"problem": str(exc)})
        raise
    for problem in problems:
        metrics.add_metric(name="TelemetryCameraRejected", unit=MetricUnit.Count, value=1)
        logger.error("camera metrics rejected", extra={"problem": problem})
    for start in range(0, len(data), _BATCH):
        _cloudwatch().put_metric_data(Namespace=namespace, MetricData=data[start : start + _BATCH])
    written = write_status(_status_table(), item)
    if not written:
        logger.info("older telemetry: status kept", extra={"timestamp": item["timestamp"]})
    result: dict[str, int | bool] = {"metrics": len(data), "status_written": written}
    if problems:
        result["cameras_rejected"] = len(problems)
    return result
