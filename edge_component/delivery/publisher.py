"""What every publisher is: ``publish(topic, message) -> None``, raising
:class:`PublishError` when the message was not accepted (so the caller keeps it), and
``close()``.

The publishers (where alert and telemetry messages go):

- :class:`~edge_component.delivery.jsonl.JsonLinesPublisher` for local runs: one JSON
  object per line, ``{"topic": ..., "message": {...}}``, to a file or stdout.
- :class:`~edge_component.delivery.ipc.GreengrassIpcPublisher` on a device:
  ``GreengrassCoreIPCClientV2.publish_to_iot_core`` with QoS 1 (awsiotsdk), through the
  Greengrass nucleus to AWS IoT Core.
- :class:`~edge_component.delivery.mqtt.MqttPublisher` to any MQTT broker over TLS with
  a client certificate (paho-mqtt 2.x): AWS IoT Core directly (port 8883, client id =
  thing name), or the tests' mosquitto.

On a device these are the transport behind
:class:`~edge_component.delivery.sender.OutboxPublisher`, which stores every alert first.
"""

from __future__ import annotations

from typing import Any, Protocol


class PublishError(RuntimeError):
    """The message was not accepted by the transport; it must be kept and retried."""


class PublishRefusedError(PublishError):
    """The transport refused this message for good (e.g. not authorized to publish on
    its topic): sending it again cannot succeed, so the sender dead-letters it instead
    of retrying it at the head of the queue. Anything that may pass later (offline, a
    full spool, a timeout) stays a plain :class:`PublishError`."""


class Publisher(Protocol):
    def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
