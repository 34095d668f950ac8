"""The Greengrass IPC publisher (edge_component/delivery/ipc.py) behind the outbox, with a
fake IPC client."""

from __future__ import annotations

import json

from edge_component.contracts.topics import alert_topic
from edge_component.delivery.ipc import GreengrassIpcPublisher
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.sender import OutboxPublisher

THING = "cam-test-01"
TOPIC = alert_topic(THING)
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}  # backoff for tests; defaults are 0.5 s .. 30 s


def test_ipc_publisher_via_outbox_retries_the_head_and_keeps_order(tmp_path, healthy, make_alerts):
    class FlakyIpcClient:
        """Same method as GreengrassCoreIPCClientV2.publish_to_iot_core; fails some calls."""

        def __init__(self, fail_calls):
            self.fail_calls, self.calls, self.published, self.closed = set(fail_calls), 0, [], False

        def publish_to_iot_core(self, *, topic_name, qos, payload):
            self.calls += 1
            if self.calls in self.fail_calls:
                raise ConnectionError("nucleus: IoT Core unreachable")
            self.published.append((topic_name, qos, json.loads(payload)))

        def close(self):
            self.closed = True

    alerts = make_alerts(5)
    client = FlakyIpcClient(fail_calls={1, 2, 3, 4, 9, 12})
    pub = OutboxPublisher(Outbox(tmp_path / "o.sqlite"), GreengrassIpcPublisher(client), **FAST)
    for a in alerts:
        pub.publish(TOPIC, a)
    assert pub.flush(10)
    assert [m for _, _, m in client.published] == alerts
    assert {t for t, _, _ in client.published} == {TOPIC}
    assert {str(getattr(q, "value", q)) for _, q, _ in client.published} == {"1"}  # QoS 1, AT_LEAST_ONCE
    assert pub.stats() | {"reconnects": 0} == healthy(sent=15, retries=6)
    pub.close()
    assert client.closed


def test_an_alert_handed_to_greengrass_offline_is_the_spoolers_to_keep_not_the_outboxs(
    tmp_path, make_alerts, SpoolingNucleus
):
    """The guarantee that holds: the outbox keeps an alert until publish_to_iot_core returns,
    and that return means "spooled", not "received by IoT Core". An offline alert then
    survives a nucleus restart only with the disk spooler."""
    alerts = make_alerts(1)
    for storage, survives in (("Memory", False), ("Disk", True)):
        nucleus = SpoolingNucleus(max_messages=100, storage=storage)
        pub = OutboxPublisher(Outbox(tmp_path / f"{storage}.sqlite"), GreengrassIpcPublisher(nucleus), **FAST)
        for a in alerts:
            pub.publish(TOPIC, a)
        assert pub.flush(10)  # offline, yet the outbox is empty: the spool took them
        assert pub.stats()["depth"] == 0 and pub.stats()["sent"] == 3
        nucleus.restart()
        nucleus.reconnect()
        assert (nucleus.iot_core == alerts) is survives
        pub.close()


def test_a_full_spool_leaves_the_alerts_in_the_outbox_until_the_spool_takes_them(
    tmp_path, make_alerts, caplog, SpoolingNucleus
):
    alerts = make_alerts(2)
    nucleus = SpoolingNucleus(max_messages=2)
    pub = OutboxPublisher(Outbox(tmp_path / "o.sqlite"), GreengrassIpcPublisher(nucleus), **FAST)
    for a in alerts:
        pub.publish(TOPIC, a)
    assert not pub.flush(1.0)
    assert pub.stats()["depth"] == 4 and pub.stats()["retries"] >= 1  # refused at publish time: kept
    assert "ServiceError: SpoolerStoreException" in caplog.text
    for _ in range(20):  # the link is back: the spool drains to IoT Core, the outbox refills it
        nucleus.reconnect()
        if pub.flush(0.5):
            break
    nucleus.reconnect()
    assert nucleus.iot_core == alerts  # every alert, in order
    pub.close()
