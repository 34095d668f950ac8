"""lambda/vigil_health against moto CloudWatch: a telemetry message becomes the metrics
the health alarms (infra/health.py) watch, read back with ListMetrics and GetMetricData;
a malformed message is logged, counted and raised (so the invocation fails and the
message lands on the function's dead-letter queue), and puts nothing.

PutMetricData/GetMetricData shapes:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html.
Lambda async invocation, failed events to a DLQ:
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from vigil_health.metrics import NAMESPACE, InvalidTelemetryError, metric_data

STAGE = "dev"
THING = "vigil-dev-cam-01"


def camera(state: str = "running", analysed: int = 100, blank: int = 0) -> dict[str, Any]:
    """One camera's telemetry (edge_component/camera_state.py's shape, schema 1.1)."""
    return {
        "state": state,
        "crashes": 0,
        "restarts": 0,
        "last_exit": None,
        "inference_ms_mean": 4.2,
        "last_error": "",
        "worker_started_at": "2026-12-03T06:00:00.000Z",
        "last_frame_at": "2026-12-03T06:40:00.000Z",
        "frames_in": 5000,
        "analysed": 2500,
        "blank_frames": 40,
        "recent": {"analysed": analysed, "blank_frames": blank},
    }


@pytest.fixture
def telemetry() -> Callable[..., dict[str, Any]]:
    """``telemetry(**overrides)``: a message from ``THING`` with camera ``front`` running
    (100 analysed, none blank) and ``back`` covered (120 of 120 blank), sent now, plus
    the rule's ``topic_thing_name``; ``overrides`` replace top-level fields."""

    def build(**overrides: Any) -> dict[str, Any]:
        message = {
            "schema_version": "1.1",
            "thing_name": THING,
            "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "uptime_s": 3600.0,
            "alerts_forwarded": 2,
            "cameras": {"front": camera(), "back": camera(analysed=120, blank=120)},
            "topic_thing_name": THING,
        }
        return copy.deepcopy({**message, **overrides})

    return build


@pytest.fixture
def cloudwatch(aws, region) -> Any:
    """A moto CloudWatch client."""
    return boto3.client("cloudwatch", region_name=region)


STATUS_TABLE = "vigil-dev-device-status"


@pytest.fixture
def status_table(aws, region) -> Any:
    """The DeviceStatus table (key ``thing_name``, as infra/model_loop.py makes it) in moto."""
    return boto3.resource("dynamodb", region_name=region).create_table(
        TableName=STATUS_TABLE,
        KeySchema=[{"AttributeName": "thing_name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "thing_name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def health(aws, status_table, monkeypatch):
    """lambda/vigil_health/handler.py with ``VIGIL_STAGE=dev`` and the moto DeviceStatus
    table; its clients reset so they are made under moto."""
    from vigil_health import handler

    monkeypatch.setenv("VIGIL_STAGE", STAGE)
    monkeypatch.setenv("VIGIL_DEVICE_STATUS_TABLE", STATUS_TABLE)
    monkeypatch.delenv("VIGIL_HEALTH_NAMESPACE", raising=False)
    monkeypatch.setattr(handler, "_client", None)
    monkeypatch.setattr(handler, "_table", None)
    return handler


@pytest.fixture
def health_logs(health):
    """What the handler's Powertools Logger writes (its stream is bound at import)."""
    buffer = io.StringIO()
    previous = health.logger.registered_handler.setStream(buffer)
    yield buffer
    health.logger.registered_handler.setStream(previous)


def dims(**values: str) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in values.items()]


def listed(cloudwatch) -> set[tuple[str, frozenset]]:
    out = set()
    for metric in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]:
        out.add((metric["MetricName"], frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"])))
    return out


def values(cloudwatch, name: str, dimensions: list[dict[str, str]], stat: str = "Maximum") -> list[float]:
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                    "Period": 60,
                    "Stat": stat,
                },
            }
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
    )
    [result] = answer["MetricDataResults"]
    return result["Values"]


