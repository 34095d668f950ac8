"""app.handler as Lambda calls it: environment, context, metrics (EMF on stdout), logs."""

from __future__ import annotations

import copy
import io
import json
import sys

import boto3
import pytest

from vigil_alerts.config import ConfigError, Settings
from vigil_alerts.local import load_handler_module
from vigil_alerts.validation import InvalidAlertError


@pytest.fixture
def log_lines(app):
    """What the handler's Powertools Logger writes (its stream is bound at import, before
    pytest's capture, so it is pointed at a buffer here)."""
    buffer = io.StringIO()
    previous = app.logger.registered_handler.setStream(buffer)
    yield buffer
    app.logger.registered_handler.setStream(previous)


def emitted(capsys, log_lines) -> tuple[dict[str, float], list[dict]]:
    """Metrics (EMF on stdout; name -> summed value) and the JSON log records."""
    metrics: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                total = sum(value) if isinstance(value, list) else value
                metrics[metric["Name"]] = metrics.get(metric["Name"], 0) + total
    logs = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.startswith("{")]
    return metrics, logs


def test_start_alert_is_notified_and_counted(app, topic, context, capsys, log_lines, event_id, start_event, thing):
    result = app.handler(start_event(), context)

    assert result["status"] == "notified"
    [envelope] = topic.received()
    assert envelope["Subject"] == "[Vigil] Intrusion: cam0/room at Lakeside (dev)"
    metrics, logs = emitted(capsys, log_lines)
    assert metrics == {"AlertsReceived": 1, "AlertsNotified": 1}
    [processed] = [log for log in logs if log["message"] == "alert processed"]
    assert processed["thing_name"] == thing and processed["event_id"] == event_id
    assert processed["function_request_id"] == context.aws_request_id


def test_update_is_acknowledged_without_notifying(app, topic, context, capsys, log_lines, start_event):
    assert app.handler(start_event(event_type="update", sequence=1), context)["status"] == "acknowledged"
    assert topic.received() == []
    assert emitted(capsys, log_lines)[0] == {"AlertsReceived": 1, "AlertsAcknowledged": 1}


def test_invalid_alert_raises_is_logged_and_counted(app, topic, context, capsys, log_lines, start_event):
    with pytest.raises(InvalidAlertError):
        app.handler(start_event(topic_thing_name="cam-02"), context)

    assert topic.published() == []
    metrics, logs = emitted(capsys, log_lines)
    assert metrics == {"AlertsReceived": 1, "AlertsRejected": 1, "AlertsRejectedByReason": 1}
    [rejected] = [log for log in logs if log["message"] == "alert rejected"]
    assert rejected["code"] == "thing_mismatch"
    assert rejected["thing_name"] == "cam-02"  # the topic's thing: the one that sent it
    assert rejected["level"] == "WARNING"


def test_log_keys_do_not_leak_into_the_next_invocation(app, context, capsys, log_lines, start_event):
    app.handler(start_event(), context)
    with pytest.raises(InvalidAlertError):
        app.handler(["not", "an", "object"], context)
    [rejected] = [log for log in emitted(capsys, log_lines)[1] if log["message"] == "alert rejected"]
    assert "event_id" not in rejected and "thing_name" not in rejected


def test_evidence_bucket_links_the_snapshot_with_sigv4(app, topic, context, monkeypatch, event_id, start_event, thing):
    monkeypatch.setenv("EVIDENCE_BUCKET", "vigil-evidence")
    key = f"snapshots/{thing}/{event_id}/cam0_1.jpg"
    app.handler(start_event(snapshot={"file": "cam0_1.jpg", "s3_key": key}), context)
    [envelope] = topic.received()
    [link] = [line for line in envelope["Message"].splitlines() if line.startswith("Link:")]
    assert f"/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256" in link and "X-Amz-Expires=86400" in link


def test_missing_topic_arn_fails_loudly(app, context, monkeypatch, start_event):
    monkeypatch.delenv("ALERT_TOPIC_ARN")
    with pytest.raises(ConfigError, match="ALERT_TOPIC_ARN"):
        app.handler(start_event(), context)


def test_injected_client_is_used(app, topic, context, region, start_event):
    calls = []
    real = boto3.client("sns", region_name=region)

    class Recording:
        def publish(self, **kwargs):
            calls.append(kwargs)
            return real.publish(**kwargs)

    app.use_clients(sns=Recording())
    app.handler(start_event(), context)
    assert [call["TopicArn"] for call in calls] == [topic.arn]


