"""The canary check: ListEffectiveDeployments and GetCoreDevice behind botocore's Stubber,
the DeviceStatus table in moto DynamoDB.

Rules pinned: an effective deployment's ``coreDeviceExecutionStatus`` is one of
IN_PROGRESS, QUEUED, FAILED, COMPLETED, TIMED_OUT, CANCELED, REJECTED, SUCCEEDED
(https://docs.aws.amazon.com/greengrass/v2/APIReference/API_EffectiveDeployment.html);
a core device is UNHEALTHY when a component is in the BROKEN state
(https://docs.aws.amazon.com/greengrass/v2/APIReference/API_CoreDevice.html).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from vigil_loop.canary import FAILED, HEALTHY, WAITING, check

NEW = "7a26a8b29bd7e4a16c0a4ae4d721b2e4536ea6736e31bfac4119467f83d8a25f"
OLD = "eb807b50f22971f2f88f629e3e0841e20ac506127d235fe588a498a81112e716"
DEPLOYMENT = "canary-dep-1"
STARTED = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def _effective(stub, thing, status, reason=None, deployment_id=DEPLOYMENT):
    entry = {
        "deploymentId": deployment_id,
        "deploymentName": "vigil-dev-canary-1.2.0",
        "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/vigil-dev-canary",
        "coreDeviceExecutionStatus": status,
        "creationTimestamp": STARTED,
        "modifiedTimestamp": STARTED,
    }
    if reason:
        entry["reason"] = reason
    stub.add_response("list_effective_deployments", {"effectiveDeployments": [entry]}, {"coreDeviceThingName": thing})


def _core(stub, thing, status="HEALTHY"):
    stub.add_response(
        "get_core_device", {"coreDeviceThingName": thing, "status": status}, {"coreDeviceThingName": thing}
    )


def _telemetry(table, thing, sha256, at, load_error=None, version="1.2.0"):
    table.put_item(
        Item={
            "thing_name": thing,
            "timestamp": at.isoformat(),
            "model": {"sha256": sha256, "version": version, **({"load_error": load_error} if load_error else {})},
        }
    )


def _check(gg, table, things, now):
    return check(gg, table, things, DEPLOYMENT, NEW, STARTED.isoformat(), 30, now)


def test_a_canary_on_the_new_digest_is_healthy_after_the_watch(stubbed, device_table):
    gg, stub = stubbed("greengrassv2")
    for thing in ("cam-07", "cam-08"):
        _effective(stub, thing, "SUCCEEDED")
        _core(stub, thing)
        _telemetry(device_table, thing, NEW, STARTED + timedelta(minutes=5))
    result = _check(gg, device_table, ["cam-07", "cam-08"], STARTED + timedelta(minutes=31))
    assert result["state"] == HEALTHY
    assert result["reasons"] == [f"cam-07: runs {NEW} (1.2.0)", f"cam-08: runs {NEW} (1.2.0)"]


def test_a_healthy_canary_is_still_watched_until_the_watch_ends(stubbed, device_table):
    gg, stub = stubbed("greengrassv2")
    _effective(stub, "cam-07", "SUCCEEDED")
    _core(stub, "cam-07")
    _telemetry(device_table, "cam-07", NEW, STARTED + timedelta(minutes=5))
    assert _check(gg, device_table, ["cam-07"], STARTED + timedelta(minutes=10))["state"] == WAITING


def test_a_model_load_error_fails_the_canary_at_once(stubbed, device_table):
    gg, stub = stubbed("greengrassv2")
    _effective(stub, "cam-07", "SUCCEEDED")
    _core(stub, "cam-07")
    error = "model.tflite: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'"
    _telemetry(device_table, "cam-07", OLD, STARTED + timedelta(minutes=2), load_error=error)
    result = _check(gg, device_table, ["cam-07"], STARTED + timedelta(minutes=3))
    assert result == {"state": FAILED, "reasons": [f"cam-07: model load error: {error}"]}


def test_an_errored_deployment_fails_the_canary(stubbed, device_table):
    gg, stub = stubbed("greengrassv2")
    _effective(stub, "cam-07", "FAILED", reason="com.vigil.EdgeDetector.dev is broken after 3 restarts")
    result = _check(gg, device_table, ["cam-07"], STARTED + timedelta(minutes=3))
    assert result["state"] == FAILED
    assert result["reasons"] == ["cam-07: deployment FAILED: com.vigil.EdgeDetector.dev is broken after 3 restarts"]


def test_a_thing_also_in_the_stage_group_fails_with_the_reason_named(stubbed, device_table):
    """A device in both groups gets ==1.1.0 and ==1.2.0 of the model: the nucleus fails the
    deployment (manage-deployments.html, "Component dependency resolution"; the error as a
    device logs it: https://repost.aws/questions/QU3lTmA4xPTJKp_gzlhVmj0g)."""
    gg, stub = stubbed("greengrassv2")
    reason = "NoAvailableComponentVersionException: No local or cloud component version satisfies the requirements"
    _effective(stub, "cam-07", "FAILED", reason=reason)
    (why,) = _check(gg, device_table, ["cam-07"], STARTED + timedelta(minutes=3))["reasons"]
    assert "canary group only" in why


def test_an_unhealthy_core_device_fails_the_canary(stubbed, device_table):
    gg, stub = stubbed("greengrassv2")
    _effective(stub, "cam-07", "SUCCEEDED")
    _core(stub, "cam-07", "UNHEALTHY")
    assert _check(gg, device_table, ["cam-07"], STARTED + timedelta(minutes=3))["state"] == FAILED


@pytest.mark.parametrize(
    ("sha256", "minutes", "why"),
    [(OLD, 5, "runs model"), (NEW, -5, "before the deployment")],
)
def test_a_canary_that_never_reports_the_new_digest_fails_at_the_end(stubbed, device_table, sha256, minutes, why):
    gg, stub = stubbed("greengrassv2")
    _effective(stub, "cam-07", "SUCCEEDED")
    _core(stub, "cam-07")
    _telemetry(device_table, "cam-07", sha256, STARTED + timedelta(minutes=minutes))
    result = _check(gg, device_table, ["cam-07"], STARTED + timedelta(minutes=31))
    assert result["state"] == FAILED
    assert result["reasons"][0].startswith("after 30 min: cam-07:") and why in result["reasons"][0]


def test_a_deployment_that_has_not_arrived_waits(stubbed, device_table):
    gg, stub = stubbed("greengrassv2")
    _effective(stub, "cam-07", "SUCCEEDED", deployment_id="an-older-one")
    result = _check(gg, device_table, ["cam-07"], STARTED + timedelta(minutes=1))
    assert result == {"state": WAITING, "reasons": ["cam-07: the deployment has not reached it"]}


def test_no_canary_things_is_a_failure_not_a_pass(stubbed, device_table):
    gg, _ = stubbed("greengrassv2")
    assert _check(gg, device_table, [], STARTED)["state"] == FAILED
