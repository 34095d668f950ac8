"""lambda/vigil_health/sweep.py against moto DynamoDB and CloudWatch: the DeviceStatus
items the health Lambda writes (:func:`vigil_health.status.write_status`) -> one
``SilentDevices`` count of the stage (dimension ``Stage``) and the silent things' names
in a structured log line.

A stage's things are those starting with its prefix or listed (infra/config.py
StageThings, the alert Lambda's STAGE_THING_PREFIX/STAGE_THINGS); another stage's
thing in the table is not counted. PutMetricData/GetMetricData:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from vigil_health.metrics import NAMESPACE
from vigil_health.status import status_item, write_status
from vigil_health.sweep import silent_things

from .conftest import DEVICE_STATUS_TABLE

TABLE = DEVICE_STATUS_TABLE
SILENT_AFTER = timedelta(minutes=3)  # 3 heartbeats of 60 s, infra/health.py's VIGIL_SILENT_AFTER_S
RETIRED_AFTER = timedelta(days=30)


@pytest.fixture
def sweep(aws, status_table, monkeypatch):
    """vigil_health.sweep for stage ``dev``: prefix ``vigil-dev-`` plus the listed ``bench-1``."""
    from vigil_health import sweep

    for name, value in {
        "VIGIL_STAGE": "dev",
        "VIGIL_DEVICE_STATUS_TABLE": TABLE,
        "VIGIL_SILENT_AFTER_S": str(int(SILENT_AFTER.total_seconds())),
        "VIGIL_RETIRED_AFTER_S": str(int(RETIRED_AFTER.total_seconds())),
        "STAGE_THING_PREFIX": "vigil-dev-",
        "STAGE_THINGS": "bench-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VIGIL_HEALTH_NAMESPACE", raising=False)
    return sweep


@pytest.fixture
def sweep_logs(sweep):
    buffer = io.StringIO()
    previous = sweep.logger.registered_handler.setStream(buffer)
    yield buffer
    sweep.logger.registered_handler.setStream(previous)


def seen(table: Any, thing: str, ago: timedelta) -> None:
    """``thing``'s telemetry received ``ago`` before now, written as the health Lambda writes it."""
    at = datetime.now(UTC) - ago
    message = {"thing_name": thing, "topic_thing_name": thing, "sent_at": at.isoformat(), "cameras": {}}
    assert write_status(table, status_item(message, at))


def silent_devices(region: str, stage: str) -> list[float]:
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": "SilentDevices",
                        "Dimensions": [{"Name": "Stage", "Value": stage}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
    )
    [result] = answer["MetricDataResults"]
    return result["Values"]


def test_one_silent_thing_of_three_is_counted_and_named(sweep, sweep_logs, status_table, region, context):
    seen(status_table, "vigil-dev-cam-01", timedelta(seconds=30))
    seen(status_table, "vigil-dev-cam-02", timedelta(minutes=10))  # silent
    seen(status_table, "vigil-dev-cam-03", timedelta(seconds=50))
    seen(status_table, "vigil-prod-cam-01", timedelta(minutes=10))  # another stage's: not ours to count

    assert sweep.handler({"source": "aws.events"}, context) == {"silent": ["vigil-dev-cam-02"], "count": 1}
    assert silent_devices(region, "dev") == [1.0]
    assert silent_devices(region, "prod") == []  # nothing put for another stage
    [record] = [json.loads(line) for line in sweep_logs.getvalue().splitlines() if '"silent devices"' in line]
    assert record["level"] == "WARNING"
    assert record["silent"] == ["vigil-dev-cam-02"] and record["count"] == 1


def test_no_silent_thing_puts_zero_so_the_alarm_sees_the_sweep_ran(sweep, status_table, region, context):
    seen(status_table, "vigil-dev-cam-01", timedelta(seconds=30))
    seen(status_table, "bench-1", timedelta(minutes=1))
    seen(status_table, "vigil-dev-old", timedelta(days=31))  # retired, not silent
    assert sweep.handler({}, context) == {"silent": [], "count": 0}
    assert silent_devices(region, "dev") == [0.0]


def test_a_listed_thing_outside_the_prefix_counts_and_a_retired_one_does_not(sweep, status_table, region, context):
    seen(status_table, "bench-1", timedelta(hours=2))
    seen(status_table, "vigil-dev-gone", timedelta(days=30, minutes=1))
    seen(status_table, "vigil-dev-cam-09", timedelta(days=29))
    assert sweep.handler({}, context)["silent"] == ["bench-1", "vigil-dev-cam-09"]
    assert silent_devices(region, "dev") == [2.0]


def test_a_newer_telemetry_ends_the_silence(sweep, status_table, region, context):
    seen(status_table, "vigil-dev-cam-02", timedelta(minutes=10))
    assert sweep.handler({}, context)["count"] == 1
    seen(status_table, "vigil-dev-cam-02", timedelta(seconds=1))
    assert sweep.handler({}, context)["count"] == 0


def test_the_silence_bounds():
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)

    def items(**ago: timedelta) -> list[dict[str, str]]:
        return [{"thing_name": k, "last_seen": (now - v).isoformat()} for k, v in ago.items()]

    found = silent_things(
        [
            *items(a=SILENT_AFTER, b=SILENT_AFTER - timedelta(seconds=1), c=RETIRED_AFTER - timedelta(seconds=1)),
            *items(d=RETIRED_AFTER),
            {"thing_name": "e", "last_seen": "yesterday"},  # unreadable: skipped (and logged)
            {"thing_name": "f"},
        ],
        now,
        silent_after=SILENT_AFTER,
        retired_after=RETIRED_AFTER,
        prefix=None,
        names=frozenset("abcdef"),
    )
    assert found == ["a", "c"]


@pytest.mark.parametrize("value", ["", "3m", "0"])
def test_a_bad_threshold_is_named(sweep, monkeypatch, context, value):
    monkeypatch.setenv("VIGIL_SILENT_AFTER_S", value)
    with pytest.raises(ValueError, match="VIGIL_SILENT_AFTER_S"):
        sweep.handler({}, context)
