"""Alerts to AWS IoT Core through the Greengrass nucleus (IPC)."""

from __future__ import annotations

import json
from typing import Any

from .publisher import PublishError, PublishRefusedError

# The IPC errors that say this message can never be published as it is: the component's
# accessControl does not allow aws.greengrass#PublishToIoTCore on the topic
# (https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-iot-core-mqtt.html,
# "Authorization"), or the request itself is invalid. An offline or restarting nucleus
# raises other errors (ServiceError, a lost connection), which stay retryable.
REFUSALS = ("UnauthorizedError", "InvalidArgumentsError")


class GreengrassIpcPublisher:
    """Publishes to AWS IoT Core through the Greengrass nucleus (QoS 1).

    ``client`` is a ``GreengrassCoreIPCClientV2`` (created once by ``__main__`` and
    handed in, so tests pass a fake with the same method). The recipe's
    ``accessControl`` must allow ``aws.greengrass#PublishToIoTCore`` on the topic.

    Delivery: ``publish_to_iot_core`` returns once the nucleus has put the message in
    its spooler, not when IoT Core acknowledges it (aws-greengrass-nucleus
    MqttClient.java), so the outbox lets an alert go at that point; from then on the
    spooler keeps it: in memory unless the disk spooler is deployed, and only for
    ``mqtt.maxPublishRetry`` attempts (default 100). A full spool is refused at publish
    time, and the outbox keeps the alert. Because the spool is in memory here, what
    was handed over is journalled and handed over again after a restart (:mod:`.handover`).
    """

    def __init__(self, client: Any):
        self._client = client

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        try:
            from awsiot.greengrasscoreipc.model import QOS

            qos = QOS.AT_LEAST_ONCE
        except ImportError:  # the fake client in tests accepts the string value
            qos = "1"
        payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
        try:
            self._client.publish_to_iot_core(topic_name=topic, qos=qos, payload=payload)
        except Exception as exc:  # the SDK raises many error types; all mean "not sent"
            # The SDK's errors keep their text in .message; str() of one is empty.
            reason = getattr(exc, "message", None) or str(exc)
            error = PublishRefusedError if type(exc).__name__ in REFUSALS else PublishError
            raise error(f"publish_to_iot_core({topic}) failed: {type(exc).__name__}: {reason}") from exc

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close:
            close()