def test_telemetry_becomes_heartbeat_and_per_camera_metrics(health, cloudwatch, context, telemetry, capsys):
    assert health.handler(telemetry(), context) == {"metrics": 5, "status_written": True}
    assert emf(capsys.readouterr().out) == {"TelemetryReceived": 1}

    assert listed(cloudwatch) == {
        ("Heartbeat", frozenset({("Stage", STAGE), ("Thing", THING)})),
        ("CameraRunning", frozenset({("Stage", STAGE), ("Thing", THING), ("Camera", "front")})),
        ("CameraRunning", frozenset({("Stage", STAGE), ("Thing", THING), ("Camera", "back")})),
        ("BlankFrameRatio", frozenset({("Stage", STAGE), ("Thing", THING), ("Camera", "front")})),
        ("BlankFrameRatio", frozenset({("Stage", STAGE), ("Thing", THING), ("Camera", "back")})),
    }
    assert values(cloudwatch, "Heartbeat", dims(Stage=STAGE, Thing=THING), "Sum") == [1.0]
    front = dims(Stage=STAGE, Thing=THING, Camera="front")
    back = dims(Stage=STAGE, Thing=THING, Camera="back")
    assert values(cloudwatch, "CameraRunning", front) == [1.0]
    assert values(cloudwatch, "BlankFrameRatio", front) == [0.0]
    assert values(cloudwatch, "BlankFrameRatio", back) == [1.0]  # covered: 120 of 120 analysed frames blank


def test_a_camera_not_running_reports_zero_and_partial_blank_is_the_share(health, cloudwatch, context, telemetry):
    cameras = {"front": camera(state="reconnecting", analysed=0, blank=0), "side": camera(analysed=200, blank=50)}
    assert health.handler(telemetry(cameras=cameras), context) == {
        "metrics": 4,
        "status_written": True,
    }  # no ratio without frames

    front = dims(Stage=STAGE, Thing=THING, Camera="front")
    assert values(cloudwatch, "CameraRunning", front) == [0.0]
    assert values(cloudwatch, "BlankFrameRatio", front) == []
    assert values(cloudwatch, "BlankFrameRatio", dims(Stage=STAGE, Thing=THING, Camera="side")) == [0.25]


def test_a_device_without_cameras_still_beats(health, cloudwatch, context, telemetry):
    assert health.handler(telemetry(cameras={}), context) == {"metrics": 1, "status_written": True}
    assert values(cloudwatch, "Heartbeat", dims(Stage=STAGE, Thing=THING), "Sum") == [1.0]


def test_telemetry_1_0_without_recent_has_no_ratio(health, cloudwatch, context, telemetry):
    """A device before telemetry 1.1 sends totals only; a ratio of totals would hide a covered camera."""
    old = camera(analysed=0, blank=0)
    del old["recent"]
    assert health.handler(telemetry(schema_version="1.0", cameras={"front": old}), context) == {
        "metrics": 2,
        "status_written": True,
    }
    assert {name for name, _ in listed(cloudwatch)} == {"Heartbeat", "CameraRunning"}


def test_points_are_dated_by_sent_at_unless_the_clock_is_wrong():
    now = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    message = {"topic_thing_name": THING, "cameras": {}}
    sent = metric_data({**message, "sent_at": "2026-12-03T06:59:00.000Z"}, STAGE, now)
    assert sent[0]["Timestamp"] == datetime(2026, 12, 3, 6, 59, tzinfo=UTC)
    for wrong in ("2026-12-03T04:00:00.000Z", "2026-12-03T06:59:00", "yesterday", None):
        assert metric_data({**message, "sent_at": wrong}, STAGE, now)[0]["Timestamp"] == now, wrong


def emf(out: str) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for line in out.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                metrics[metric["Name"]] = metrics.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return metrics


MALFORMED: dict[str, tuple[Any, str]] = {
    "not_an_object": ([1, 2], "telemetry must be a JSON object, got list"),
    "no_thing": ({"cameras": {}}, "topic_thing_name: missing"),
    "spoofed_thing": ({"topic_thing_name": THING, "thing_name": "other", "cameras": {}}, "is not the topic's thing"),
    "cameras_list": ({"topic_thing_name": THING, "cameras": []}, "cameras: must be an object"),
    "camera_name": ({"topic_thing_name": THING, "cameras": {"a b": camera()}}, "cameras.a b: not a camera name"),
    "state_unknown": ({"topic_thing_name": THING, "cameras": {"f": camera(state="ok")}}, "cameras.f.state: 'ok'"),
    "too_many_cameras": (
        {"topic_thing_name": THING, "cameras": {f"c{i:03d}": camera() for i in range(17)}},
        "cameras: 17 cameras, at most 16 per message",
    ),
    "model_not_object": ({"topic_thing_name": THING, "cameras": {}, "model": "m.tflite"}, "model: must be an object"),
    "model_digest_number": (
        {"topic_thing_name": THING, "cameras": {}, "model": {"sha256": 7}},
        "model.sha256: must be a string or null, got 7",
    ),
}


