"""The IoT Edge module publisher (edge_component/delivery/iotedge.py) against a fake
``IoTHubModuleClient`` whose methods have the real class's signatures (azure-iot-device
2.14.0), through the same durable outbox as on Greengrass.

The outbox may remove a message once ``send_message_to_output`` returns because the sync
client's call "will not return until the event has been sent to the service and the
service has acknowledged receipt of the event" (azure-iot-device 2.14.0,
azure/iot/device/iothub/sync_clients.py, IoTHubModuleClient.send_message_to_output;
Azure/azure-iot-sdk-python azure-iot-device/azure/iot/device/iothub/sync_clients.py), and
the MQTT stage completes that send on "PUBACK received"
(azure/iot/device/common/pipeline/pipeline_stages_mqtt.py).
"""

from __future__ import annotations

import inspect
import json

import pytest

from edge_component.delivery.iotedge import IoTEdgePublisher
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.publisher import PublishError
from edge_component.delivery.sender import OutboxPublisher

THING = "edge-cam"
ALERTS = f"vigil/{THING}/alerts"
TELEMETRY = f"vigil/{THING}/telemetry"


def _shape(fn) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_fake_client_matches_the_sdk(FakeModuleClient):
    from azure.iot.device import IoTHubModuleClient

    names = [n for n in vars(FakeModuleClient) if not n.startswith("_") and n not in FakeModuleClient.TEST_ONLY]
    assert {"send_message_to_output", "get_twin", "patch_twin_reported_properties", "shutdown"} <= set(names)
    for name in names:
        real = inspect.getattr_static(IoTHubModuleClient, name)
        fake = inspect.getattr_static(FakeModuleClient, name)
        assert type(real) is type(fake), name  # function, classmethod or property alike
        if isinstance(real, property):
            assert (real.fset is None) == (fake.fset is None), name
        else:
            real_fn = real.__func__ if isinstance(real, classmethod) else real
            fake_fn = fake.__func__ if isinstance(fake, classmethod) else fake
            assert _shape(real_fn) == _shape(fake_fn), name


def test_alerts_go_in_order_to_the_alerts_output_as_json_messages(FakeModuleClient, make_alerts):
    from azure.iot.device import Message

    client = FakeModuleClient()
    client.connect()
    publisher = IoTEdgePublisher(client)
    alerts = make_alerts(2)
    for alert in alerts:
        publisher.publish(ALERTS, alert)
    publisher.publish(TELEMETRY, {"thing_name": THING, "cameras": {}})
    assert [out for out, _ in client.sent] == ["alerts"] * 6 + ["telemetry"]
    messages = [m for _, m in client.sent]
    assert all(isinstance(m, Message) for m in messages)
    assert [json.loads(m.data) for m in messages[:6]] == alerts
    assert {(m.content_type, m.content_encoding) for m in messages} == {("application/json", "utf-8")}
    assert messages[0].custom_properties == {"topic": ALERTS, "thing_name": THING}
    assert messages[-1].custom_properties == {"topic": TELEMETRY, "thing_name": THING}
    publisher.close()
    assert client.shut_down


def test_a_client_error_is_a_publish_error_and_a_foreign_topic_is_refused(FakeModuleClient, make_alerts):
    client = FakeModuleClient()  # never connected: the SDK's NoConnectionError
    publisher = IoTEdgePublisher(client)
    with pytest.raises(PublishError, match="send_message_to_output\\(alerts\\) failed: NoConnectionError"):
        publisher.publish(ALERTS, make_alerts(1)[0])
    client.connect()
    with pytest.raises(PublishError, match="not a Vigil topic"):
        publisher.publish("vigil/edge-cam/other", {"a": 1})
    assert client.sent == []


def test_no_alert_is_lost_across_a_disconnect_and_they_go_in_order_after(FakeModuleClient, make_alerts, tmp_path):
    client = FakeModuleClient()
    client.connect()
    outbox = Outbox(tmp_path / "outbox.sqlite", 1000)
    publisher = OutboxPublisher(outbox, IoTEdgePublisher(client), retry_initial_s=0.01, retry_max_s=0.05)
    alerts = make_alerts(4)
    publisher.publish(ALERTS, alerts[0])
    assert publisher.flush(30)
    client.offline()
    for alert in alerts[1:]:
        publisher.publish(ALERTS, alert)
    assert client.wait_attempts(1 + 5)  # five failed sends of the head while offline
    assert outbox.depth == len(alerts) - 1  # all kept
    client.online()
    assert publisher.flush(30)
    assert [json.loads(m.data) for _, m in client.sent] == alerts  # each once, in order
    publisher.close()


def test_a_message_over_256_kb_is_refused_for_good_by_the_real_sdk():
    """azure-iot-device 2.14.0 checks the size before sending (sync_clients.py,
    send_message_to_output: ValueError "Size of message can not exceed 256 KB.",
    constant.TELEMETRY_MESSAGE_SIZE_LIMIT 262144): retrying cannot pass, so it is a
    PublishRefusedError, which the sender dead-letters instead of blocking the queue."""
    from azure.iot.device import IoTHubModuleClient

    from edge_component.delivery.publisher import PublishRefusedError

    client = IoTHubModuleClient.create_from_connection_string(
        "HostName=hub.azure-devices.net;DeviceId=edge-cam;ModuleId=vigil;SharedAccessKey=YWJj"
    )
    try:
        with pytest.raises(PublishRefusedError, match="can not exceed 256 KB"):
            IoTEdgePublisher(client).publish(TELEMETRY, {"x": "y" * 270_000})
        with pytest.raises(PublishRefusedError, match="not a Vigil topic"):
            IoTEdgePublisher(client).publish("vigil/edge-cam/other", {"a": 1})
    finally:
        client.shutdown()
