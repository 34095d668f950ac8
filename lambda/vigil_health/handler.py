"""The health Lambda: ``vigil_health.handler.handler``, invoked by the IoT topic rule
``SELECT *, topic(2) AS topic_thing_name FROM 'vigil/+/telemetry'`` (``WHERE`` the
stage's things, infra/health.py). Each message becomes CloudWatch metrics
(:mod:`vigil_health.metrics`), put in one ``PutMetricData`` call.

A malformed message is logged (with the problem) and refused, never raised: IoT invokes
asynchronously, and a retry of the same bad message could not succeed. Environment:
``VIGIL_STAGE`` (the ``Stage`` dimension), ``VIGIL_HEALTH_NAMESPACE`` (default ``Vigil/Health``).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from vigil_health.metrics import NAMESPACE, InvalidTelemetryError, metric_data

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "vigil-health")
_client: Any = None
# PutMetricData takes at most 1000 metrics per call; a device has a handful of cameras.
_BATCH = 1000


def _cloudwatch() -> Any:
    global _client
    if _client is None:
        import boto3  # with the first message, not at cold start

        _client = boto3.client("cloudwatch")
    return _client


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict[str, Any]:
    """Put one telemetry message's metrics; returns ``{"metrics": n}`` or, for a
    malformed message, ``{"refused": reason}`` (logged as an error)."""
    stage = os.environ["VIGIL_STAGE"]
    namespace = os.environ.get("VIGIL_HEALTH_NAMESPACE") or NAMESPACE
    try:
        data = metric_data(event, stage)
    except InvalidTelemetryError as exc:
        thing = event.get("topic_thing_name") if isinstance(event, dict) else None
        logger.error("telemetry refused: %s", exc, extra={"thing": thing, "problem": str(exc)})
        return {"refused": str(exc)}
    for start in range(0, len(data), _BATCH):
        _cloudwatch().put_metric_data(Namespace=namespace, MetricData=data[start : start + _BATCH])
    return {"metrics": len(data)}
