"""Alerts and telemetry to the Azure IoT Edge hub, as module outputs (azure-iot-device).

``vigil/<thing>/alerts`` goes to the module output ``alerts`` and
``vigil/<thing>/telemetry`` to ``telemetry``; the deployment's ``$edgeHub`` routes send
both ``$upstream`` to the IoT Hub. The body is the same JSON as on AWS (the alert schema),
as UTF-8 with content type ``application/json`` so that IoT Hub message routing can
query it; the application properties ``topic`` and ``thing_name`` carry what the MQTT
topic carries on AWS.

azure-iot-device 2.14.0 requires paho-mqtt<2 and the project pins paho-mqtt 2 (mqtt.py
uses its 2.x API), so the SDK is imported only when a message is built: the module image
installs its own requirements (edge_component/requirements-iotedge.txt), and the dev
venv has the SDK without its dependencies, for the tests.
"""

from __future__ import annotations

import json
from typing import Any

from edge_component.contracts.topics import alert_topic, telemetry_topic, thing_from_topic

from .publisher import PublishError, PublishRefusedError

ALERTS_OUTPUT = "alerts"
TELEMETRY_OUTPUT = "telemetry"


def output_for(topic: str) -> tuple[str, str]:
    """``(output name, thing name)`` for a Vigil topic; ValueError if it is not one."""
    thing = thing_from_topic(topic)
    if topic == alert_topic(thing):
        return ALERTS_OUTPUT, thing
    if topic == telemetry_topic(thing):
        return TELEMETRY_OUTPUT, thing
    raise ValueError(f"not a Vigil topic: {topic!r}")  # thing_from_topic allows no other channel


class IoTEdgePublisher:
    """Sends each message to a module output with ``IoTHubModuleClient.send_message_to_output``.

    ``client``: an ``azure.iot.device.IoTHubModuleClient`` (``create_from_edge_environment``),
    created once by ``__main__`` and shared with the twin follower; tests pass a fake with
    the same methods.

    Delivery: the sync client's ``send_message_to_output`` "will not return until the event
    has been sent to the service and the service has acknowledged receipt of the event"
    (azure-iot-device 2.14.0, azure/iot/device/iothub/sync_clients.py: it waits on the
    operation's callback, which azure/iot/device/common/pipeline/pipeline_stages_mqtt.py
    completes on "PUBACK received", QoS 1; a publish cancelled first is an error).
    So when ``publish`` returns, the edge hub has the message (it stores and forwards it
    upstream) and the outbox may remove it; any error raises PublishError and the outbox
    keeps it and retries it, in order, except a message over the SDK's 256 KB or a topic
    that is not Vigil's: PublishRefusedError (the sender dead-letters it).
    """

    def __init__(self, client: Any):
        self._client = client

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        try:
            output, thing = output_for(topic)
        except ValueError as exc:
            raise PublishRefusedError(f"send_message_to_output: {exc}") from exc  # never a topic later
        from azure.iot.device import Message  # lazily: see the module docstring

        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        msg = Message(body, content_encoding="utf-8", content_type="application/json")
        msg.custom_properties["topic"] = topic
        msg.custom_properties["thing_name"] = thing
        try:
            self._client.send_message_to_output(msg, output)
        except ValueError as exc:
            # The SDK's size check, before anything is sent: "Size of message can not exceed
            # 256 KB." (sync_clients.py send_message_to_output, TELEMETRY_MESSAGE_SIZE_LIMIT =
            # 262144 in constant.py). Sending it again cannot pass: dead-lettered, not retried.
            raise PublishRefusedError(f"send_message_to_output({output}) refused: {exc}") from exc
        except Exception as exc:  # the SDK raises many error types (ConnectionDroppedError, ...); all mean "not sent"
            raise PublishError(f"send_message_to_output({output}) failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Shut the client down (ends a send waiting for its acknowledgement); errors are ignored."""
        try:
            self._client.shutdown()
        except Exception:  # noqa: BLE001, S110 - closing at shutdown: nothing left to do with an error
            pass