def test_settings_defaults_and_errors():
    settings = Settings.from_env({"ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t"})
    assert (settings.site_name, settings.time_zone, settings.stage) == ("Vigil", "UTC", "")
    assert settings.idempotency_table is None and settings.throttle_max_per_window is None
    with pytest.raises(ConfigError, match="THROTTLE_MAX_PER_WINDOW"):
        Settings.from_env({"ALERT_TOPIC_ARN": "x", "THROTTLE_MAX_PER_WINDOW": "three"})
    with pytest.raises(ConfigError, match="THROTTLE_WINDOW_S"):
        Settings.from_env({"ALERT_TOPIC_ARN": "x", "THROTTLE_WINDOW_S": "0"})


def test_handler_runs_where_aws_xray_sdk_is_missing(topic, context, monkeypatch, start_event):
    # The Powertools layer ships aws-xray-sdk; a bare development venv may not.
    from aws_lambda_powertools import Tracer

    monkeypatch.setitem(sys.modules, "aws_xray_sdk", None)
    monkeypatch.setitem(sys.modules, "aws_xray_sdk.core", None)
    monkeypatch.setattr(Tracer, "_config", copy.copy(Tracer._default_config))  # forget the cached provider
    monkeypatch.setenv("ALERT_TOPIC_ARN", topic.arn)
    name = "vigil_alert_app_untraced"
    try:
        module = load_handler_module(name)
        assert isinstance(module.tracer, module._Untraced)
        assert module.handler(start_event(), context)["status"] == "notified"
    finally:
        sys.modules.pop(name, None)
    assert len(topic.received()) == 1


@pytest.mark.parametrize("started_at", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_overflowing_date_is_rejected_and_counted_as_a_timestamp(
    app, topic, context, capsys, log_lines, started_at, start_event
):
    with pytest.raises(InvalidAlertError) as caught:
        app.handler(start_event(started_at=started_at), context)

    assert caught.value.code == "timestamp" and caught.value.reason.startswith("started_at: ")
    assert topic.published() == []
    metrics, logs = emitted(capsys, log_lines)
    assert metrics == {"AlertsReceived": 1, "AlertsRejected": 1, "AlertsRejectedByReason": 1}
    [rejected] = [log for log in logs if log["message"] == "alert rejected"]
    assert rejected["code"] == "timestamp"


def test_another_stages_thing_is_refused_and_counted_and_nothing_is_sent(
    app, topic, context, capsys, log_lines, monkeypatch, start_event
):
    # Stages share an account: prod's function must never notify about a dev camera, even
    # if a rule selected it (issue 12, item 9; the rule's own WHERE: infra/alert_rule.py).
    monkeypatch.setenv("STAGE_THING_PREFIX", "vigil-prod-")
    monkeypatch.setenv("STAGE_THINGS", "porch, garage")
    result = app.handler(start_event(thing_name="vigil-dev-cam-01", topic_thing_name="vigil-dev-cam-01"), context)
    assert result == {"status": "refused", "thing_name": "vigil-dev-cam-01"}
    assert topic.received() == []
    metrics, _ = emitted(capsys, log_lines)
    assert metrics == {"AlertsReceived": 1, "AlertsRefused": 1}
    for thing in ("vigil-prod-cam-01", "garage"):
        assert (
            app.handler(
                start_event(
                    thing_name=thing, topic_thing_name=thing, event_id=thing.encode().hex().ljust(32, "0")[:32]
                ),
                context,
            )["status"]
            == "notified"
        )
    assert len(topic.received()) == 2
    assert Settings.from_env({"ALERT_TOPIC_ARN": "a", "STAGE_THINGS": " porch, ,garage "}).things == {"porch", "garage"}


def test_cold_import_as_lambda_runs_it_builds_no_client_and_patches_botocore_on_first_use(tmp_path, region):
    """With LAMBDA_TASK_ROOT set (as in Lambda), X-Ray's recorder takes a LocalSampler
    and builds no botocore client (aws_xray_sdk/core/recorder.py, sampling/connector.py),
    the Tracer patches nothing at import, and boto3/botocore.client load with the first
    client, which X-Ray instruments. Timings: benchmarks/bench_lambda.py."""
    import os
    import subprocess
    from pathlib import Path

    lambda_dir = Path(__file__).resolve().parents[2] / "lambda"
    script = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(lambda_dir)!r})\n"
        "import app\n"
        "from aws_xray_sdk.core import xray_recorder\n"
        "before = {m: m in sys.modules for m in ('boto3', 'botocore.client', 's3transfer')}\n"
        "app.clients.sns\n"
        "import botocore.client\n"
        "print(json.dumps({'before': before, 'sampler': type(xray_recorder.sampler).__name__,\n"
        "    'patched': hasattr(botocore.client.BaseClient._make_api_call, '__wrapped__')}))\n"
    )
    env = {
        **os.environ,
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_NAME": "vigil-alerts",
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == {"boto3": False, "botocore.client": False, "s3transfer": False}
    assert result["sampler"] == "LocalSampler"
    assert result["patched"], "botocore is instrumented before the first client"
