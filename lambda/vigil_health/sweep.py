"""The silent-device sweep: ``vigil_health.sweep.handler``, run by an EventBridge
schedule (infra/health.py). Fleet-provisioned things are unknown at synth time, so no
per-thing alarm can watch them; this scans the DeviceStatus table (written by
:mod:`vigil_health.handler`) and puts one metric per run that the ``DeviceSilent``
alarm watches:

- ``SilentDevices`` (Count), dimension ``Stage``: the stage's things whose
  ``last_seen`` is at least ``VIGIL_SILENT_AFTER_S`` and less than
  ``VIGIL_RETIRED_AFTER_S`` ago (older: retired, not silent);

and logs the silent things' names (``silent devices``, keys ``silent``, ``count``).

Stage membership is the alert Lambda's (lambda/vigil_alerts/config.py): names starting
with ``STAGE_THING_PREFIX`` and those listed in ``STAGE_THINGS`` (comma-separated);
other items are skipped. Environment also: ``VIGIL_STAGE``, ``VIGIL_HEALTH_NAMESPACE``
(default ``Vigil/Health``), ``VIGIL_DEVICE_STATUS_TABLE``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from vigil_health.metrics import NAMESPACE

SILENT_DEVICES = "SilentDevices"
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "vigil-health")


def _parse(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def in_stage(thing: str, prefix: str | None, names: frozenset[str]) -> bool:
    """Whether ``thing`` belongs to the stage (``prefix`` or one of ``names``)."""
    return thing in names or (prefix is not None and thing.startswith(prefix))


def silent_things(
    items: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    silent_after: timedelta,
    retired_after: timedelta,
    prefix: str | None,
    names: frozenset[str],
) -> list[str]:
    """Sorted names of the stage's things last seen ``silent_after`` <= age < ``retired_after``
    before ``now``. An item without a readable ``last_seen`` is logged and skipped."""
    silent = []
    for item in items:
        thing = str(item.get("thing_name"))
        if not in_stage(thing, prefix, names):
            continue
        seen = _parse(item.get("last_seen"))
        if seen is None:
            logger.warning("device status without last_seen", extra={"thing": thing})
            continue
        if silent_after <= now - seen < retired_after:
            silent.append(thing)
    return sorted(silent)


def _scan(table: Any) -> Iterable[Mapping[str, Any]]:
    kwargs: dict[str, Any] = {
        "ProjectionExpression": "thing_name, last_seen",
        "ConsistentRead": True,
    }
    while True:
        page = table.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _seconds(name: str) -> timedelta:
    raw = os.environ.get(name, "")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value}")
    return timedelta(seconds=value)


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    """One sweep; returns ``{"silent": [names], "count": n}``. Raises ValueError for a
    bad ``VIGIL_SILENT_AFTER_S``/``VIGIL_RETIRED_AFTER_S``; AWS errors propagate (no
    metric then: the alarm treats the missing point as breaching)."""
    import boto3

    stage = os.environ["VIGIL_STAGE"]
    silent_after, retired_after = _seconds("VIGIL_SILENT_AFTER_S"), _seconds("VIGIL_RETIRED_AFTER_S")
    prefix = os.environ.get("STAGE_THING_PREFIX", "").strip() or None
    names = frozenset(t.strip() for t in os.environ.get("STAGE_THINGS", "").split(",") if t.strip())
    table = boto3.resource("dynamodb").Table(os.environ["VIGIL_DEVICE_STATUS_TABLE"])
    now = datetime.now(UTC)
    silent = silent_things(
        _scan(table), now, silent_after=silent_after, retired_after=retired_after, prefix=prefix, names=names
    )
    boto3.client("cloudwatch").put_metric_data(
        Namespace=os.environ.get("VIGIL_HEALTH_NAMESPACE") or NAMESPACE,
        MetricData=[
            {
                "MetricName": SILENT_DEVICES,
                "Timestamp": now,
                "Dimensions": [{"Name": "Stage", "Value": stage}],
                "Value": float(len(silent)),
                "Unit": "Count",
            }
        ],
    )
    if silent:
        logger.warning("silent devices", extra={"silent": silent, "count": len(silent)})
    else:
        logger.info("no silent devices", extra={"silent": [], "count": 0})
    return {"silent": silent, "count": len(silent)}