BAD_COUNTERS: dict[str, tuple[Any, str]] = {
    "count_negative": (
        {"f": camera(analysed=-1)},
        "cameras.f.recent.analysed: must be a whole number >= 0, got -1",
    ),
    "count_bool": (
        {"f": {**camera(), "recent": {"analysed": True, "blank_frames": 0}}},
        "cameras.f.recent.analysed: must be a whole number >= 0, got True",
    ),
    "blank_over_analysed": (
        {"f": camera(analysed=5, blank=6)},
        "cameras.f.recent: blank_frames 6 > analysed 5",
    ),
}


@pytest.mark.parametrize("case", BAD_COUNTERS)
def test_a_camera_with_bad_counters_is_left_out_and_the_heartbeat_still_goes_out(
    case, health, health_logs, cloudwatch, status_table, context, telemetry, capsys
):
    bad, problem = BAD_COUNTERS[case]
    event = telemetry()
    event["cameras"] = {"front": camera(), **bad}
    assert health.handler(event, context) == {"metrics": 3, "status_written": True, "cameras_rejected": 1}
    assert listed(cloudwatch) == {
        ("Heartbeat", frozenset({("Stage", STAGE), ("Thing", THING)})),
        ("CameraRunning", frozenset({("Stage", STAGE), ("Thing", THING), ("Camera", "front")})),
        ("BlankFrameRatio", frozenset({("Stage", STAGE), ("Thing", THING), ("Camera", "front")})),
    }
    assert len(status_table.scan()["Items"]) == 1
    assert emf(capsys.readouterr().out) == {"TelemetryReceived": 1, "TelemetryCameraRejected": 1}
    [record] = [json.loads(line) for line in health_logs.getvalue().splitlines() if "camera metrics rejected" in line]
    assert problem in record["problem"]


@pytest.mark.parametrize(
    "env, refused",
    [
        ({"STAGE_THING_PREFIX": "vigil-prod-"}, True),
        ({"STAGE_THING_PREFIX": "vigil-dev-"}, False),
        ({"STAGE_THINGS": "lobby-cam, vigil-dev-cam-02"}, True),
        ({"STAGE_THINGS": f"lobby-cam,{THING}"}, False),
        ({}, False),  # neither set: every thing (the local demo)
    ],
)
def test_another_stages_thing_is_refused_and_puts_nothing(
    env, refused, health, cloudwatch, status_table, context, telemetry, capsys, monkeypatch
):
    """The same rule as the alert Lambda's owns_thing (lambda/vigil_alerts/config.py)."""
    for name in ("STAGE_THING_PREFIX", "STAGE_THINGS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = health.handler(telemetry(), context)
    assert result.get("refused", False) is refused
    put = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert (put == [] and status_table.scan()["Items"] == []) if refused else len(put) == 5
    counted = emf(capsys.readouterr().out)
    assert counted.get("TelemetryRefused", 0) == (1 if refused else 0)


def test_a_bad_camera_cap_setting_names_it(health, context, telemetry, monkeypatch):
    monkeypatch.setenv("VIGIL_MAX_CAMERAS", "lots")
    with pytest.raises(RuntimeError, match="VIGIL_MAX_CAMERAS"):
        health.handler(telemetry(), context)
    monkeypatch.setenv("VIGIL_MAX_CAMERAS", "1")
    with pytest.raises(InvalidTelemetryError, match="at most 1 per message"):
        health.handler(telemetry(), context)


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_telemetry_is_logged_counted_raised_and_puts_nothing(
    case, health, health_logs, cloudwatch, status_table, context, capsys
):
    event, problem = MALFORMED[case]
    with pytest.raises(InvalidTelemetryError, match=problem.replace(".", r"\.").replace("[", r"\[")):
        health.handler(event, context)

    assert cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"] == []  # not half a message either
    assert status_table.scan()["Items"] == []
    assert emf(capsys.readouterr().out) == {"TelemetryReceived": 1, "TelemetryRejected": 1}
    [record] = [json.loads(line) for line in health_logs.getvalue().splitlines() if "telemetry rejected" in line]
    assert record["level"] == "ERROR"
    assert problem in record["problem"]
    assert record["function_request_id"] == context.aws_request_id
