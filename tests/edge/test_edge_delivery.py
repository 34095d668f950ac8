"""Publishing and delivery: the durable outbox, the sender that drains it in order, and
the transports, against a real mosquitto broker with TLS and client certificates
(the local stand-in for AWS IoT Core) and a fake Greengrass IPC client.

(This file is not named test_delivery.py: tests/lambda has one, and pytest's default
import mode needs test file names that are unique across folders without __init__.py.)
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from edge_component.events.alerts import build_alert
from edge_component.contracts.alerts import validate_alert
from edge_component.contracts.topics import alert_topic
from edge_component.events.decision import Event, Transition
from edge_component.delivery.sender import OutboxPublisher
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.outbox_file import OutboxCorruptError, OutboxError
from edge_component.delivery.ipc import GreengrassIpcPublisher
from edge_component.delivery.mqtt import MqttPublisher
from edge_component.delivery.publisher import PublishError
from tests.edge.broker import CertificateAuthority, Mosquitto, Subscriber, mosquitto_path

THING = "cam-test-01"
TOPIC = alert_topic(THING)
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}  # backoff for tests; defaults are 0.5 s .. 30 s


def healthy(**counts) -> dict:
    """``stats()`` of a running publisher with nothing held in memory, dropped or dead."""
    return {"depth": 0, "unstored": 0, "sent": 0, "retries": 0, "dropped": 0, "dead": 0, "reconnects": 0,
            "sender_alive": True} | counts


def make_alerts(events: int) -> list[dict]:
    """``events`` events of start, update, end: 3 * events schema-valid alerts, in order."""
    origin = datetime(2026, 1, 1, tzinfo=timezone.utc)
    out = []
    for k in range(events):
        ev = Event(event_id=uuid.uuid4().hex, started_s=10.0 * k, peak_score=0.9)
        for kind, dt in (("start", 0.0), ("update", 1.0), ("end", 2.0)):
            if kind == "end":
                ev.ended_s = ev.started_s + dt
            out.append(build_alert(Transition(kind, ev, ev.started_s + dt, 0.9), thing_name=THING, camera="porch",
                                   zone="door", threshold=0.5, clock_origin=origin, media_time=False))
            ev.sequence += 1
    for msg in out:
        validate_alert(msg)
    return out


def key(msg: dict) -> tuple[str, str, int]:
    return msg["event_id"], msg["event_type"], msg["sequence"]


class Recorder:
    """A transport that accepts everything (or fails the calls numbered in ``fail_calls``)."""

    def __init__(self, fail_calls: set[int] = frozenset()):
        self.fail_calls = set(fail_calls)
        self.calls = 0
        self.sent: list[tuple[str, dict]] = []
        self.closed = False

    def publish(self, topic, message):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise PublishError(f"refused call {self.calls}")
        self.sent.append((topic, message))

    def close(self):
        self.closed = True


class Down:
    """A transport whose network is down."""

    reconnects = 0

    def publish(self, topic, message):
        raise PublishError("network down")

    def close(self):
        pass


class Switch(Recorder):
    """A transport that refuses everything until ``up`` is set."""

    up = False

    def publish(self, topic, message):
        if not self.up:
            raise PublishError("network down")
        super().publish(topic, message)


# ---------------------------------------------------------------- outbox on its own

def test_outbox_backlog_survives_reopen_in_order(tmp_path):
    alerts = make_alerts(2)
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        ids = [box.put(TOPIC, a) for a in alerts]
        assert ids == sorted(ids)
        assert box.ack(ids[0]) and not box.ack(ids[0])
        box.record_attempt(ids[1])
    with Outbox(path) as box:
        items = box.peek(100)
        assert [i.message for i in items] == alerts[1:]
        assert {i.topic for i in items} == {TOPIC}
        assert items[0].attempts == 1 and items[1].attempts == 0
        assert box.depth == len(alerts) - 1
        for item in items:
            box.ack(item.id)
        assert box.depth == 0
    with Outbox(path) as box:  # AUTOINCREMENT: an emptied outbox never reuses an id
        assert box.put(TOPIC, alerts[0]) > ids[-1]


def test_sender_drains_a_backlog_left_by_an_earlier_process(tmp_path):
    alerts = make_alerts(3)
    path = tmp_path / "outbox.sqlite"
    offline = OutboxPublisher(Outbox(path), Down(), **FAST)
    for a in alerts:
        offline.publish(TOPIC, a)
    time.sleep(0.1)
    assert offline.stats()["retries"] >= 1
    offline.close()

    transport = Recorder()
    online = OutboxPublisher(Outbox(path), transport, **FAST)
    assert online.flush(5)
    assert [m for _, m in transport.sent] == alerts
    assert online.stats() == healthy(sent=len(alerts))
    online.close()
    assert transport.closed


def test_full_outbox_drops_the_oldest_and_reports_it(tmp_path, caplog):
    alerts = make_alerts(3)  # 9 messages into room for 5
    path = tmp_path / "outbox.sqlite"
    with caplog.at_level(logging.WARNING, logger="edge_component.outbox"):
        with Outbox(path, max_messages=5) as box:
            for a in alerts:
                box.put(TOPIC, a)
            assert (box.depth, box.dropped) == (5, 4)
            assert [i.message for i in box.peek(10)] == alerts[4:]
    dropped_logs = [r.getMessage() for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert len(dropped_logs) == 4
    assert alerts[0]["event_id"] in dropped_logs[0]
    pub = OutboxPublisher(Outbox(path, max_messages=5), Down(), **FAST)  # the count is persisted
    assert pub.stats()["dropped"] == 4 and pub.stats()["depth"] == 5
    pub.close()


def test_corrupt_outbox_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"not a database, a camera's bad day " * 200)
    with pytest.raises(OutboxCorruptError, match=str(path)) as err:
        Outbox(path, on_corrupt="raise")
    assert err.value.path == path and "not a database" in err.value.reason

    with Outbox(tmp_path / "pages.sqlite") as box:  # a real outbox with a damaged page
        for i in range(300):
            box.put(TOPIC, {"i": i, "pad": "x" * 200})
    with (tmp_path / "pages.sqlite").open("r+b") as fh:
        fh.seek(4096 * 3)
        fh.write(bytes(range(256)) * 32)
    with pytest.raises(OutboxCorruptError, match="pages.sqlite"):
        Outbox(tmp_path / "pages.sqlite", on_corrupt="raise")


def test_corrupt_outbox_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    garbage = b"\x00garbage" * 1000
    path.write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="edge_component.outbox"):
        box = Outbox(path)
    assert box.quarantined is not None and box.quarantined.read_bytes() == garbage  # kept, not deleted
    assert any(str(path) in r.getMessage() and str(box.quarantined) in r.getMessage() for r in caplog.records)
    box.put(TOPIC, make_alerts(1)[0])
    assert box.depth == 1
    box.close()


def test_unopenable_outbox_is_not_mistaken_for_corrupt(tmp_path):
    (tmp_path / "is-a-dir").mkdir()
    with pytest.raises(OutboxError, match="is-a-dir") as err:
        Outbox(tmp_path / "is-a-dir")
    assert not isinstance(err.value, OutboxCorruptError)
    assert (tmp_path / "is-a-dir").is_dir()  # nothing moved


def test_closed_outbox_refusal_reaches_the_detector_as_publish_error(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    pub = OutboxPublisher(box, Recorder(), **FAST)
    box.close()
    with pytest.raises(PublishError, match="outbox.sqlite"):
        pub.publish(TOPIC, make_alerts(1)[0])
    pub.close()


# ---------------------------------------------------------------- the sender

def test_backoff_doubles_with_jitter_and_is_bounded(tmp_path):
    pub = OutboxPublisher(Outbox(tmp_path / "o.sqlite"), Down(), retry_initial_s=0.5, retry_max_s=30,
                          rng=random.Random(7))
    delays = [pub.backoff_s(n) for n in range(1, 40)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(30.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling
    assert len({round(d, 6) for d in delays[10:]}) > 1  # jittered, not in lock step
    pub.close()


def test_concurrent_publishers_lose_nothing_and_keep_each_threads_order(tmp_path):
    transport = Recorder(fail_calls={1, 2, 7, 30, 31, 32, 100})
    pub = OutboxPublisher(Outbox(tmp_path / "o.sqlite"), transport, **FAST)

    def raise_alerts(worker: int) -> None:
        for i in range(50):
            pub.publish(TOPIC, {"worker": worker, "i": i})

    threads = [threading.Thread(target=raise_alerts, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pub.flush(10)
    got = [m for _, m in transport.sent]
    assert len(got) == 200
    for w in range(4):
        assert [m["i"] for m in got if m["worker"] == w] == list(range(50))
    assert pub.stats()["retries"] == 7
    pub.close()


def test_ipc_publisher_via_outbox_retries_the_head_and_keeps_order(tmp_path):
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


def test_telemetry_waits_for_alerts_and_never_takes_their_place(tmp_path):
    alerts = make_alerts(1)
    transport = Switch()
    pub = OutboxPublisher(Outbox(tmp_path / "o.sqlite", max_messages=3), transport, **FAST)
    for beat in range(20):  # a long outage: many heartbeats, three alerts
        pub.publish_latest("vigil/cam-test-01/telemetry", {"beat": beat})
        if beat in (3, 9, 15):
            pub.publish(TOPIC, alerts[beat // 6])
    assert pub.stats()["depth"] == 3 and pub.stats()["dropped"] == 0  # heartbeats took no outbox room
    transport.up = True
    assert pub.flush(5)
    assert transport.sent == [(TOPIC, a) for a in alerts] + [("vigil/cam-test-01/telemetry", {"beat": 19})]
    pub.close()


# ---------------------------------------------------------------- MQTT against mosquitto

@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path, ca):
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed: apt-get install -y mosquitto (.ci/run installs it)")
    b = Mosquitto(tmp_path / "broker", ca)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker, ca):
    sub = Subscriber(broker, ca.client("alert-rule"), TOPIC, client_id="alert-rule")
    assert sub.ready.wait(10), broker.log()
    yield sub
    sub.close()


def mqtt_transport(broker, ca, keys=None, **kw):
    keys = keys or ca.client(THING)
    kw = {"connect_timeout_s": 2, "publish_timeout_s": 2, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2} | kw
    return MqttPublisher("127.0.0.1", broker.port, client_id=THING, ca_file=ca.cert_file, cert_file=keys.cert,
                         key_file=keys.key, **kw)


class RuleStandIn:
    """Accepts a message only while the subscriber holds its subscription. In AWS the
    topic rule is always subscribed; mosquitto without persistence forgets the
    subscriber at a restart, and what it accepted before the subscriber is back would
    go nowhere, which says nothing about the edge."""

    def __init__(self, transport: MqttPublisher, subscriber: Subscriber):
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


def test_alerts_reach_a_subscriber_in_order_with_qos1(tmp_path, broker, ca, subscriber):
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


def test_broker_restart_loses_no_alert(tmp_path, broker, ca, subscriber):
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


def test_retry_after_a_lost_puback_waits_for_the_first_copy(broker, ca, subscriber):
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


def test_client_certificate_from_another_ca_is_refused(tmp_path, broker, ca):
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
        MqttPublisher("127.0.0.1", 8883, client_id=THING, ca_file=ca.cert_file,
                      cert_file=tmp_path / "missing.pem", key_file=tmp_path / "missing.key")
