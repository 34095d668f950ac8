"""Vigil alert Lambda: ``app.handler``, invoked by the IoT topic rule
``SELECT *, topic(2) AS topic_thing_name, timestamp() AS received_at_ms FROM 'vigil/+/alerts'``
(``WHERE`` the stage's things).

``app.flush_handler``, run every minute by a schedule, sends the summary of alerts the
throttle held back once their window closes. The handler is the Lambda-shaped shell:
Powertools logging, metrics and tracing, the environment
(:class:`vigil_alerts.config.Settings`) and lazily created boto3 clients (boto3 and
X-Ray's botocore patch load with the first client, not at cold start).
The work is :func:`vigil_alerts.processing.process_alert`.

An invalid alert raises ``InvalidAlertError`` after it is logged and counted, so the
asynchronous invocation fails and ends on the function's failure destination / DLQ
instead of vanishing.

Metrics (namespace ``POWERTOOLS_METRICS_NAMESPACE``, default "Vigil"): AlertsReceived,
AlertsNotified, AlertsAcknowledged, AlertsDuplicate, AlertsThrottled, AlertsRefused (another
stage's thing), AlertsRejected,
AlertsRejectedByReason with a ``reason`` dimension (``InvalidAlertError.code``), and
DeviceClockWrong (an alert whose times are far from IoT Core's receipt time).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from vigil_alerts.config import Settings
from vigil_alerts.delivery import CameraThrottle, EventDeduplicator
from vigil_alerts.feedback import FeedbackSigner
from vigil_alerts.notify import format_held_summary, publish
from vigil_alerts.processing import process_alert
from vigil_alerts.validation import TOPIC_THING_KEY, InvalidAlertError
from vigil_feedback.secret import hmac_key

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "vigil-alerts"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Vigil"
STATUS_METRICS = {
    "notified": "AlertsNotified",
    "acknowledged": "AlertsAcknowledged",
    "duplicate": "AlertsDuplicate",
    "throttled": "AlertsThrottled",
    "refused": "AlertsRefused",
}

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class _Untraced:
    """Stands in for Tracer where aws-xray-sdk is not installed (a bare development
    environment; the Powertools layer ships it)."""

    def capture_lambda_handler(self, function):
        return function

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def patch(self, modules: Any = None) -> None:
        pass


def _make_tracer() -> Tracer | _Untraced:
    try:
        # No patching at import: the default patches every module X-Ray knows, importing
        # each (botocore.client alone is most of the cold start). _client patches botocore
        # before the first client exists.
        return Tracer(service=SERVICE, auto_patch=False)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "aws_xray_sdk":
            raise
        logging.getLogger(__name__).warning("aws-xray-sdk not installed; tracing off")
        return _Untraced()


tracer = _make_tracer()


_patched = False


def _client(service: str, **config: Any) -> Any:
    # boto3 (and s3transfer under it) is imported by the first client, not at cold start;
    # X-Ray instruments botocore before that client is made.
    global _patched
    if not _patched:
        tracer.patch(modules=("botocore",))
        _patched = True
    import boto3
    from botocore.config import Config

    return boto3.client(service, config=Config(**config) if config else None)


class AwsClients:
    """What the handler keeps between warm invocations: boto3 clients, each created on
    first use (never at import, so moto's mock or the demo's endpoint is in place
    first), and the deduplicator and throttle built on them. Pass clients in to use
    those instead."""

    def __init__(self, *, sns: Any = None, dynamodb: Any = None, s3: Any = None, secrets: Any = None):
        self._sns, self._dynamodb, self._s3, self._secrets = sns, dynamodb, s3, secrets
        self._guard_key: tuple | None = None
        self._guards: tuple[EventDeduplicator | None, CameraThrottle | None] = (None, None)

    @property
    def sns(self) -> Any:
        if self._sns is None:
            self._sns = _client("sns")
        return self._sns

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = _client("dynamodb")
        return self._dynamodb

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            # SigV4 with the regional endpoint, so presigned links work in every region.
            self._s3 = _client("s3", signature_version="s3v4", s3={"addressing_style": "virtual"})
        return self._s3

    @property
    def secrets(self) -> Any:
        if self._secrets is None:
            self._secrets = _client("secretsmanager")
        return self._secrets

    def feedback(self, settings: Settings) -> FeedbackSigner | None:
        """The link signer ``settings`` ask for (FEEDBACK_URL and FEEDBACK_SECRET_ARN), or
        None. Its key is read from Secrets Manager on first use, then cached."""
        if not (settings.feedback_url and settings.feedback_secret_arn):
            return None
        arn = settings.feedback_secret_arn
        return FeedbackSigner(
            url=settings.feedback_url, key=lambda: hmac_key(self.secrets, arn), link_s=settings.feedback_link_s
        )

    def guards(self, settings: Settings) -> tuple[EventDeduplicator | None, CameraThrottle | None]:
        """The deduplicator and throttle ``settings`` ask for (None where not), built
        once: Powertools' persistence layer registers a hook on the DynamoDB client each
        time it is created, so one per invocation would pile them up."""
        key = (settings.idempotency_table, settings.throttle_max_per_window, settings.throttle_window_s)
        if key == self._guard_key:
            return self._guards
        deduplicator = throttle = None
        if settings.idempotency_table:
            deduplicator = EventDeduplicator(settings.idempotency_table, dynamodb_client=self.dynamodb)
            if settings.throttle_max_per_window:
                throttle = CameraThrottle(
                    settings.idempotency_table,
                    dynamodb_client=self.dynamodb,
                    max_per_window=settings.throttle_max_per_window,
                    window_s=settings.throttle_window_s,
                )
        elif settings.throttle_max_per_window:
            logger.warning("THROTTLE_MAX_PER_WINDOW needs IDEMPOTENCY_TABLE; not throttling")
        self._guard_key, self._guards = key, (deduplicator, throttle)
        return self._guards


clients = AwsClients()


def use_clients(*, sns: Any = None, dynamodb: Any = None, s3: Any = None, secrets: Any = None) -> None:
    """Replace the handler's clients (None: create a default one on next use)."""
    global clients
    clients = AwsClients(sns=sns, dynamodb=dynamodb, s3=s3, secrets=secrets)


