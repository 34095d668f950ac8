"""lambda/vigil_health writes the DeviceStatus item the model loop's canary check reads
(lambda/vigil_loop/canary.py), against moto DynamoDB: the contract is proven by running
the real ``check`` on what the health Lambda wrote (Greengrass v2 behind botocore's
Stubber: moto has no Greengrass v2).

Conditional writes: a PutItem whose ConditionExpression evaluates false fails with
ConditionalCheckFailedException and changes nothing
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html);
``attribute_not_exists(thing_name) OR #ts < :ts`` keeps an older message from replacing
a newer one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from vigil_health.status import iso, status_item
from vigil_loop.canary import FAILED, HEALTHY, WAITING, check

from .conftest import DEVICE_STATUS_TABLE

STAGE = "dev"
THING = "vigil-dev-canary-1"
TABLE = DEVICE_STATUS_TABLE
NEW = "7a26a8b29bd7e4a16c0a4ae4d721b2e4536ea6736e31bfac4119467f83d8a25f"
OLD = "eb807b50f22971f2f88f629e3e0841e20ac506127d235fe588a498a81112e716"
DEPLOYMENT = "canary-dep-1"


@pytest.fixture
def health(aws, status_table, monkeypatch):
    from vigil_health import handler

    monkeypatch.setenv("VIGIL_STAGE", STAGE)
    monkeypatch.setenv("VIGIL_DEVICE_STATUS_TABLE", TABLE)
    monkeypatch.setattr(handler, "_client", None)
    monkeypatch.setattr(handler, "_table", None)
    return handler


def telemetry(sent_at: datetime, model: dict[str, Any] | None) -> dict[str, Any]:
    """A telemetry 1.1 message of ``THING`` as the rule delivers it (edge_component/runtime.py)."""
    message: dict[str, Any] = {
        "schema_version": "1.1",
        "thing_name": THING,
        "sent_at": sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "uptime_s": 60.0,
        "alerts_forwarded": 0,
        "cameras": {},
        "topic_thing_name": THING,
    }
    if model is not None:
        message["model"] = model
    return message


def runs(sha256: str | None, version: str | None = "1.2.0") -> dict[str, Any]:
    return {"sha256": sha256, "version": version, "file": "model.tflite"}


def greengrass(status: str = "SUCCEEDED") -> tuple[Any, Stubber]:
    """A Greengrass v2 client whose next ListEffectiveDeployments/GetCoreDevice for THING
    say the canary deployment ``status`` and a HEALTHY core device."""
    gg = boto3.client("greengrassv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(gg)
    at = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    entry = {
        "deploymentId": DEPLOYMENT,
        "deploymentName": "vigil-dev-canary",
        "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/vigil-dev-canary",
        "coreDeviceExecutionStatus": status,
        "creationTimestamp": at,
        "modifiedTimestamp": at,
    }
    stub.add_response("list_effective_deployments", {"effectiveDeployments": [entry]}, {"coreDeviceThingName": THING})
    stub.add_response(
        "get_core_device", {"coreDeviceThingName": THING, "status": "HEALTHY"}, {"coreDeviceThingName": THING}
    )
    stub.activate()
    return gg, stub


def canary(status_table, started: datetime, now: datetime) -> dict[str, Any]:
    gg, stub = greengrass()
    result = check(gg, status_table, [THING], DEPLOYMENT, NEW, iso(started), 30, now)
    stub.assert_no_pending_responses()
    return result


def test_telemetry_becomes_the_item_the_canary_check_reads(health, status_table, context):
    started = datetime.now(UTC) - timedelta(minutes=10)
    sent = datetime.now(UTC) - timedelta(seconds=5)
    assert health.handler(telemetry(sent, runs(NEW)), context)["status_written"] is True

    item = status_table.get_item(Key={"thing_name": THING}, ConsistentRead=True)["Item"]
    assert item["timestamp"] == iso(sent)
    assert item["model"] == {"sha256": NEW, "version": "1.2.0", "file": "model.tflite"}
    # The real canary check on what the health Lambda wrote: healthy once the watch is over.
    result = canary(status_table, started, started + timedelta(minutes=31))
    assert result == {"state": HEALTHY, "reasons": [f"{THING}: runs {NEW} (1.2.0)"]}


def test_an_older_message_does_not_overwrite_a_newer_one(health, status_table, context):
    started = datetime.now(UTC) - timedelta(minutes=10)
    newer = datetime.now(UTC) - timedelta(seconds=5)
    assert health.handler(telemetry(newer, runs(NEW)), context)["status_written"] is True
    # A message from before, delivered late (the device's outbox after a reconnect).
    older = newer - timedelta(minutes=2)
    assert health.handler(telemetry(older, runs(OLD, "1.1.0")), context)["status_written"] is False

    item = status_table.get_item(Key={"thing_name": THING}, ConsistentRead=True)["Item"]
    assert item["timestamp"] == iso(newer)
    assert item["model"]["sha256"] == NEW
    assert canary(status_table, started, started + timedelta(minutes=31))["state"] == HEALTHY
    # The same message twice is not newer either: the first one stays.
    assert health.handler(telemetry(newer, runs(OLD)), context)["status_written"] is False
    assert status_table.get_item(Key={"thing_name": THING})["Item"]["model"]["sha256"] == NEW


def test_a_newer_message_replaces_the_whole_item(health, status_table, context):
    first = datetime.now(UTC) - timedelta(minutes=3)
    health.handler(telemetry(first, runs(OLD, "1.1.0")), context)
    second = first + timedelta(minutes=1)
    assert health.handler(telemetry(second, runs(NEW)), context)["status_written"] is True
    item = status_table.get_item(Key={"thing_name": THING})["Item"]
    assert (item["timestamp"], item["model"]["sha256"], item["model"]["version"]) == (iso(second), NEW, "1.2.0")


def test_a_load_error_lands_and_fails_the_canary(health, status_table, context):
    started = datetime.now(UTC) - timedelta(minutes=10)
    error = "model.tflite: not a TFLite flatbuffer"
    model = {"sha256": None, "version": None, "file": "model.tflite", "load_error": error}
    health.handler(telemetry(datetime.now(UTC), model), context)

    item = status_table.get_item(Key={"thing_name": THING})["Item"]
    assert item["model"] == model
    result = canary(status_table, started, started + timedelta(minutes=1))  # fails at once, not after the watch
    assert result == {"state": FAILED, "reasons": [f"{THING}: model load error: {error}"]}


def test_a_message_before_the_deployment_keeps_the_canary_waiting(health, status_table, context):
    started = datetime.now(UTC)
    health.handler(telemetry(started - timedelta(minutes=1), runs(NEW)), context)
    assert canary(status_table, started, started + timedelta(minutes=1))["state"] == WAITING


def test_item_shape_and_a_wrong_clock_dated_on_receipt():
    now = datetime(2026, 12, 3, 7, 0, 0, 123456, tzinfo=UTC)
    message = telemetry(datetime(2026, 12, 3, 6, 59, 30, tzinfo=UTC), None)
    assert status_item(message, now) == {
        "thing_name": THING,
        "timestamp": "2026-12-03T06:59:30.000Z",
        "last_seen": "2026-12-03T07:00:00.123Z",
        "sent_at": "2026-12-03T06:59:30.000Z",
        "schema_version": "1.1",
    }
    wrong = telemetry(datetime(2026, 12, 4, 7, 0, tzinfo=UTC), runs(NEW))  # a day ahead: dated on receipt
    assert status_item(wrong, now)["timestamp"] == "2026-12-03T07:00:00.123Z"
    # Fixed width: string order is time order, which the write condition relies on.
    assert iso(datetime(2026, 12, 3, 7, 0, 1, tzinfo=UTC)) > iso(datetime(2026, 12, 3, 7, 0, 0, 999000, tzinfo=UTC))
