"""Step 5's check, polled by the state machine's Wait loop: did every canary device
take the deployment and load the new model without a load error?

Per canary thing: the deployment's execution status on the core device
(ListEffectiveDeployments), the core device's health (GetCoreDevice) and its latest
telemetry in the DeviceStatus table (key ``thing_name``; ``timestamp`` ISO 8601,
``model`` ``{sha256, version, load_error}``; the health Lambda writes it from each
telemetry message, lambda/vigil_health/status.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

WAITING, HEALTHY, FAILED = "WAITING", "HEALTHY", "FAILED"
_DONE = ("SUCCEEDED", "COMPLETED")
_BROKEN = ("FAILED", "TIMED_OUT", "CANCELED", "REJECTED")
# The nucleus's words when the groups a device is in pin different versions of one
# component (see vigil_loop.deployments: a canary thing must not be in the stage group).
_VERSION_CONFLICT = ("NoAvailableComponentVersion", "satisfies the requirements")


def _parse(timestamp: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return moment if moment.tzinfo else None


def device_state(gg: Any, table: Any, thing: str, deployment_id: str, sha256: str, since: datetime) -> tuple[str, str]:
    """(WAITING | HEALTHY | FAILED, why) for one canary thing; ``sha256``: the model
    file's digest (the component step's ``model_sha256``), the one the edge reports."""
    pages = gg.get_paginator("list_effective_deployments").paginate(coreDeviceThingName=thing)
    mine = [d for page in pages for d in page["effectiveDeployments"] if d["deploymentId"] == deployment_id]
    if not mine:
        return WAITING, f"{thing}: the deployment has not reached it"
    status = mine[0]["coreDeviceExecutionStatus"]
    if status in _BROKEN:
        reason = str(mine[0].get("reason") or "no reason given")
        hint = ""
        if any(words in reason for words in _VERSION_CONFLICT):
            hint = " (is the thing in the stage's thing group too? a canary thing must be in the canary group only)"
        return FAILED, f"{thing}: deployment {status}: {reason}{hint}"
    if status not in _DONE:
        return WAITING, f"{thing}: deployment {status}"
    if gg.get_core_device(coreDeviceThingName=thing)["status"] != "HEALTHY":
        return FAILED, f"{thing}: core device UNHEALTHY (a component is broken)"
    item = table.get_item(Key={"thing_name": thing}, ConsistentRead=True).get("Item")
    if item is None:
        return WAITING, f"{thing}: no telemetry yet"
    moment = _parse(str(item.get("timestamp", "")))
    if moment is None:
        return WAITING, f"{thing}: telemetry timestamp {item.get('timestamp')!r} is not ISO 8601 with a zone"
    model = item.get("model") or {}
    if moment < since:
        return WAITING, f"{thing}: latest telemetry is from before the deployment"
    if model.get("load_error"):
        return FAILED, f"{thing}: model load error: {model['load_error']}"
    if model.get("sha256") != sha256:
        return WAITING, f"{thing}: runs model {model.get('sha256')!r}, not {sha256}"
    return HEALTHY, f"{thing}: runs {sha256} ({model.get('version')})"


def check(
    gg: Any,
    table: Any,
    things: tuple[str, ...] | list[str],
    deployment_id: str,
    sha256: str,
    started_at: str,
    watch_minutes: float,
    now: datetime,
) -> dict[str, Any]:
    """The step's output ``{"state", "reasons"}``.

    FAILED as soon as any canary fails; before ``started_at + watch_minutes`` otherwise
    WAITING (the state machine waits and asks again); at the end of the watch HEALTHY
    when every canary runs ``sha256`` without a load error, else FAILED with what each
    was still waiting for.
    """
    if not things:
        return {"state": FAILED, "reasons": ["the stage has no canary things configured"]}
    since = _parse(started_at)
    if since is None:
        raise ValueError(f"started_at {started_at!r} is not an ISO 8601 time with a zone")
    states = [device_state(gg, table, thing, deployment_id, sha256, since) for thing in things]
    failed = [why for state, why in states if state == FAILED]
    if failed:
        return {"state": FAILED, "reasons": failed}
    if now < since + timedelta(minutes=watch_minutes):
        return {"state": WAITING, "reasons": [why for _, why in states]}
    waiting = [why for state, why in states if state != HEALTHY]
    if waiting:
        return {"state": FAILED, "reasons": [f"after {watch_minutes} min: {why}" for why in waiting]}
    return {"state": HEALTHY, "reasons": [why for _, why in states]}