def _log_keys(event: Any) -> dict[str, str]:
    """thing_name and event_id for every log line, taken before validation (so
    rejections carry them too), as bounded strings."""
    if not isinstance(event, dict):
        return {}
    keys = {"thing_name": event.get(TOPIC_THING_KEY), "event_id": event.get("event_id")}
    return {key: str(value)[:128] for key, value in keys.items() if value is not None}


def _count_rejection(code: str) -> None:
    metrics.add_metric(name="AlertsRejected", unit=MetricUnit.Count, value=1)
    with single_metric(
        name="AlertsRejectedByReason",
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name="reason", value=code)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: one topic-rule event (alert + ``topic_thing_name``).

    Returns :func:`process_alert`'s result; raises ``InvalidAlertError`` for a rejected
    event and lets AWS errors propagate (both fail the invocation).
    """
    settings = Settings.from_env()
    logger.append_keys(**_log_keys(event))
    metrics.add_metric(name="AlertsReceived", unit=MetricUnit.Count, value=1)
    deduplicator, throttle = clients.guards(settings)
    if deduplicator:
        deduplicator.register_lambda_context(context)
    try:
        result = process_alert(
            event,
            sns_client=clients.sns,
            topic_arn=settings.alert_topic_arn,
            site_name=settings.site_name,
            time_zone=settings.time_zone,
            stage=settings.stage,
            evidence_bucket=settings.evidence_bucket,
            s3_client=clients.s3 if settings.evidence_bucket else None,
            deduplicator=deduplicator,
            throttle=throttle,
            clock_skew_max_s=settings.clock_skew_max_s,
            max_delivery_delay_s=settings.max_delivery_delay_s,
            owns_thing=settings.owns_thing,
            feedback=clients.feedback(settings),
            events_table=settings.events_table,
            dynamodb_client=clients.dynamodb if settings.events_table else None,
            training_bucket=settings.training_bucket,
            training_s3_client=clients.s3 if settings.training_bucket else None,
        )
    except InvalidAlertError as err:
        _count_rejection(err.code)
        logger.warning("alert rejected", extra={"code": err.code, "reason": err.reason})
        raise
    metrics.add_metric(name=STATUS_METRICS[result["status"]], unit=MetricUnit.Count, value=1)
    if result.get("device_clock") == "wrong":
        metrics.add_metric(name="DeviceClockWrong", unit=MetricUnit.Count, value=1)
    tracer.put_annotation(key="status", value=result["status"])
    logger.info("alert processed", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def flush_handler(event: Any, context: Any) -> dict[str, int]:
    """Scheduled entry point (every minute): one summary per camera whose held alerts
    are due, i.e. its throttle window closed with no later notification to carry the
    count. ``event`` (the schedule's) is not read. Returns ``summaries`` sent and
    ``held_reported`` (alerts they counted); SNS and DynamoDB errors propagate."""
    settings = Settings.from_env()
    _, throttle = clients.guards(settings)
    if throttle is None:
        return {"summaries": 0, "held_reported": 0}

    def send(thing: str, camera: str, held: Any) -> None:
        note = format_held_summary(
            thing, camera, held, site_name=settings.site_name, time_zone=settings.time_zone, stage=settings.stage
        )
        publish(clients.sns, settings.alert_topic_arn, note)

    sent = throttle.flush_due(send)
    reported = sum(count for _, _, count in sent)
    metrics.add_metric(name="HeldSummariesSent", unit=MetricUnit.Count, value=len(sent))
    if sent:
        logger.info("held alerts summarised", extra={"cameras": [f"{t}/{c}" for t, c, _ in sent], "held": reported})
    return {"summaries": len(sent), "held_reported": reported}
