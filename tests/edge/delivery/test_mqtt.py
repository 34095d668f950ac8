"""The MQTT publisher (edge_component/delivery/mqtt.py) against a real mosquitto broker
with TLS and client certificates (the local stand-in for AWS IoT Core)."""

from __future__ import annotations

import time

import pytest

from edge_component.contracts.topics import alert_topic
from edge_component.delivery.mqtt import MqttPublisher
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.publisher import PublishError
from edge_component.delivery.sender import OutboxPublisher

THING = "cam-test-01"
TOPIC = alert_topic(THING)
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}  # backoff for tests; defaults are 0.5 s .. 30 s


def mqtt_transport(broker, ca, keys=None, **kw):
    keys = keys or ca.client(THING)
    kw = {"connect_timeout_s": 2, "publish_timeout_s": 2, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2} | kw
    return MqttPublisher(
        "127.0.0.1", broker.port, client_id=THING, ca_file=ca.cert_file, cert_file=keys.cert, key_file=keys.key, **kw
    )


class RuleStandIn:
    """Accepts a message only while the subscriber holds its subscription. In AWS the
    topic rule is always subscribed; mosquitto without persistence forgets the
    subscriber at a restart, and what it accepted before the subscriber is back would
    go nowhere, which says nothing about the edge."""

    def __init__(self, transport: MqttPublisher, subscriber):  # subscriber: the broker fixture's Subscriber
        self.transport, self.subscriber = transport, subscriber

    @property
    def reconnects(self) -> int:
        return self.transport.reconnects

    def publish(self, topic, message):
        if not self.subscriber.ready.is_set():
            raise PublishError("the alert rule's stand-in is not subscribed yet")
        self.transport.publish(topic, message)

    def close(self):
        self.transport.close()


def test_alerts_reach_a_subscriber_in_order_with_qos1(tmp_path, broker, ca, subscriber, healthy, make_alerts):
    alerts = make_alerts(4)
    transport = mqtt_transport(broker, ca)
    assert transport.wait_connected(5), broker.log()
    pub = OutboxPublisher(Outbox(tmp_path / "outbox.sqlite"), transport, **FAST)
    for a in alerts:
        pub.publish(TOPIC, a)
    assert pub.flush(10)
    assert subscriber.wait_for(lambda r: len(r) >= len(alerts), 5)
    time.sleep(0.1)  # nothing more may come
    assert [m for _, m, _ in subscriber.received] == alerts
    assert {(t, q) for t, _, q in subscriber.received} == {(TOPIC, 1)}
    assert pub.stats() == healthy(sent=len(alerts))
    assert f"as {THING} " in broker.log()  # connected with the thing name as client id
    pub.close()


def test_broker_restart_loses_no_alert(tmp_path, broker, ca, subscriber, key, make_alerts):
    alerts = make_alerts(10)  # 30 messages
    transport = mqtt_transport(broker, ca)
    assert transport.wait_connected(5), broker.log()
    pub = OutboxPublisher(Outbox(tmp_path / "outbox.sqlite"), RuleStandIn(transport, subscriber), **FAST)
    depth_while_down = 0
    for i, a in enumerate(alerts):
        if i == 8:
            broker.stop(kill=True)  # a crash, mid-stream
        if i == 22:
            depth_while_down = pub.stats()["depth"]
            broker.start()
        pub.publish(TOPIC, a)
        time.sleep(0.03)  # alerts keep being raised while the broker is away
    assert pub.flush(15), (pub.stats(), broker.log())
    want = [key(a) for a in alerts]
    assert subscriber.wait_for(lambda r: {key(m) for _, m, _ in r} >= set(want), 10)

    got = [m for _, m, _ in subscriber.received]
    firsts = list(dict.fromkeys(key(m) for m in got))
    assert firsts == want  # every alert, in order
    by_key = {key(a): a for a in alerts}
    assert all(m == by_key[key(m)] for m in got)  # a duplicate is the same message, same ids
    assert {q for _, _, q in subscriber.received} == {1}
    stats = pub.stats()
    assert depth_while_down >= 10  # the backlog really built up in the outbox
    assert stats["reconnects"] >= 1 and stats["retries"] >= 1 and stats["depth"] == 0
    assert stats["sent"] == len(alerts)
    pub.close()


def test_retry_after_a_lost_puback_waits_for_the_first_copy(broker, ca, subscriber, make_alerts):
    alert = make_alerts(1)[0]
    transport = mqtt_transport(broker, ca, publish_timeout_s=0.3)
    assert transport.wait_connected(5), broker.log()
    broker.pause()  # the PUBLISH sits unanswered on an open connection
    with pytest.raises(PublishError, match="no PUBACK"):
        transport.publish(TOPIC, alert)
    broker.resume()
    transport.publish(TOPIC, alert)  # the retry: acknowledged through the first copy, not sent again
    assert subscriber.wait_for(lambda r: len(r) >= 1, 5)
    time.sleep(0.2)
    assert [m for _, m, _ in subscriber.received] == [alert]
    transport.close()


def test_client_certificate_from_another_ca_is_refused(tmp_path, broker, ca, CertificateAuthority, make_alerts):
    rogue = CertificateAuthority(tmp_path / "rogue", name="rogue")
    transport = mqtt_transport(broker, ca, keys=rogue.client(THING))
    assert not transport.wait_connected(1.0)
    assert transport.connect_failures >= 1
    with pytest.raises(PublishError, match="not connected") as err:
        transport.publish(TOPIC, make_alerts(1)[0])
    assert "ssl" in str(err.value).lower()  # the reason travels with the error (here a TLS alert)
    pub = OutboxPublisher(Outbox(tmp_path / "outbox.sqlite"), transport, **FAST)
    pub.publish(TOPIC, make_alerts(1)[0])  # stored, and kept while the broker refuses us
    assert not pub.flush(0.5)
    assert pub.stats()["depth"] == 1 and pub.stats()["retries"] >= 1
    pub.close()
    assert "certificate" in broker.log().lower()


def test_unusable_certificate_files_fail_at_construction(tmp_path, ca):
    with pytest.raises(ValueError, match="missing.pem"):
        MqttPublisher(
            "127.0.0.1",
            8883,
            client_id=THING,
            ca_file=ca.cert_file,
            cert_file=tmp_path / "missing.pem",
            key_file=tmp_path / "missing.key",
        )
