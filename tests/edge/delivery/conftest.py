"""Fixtures of the delivery tests: alerts to send, test transports, a full disk, and a
real mosquitto broker on 127.0.0.1 with certificates made with ``cryptography``, standing
in for AWS IoT Core's mutual-TLS MQTT endpoint.

The broker listens only on loopback, on a free port, with TLS; it requires a client
certificate signed by the test CA and takes the certificate's CN as the user name
(as IoT Core takes the thing's certificate), and keeps nothing on disk
(``persistence false``), so a restart forgets every session.

The full disk is real where the tests may mount a 400 KiB tmpfs (root, as in CI); it
is also simulated everywhere with SQLite's ``max_page_count``, which makes SQLite
report the same ``SQLITE_FULL`` ("database or disk is full").

Helpers that tests call are fixtures of the same name (``make_alerts``, ``Recorder``,
...), so a test asks for what it uses and nothing is imported from here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import ipaddress
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from edge_component.contracts.alerts import validate_alert
from edge_component.contracts.topics import alert_topic
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.publisher import PublishError
from edge_component.events.alerts import build_alert
from edge_component.events.decision import Event, Transition

THING = "cam-test-01"
TOPIC = alert_topic(THING)


LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class KeyPair:
    """PEM files of one certificate and its private key."""

    cert: Path
    key: Path


class _CertificateAuthority:
    """A throwaway CA that writes its certificate to ``<dir>/<name>-ca.pem`` and issues
    server and client certificates (EC P-256, valid for one day) into ``dir``."""

    def __init__(self, directory: Path, name: str = "vigil-test"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
        self._subject = subject
        self._cert = (
            self._builder(subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = self.dir / f"{name}-ca.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )

    def _issue(self, common_name: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]), key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        stem = self.dir / f"{self.name}-{common_name}"
        pair = KeyPair(stem.with_suffix(".crt.pem"), stem.with_suffix(".key.pem"))
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        pair.key.chmod(0o600)
        return pair

    def server(self) -> KeyPair:
        """A server certificate for ``localhost`` and 127.0.0.1."""
        return self._issue(
            "localhost",
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))],
        )

    def client(self, common_name: str) -> KeyPair:
        """A client certificate whose CN is ``common_name`` (the thing name)."""
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


class Mosquitto:
    """One mosquitto process on 127.0.0.1:``port`` with a TLS listener that requires a
    client certificate from ``ca``. ``start``/``stop`` may be repeated (same port), which
    is how the tests restart the broker. Its log is ``<dir>/mosquitto.log``."""

    def __init__(self, directory: Path, ca: _CertificateAuthority, port: int | None = None):
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto; .ci/run does it)")
        self.exe = exe
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.ca = ca
        server = ca.server()
        self.log_file = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            "\n".join(
                [
                    # Run as whoever runs the tests: as root, mosquitto would otherwise switch to
                    # the user "mosquitto", which cannot read the keys in a private tmp dir.
                    f"user {getpass.getuser()}",
                    "persistence false",
                    f"log_dest file {self.log_file}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    "connection_messages true",
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"listener {self.port} {LOOPBACK}",
                    f"cafile {ca.cert_file}",
                    f"certfile {server.cert}",
                    f"keyfile {server.key}",
                    "tls_version tlsv1.2",
                    "require_certificate true",
                    "use_identity_as_username true",
                    "",
                ]
            )
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until its port accepts connections."""
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {err}\n{self.log()}")
            if self._accepts():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {LOOPBACK}:{self.port} within {timeout} s\n{self.log()}")

    def _accepts(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            return s.connect_ex((LOOPBACK, self.port)) == 0

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered."""
        if self.running:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self.running:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM, or SIGKILL with ``kill`` (a crash). Waits for the exit."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a paused broker would not act on SIGTERM
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


class Subscriber:
    """A second MQTT client, with its own certificate, subscribed with QoS 1 to
    ``topic``; it stands in for the IoT topic rule. ``received`` holds
    ``(topic, message dict, qos)`` in arrival order. The subscription is made again on
    every connection (the broker keeps no sessions), and ``ready`` is set only while
    it holds."""

    def __init__(self, broker: Mosquitto, keys: KeyPair, topic: str, *, client_id: str):
        self.topic = topic
        self.received: list[tuple[str, dict[str, Any], int]] = []
        self.ready = threading.Event()
        self._arrived = threading.Condition()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.tls_set(ca_certs=str(broker.ca.cert_file), certfile=str(keys.cert), keyfile=str(keys.key))
        client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]

        def on_connect(c, userdata, flags, reason_code, properties):
            if not reason_code.is_failure:
                c.subscribe(topic, qos=1)

        def on_subscribe(c, userdata, mid, reason_codes, properties):
            if all(not rc.is_failure for rc in reason_codes):
                self.ready.set()

        def on_disconnect(c, userdata, flags, reason_code, properties):
            self.ready.clear()

        def on_message(c, userdata, msg):
            with self._arrived:
                self.received.append((msg.topic, json.loads(msg.payload), msg.qos))
                self._arrived.notify_all()

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_disconnect, client.on_message = on_disconnect, on_message
        self._client = client
        client.connect_async(LOOPBACK, broker.port, keepalive=30)
        client.loop_start()

    def wait_for(self, predicate: Callable[[list[tuple[str, dict[str, Any], int]]], bool], timeout: float) -> bool:
        """Wait until ``predicate(received)`` is true; False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: predicate(self.received), timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# ---------------------------------------------------------------- alerts and transports


def _make_alerts(events: int, thing_name: str = THING) -> list[dict]:
    """``events`` events of start, update, end of ``thing_name``: 3 * events schema-valid
    alerts, in order."""
    origin = datetime(2026, 1, 1, tzinfo=dt.UTC)
    out = []
    for k in range(events):
        ev = Event(event_id=uuid.uuid4().hex, started_s=10.0 * k, peak_score=0.9)
        for kind, after_s in (("start", 0.0), ("update", 1.0), ("end", 2.0)):
            if kind == "end":
                ev.ended_s = ev.started_s + after_s
            out.append(
                build_alert(
                    Transition(kind, ev, ev.started_s + after_s, 0.9),
                    thing_name=thing_name,
                    camera="porch",
                    zone="door",
                    threshold=0.5,
                    clock_origin=origin,
                    media_time=False,
                )
            )
            ev.sequence += 1
    for msg in out:
        validate_alert(msg)
    return out


@pytest.fixture
def make_alerts():
    """``make_alerts(events)``: 3 * events schema-valid alerts, in order."""
    return _make_alerts


def _healthy(**counts) -> dict:
    """``stats()`` of a running publisher with nothing held in memory, dropped or dead."""
    return {
        "depth": 0,
        "unstored": 0,
        "sent": 0,
        "retries": 0,
        "dropped": 0,
        "dead": 0,
        "lost": 0,
        "reconnects": 0,
        "sender_alive": True,
    } | counts


@pytest.fixture
def healthy():
    """``healthy(**counts)``: the stats of a running publisher with nothing held, dropped or dead."""
    return _healthy


def _key(msg: dict) -> tuple[str, str, int]:
    return msg["event_id"], msg["event_type"], msg["sequence"]


@pytest.fixture
def key():
    """``key(msg)``: (event_id, event_type, sequence)."""
    return _key


class _Recorder:
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


@pytest.fixture
def Recorder():
    """A transport class that accepts everything (or fails the calls numbered in ``fail_calls``)."""
    return _Recorder


class _Down:
    """A transport whose network is down."""

    reconnects = 0

    def publish(self, topic, message):
        raise PublishError("network down")

    def close(self):
        pass


@pytest.fixture
def Down():
    """A transport class whose network is down."""
    return _Down


class _Switch(_Recorder):
    """A transport that refuses everything until ``up`` is set."""

    up = False

    def publish(self, topic, message):
        if not self.up:
            raise PublishError("network down")
        super().publish(topic, message)


@pytest.fixture
def Switch():
    """A transport class that refuses everything until ``up`` is set."""
    return _Switch


class _SpoolingNucleus:
    """The nucleus's side of IPC PublishToIoTCore, as its source has it (aws-greengrass-nucleus,
    MqttProxyIPCAgent.java handlePublishToIoTCore and MqttClient.java publish: the returned
    future "only represents that the message has been successfully stored in the spooler"):
    the call returns once the message is spooled, never on IoT Core's PUBACK, and raises at
    publish time when the spool is full (SpoolerStoreException, an IPC ServiceError). The
    spool is in memory unless ``aws.greengrass.DiskSpooler`` is deployed and the nucleus's
    ``mqtt.spooler.storageType`` is Disk (mqttclient/spool/Spool.java); a nucleus restart
    empties an in-memory spool."""

    def __init__(self, max_messages: int, storage: str = "Memory"):
        self.max_messages, self.storage = max_messages, storage
        self.spool, self.iot_core = [], []

    def publish_to_iot_core(self, *, topic_name, qos, payload):
        from awsiot.greengrasscoreipc.model import ServiceError

        if len(self.spool) >= self.max_messages:
            raise ServiceError(message="SpoolerStoreException: spooler queue is full")
        self.spool.append(json.loads(payload))

    def restart(self):
        if self.storage == "Memory":
            self.spool = []

    def reconnect(self):
        self.iot_core, self.spool = self.iot_core + self.spool, []

    def close(self):
        pass


@pytest.fixture
def SpoolingNucleus():
    """A fake ``GreengrassCoreIPCClientV2`` with the nucleus's spooler behind ``publish_to_iot_core``."""
    return _SpoolingNucleus


# ---------------------------------------------------------------- a full disk


PAD = "x" * 5000  # every padded alert needs new pages: a full database cannot take it


def _padded(n_events: int) -> list[dict]:
    return [a | {"pad": PAD} for a in _make_alerts(n_events)]


@pytest.fixture
def padded():
    """``padded(n_events)``: alerts that each need new database pages."""
    return _padded


class RealFullDisk:
    """The outbox on a 400 KiB tmpfs; ``fill()`` writes a file until ENOSPC."""

    def __init__(self, mount: Path):
        self.dir = mount
        self._filler = mount / "filler"

    def attach(self, box: Outbox) -> Outbox:
        return box

    def fill(self) -> None:
        with self._filler.open("wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            except OSError:
                pass
            try:
                fh.close()
            except OSError:
                pass

    def free(self) -> None:
        self._filler.unlink()


class _PageLimit:
    """The outbox's own connection limited to the pages it has (``PRAGMA max_page_count``)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.box: Outbox | None = None

    def attach(self, box: Outbox) -> Outbox:
        self.box = box
        return box

    def fill(self) -> None:
        conn = self.box._conn
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")

    def free(self) -> None:
        self.box._conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def PageLimit():
    """The simulated full disk (SQLite's ``max_page_count``), for a test that drives it itself."""
    return _PageLimit


@contextlib.contextmanager
def _tiny_tmpfs(tmp_path: Path, instead: str) -> Iterator[RealFullDisk]:
    """A 400 KiB tmpfs mounted at ``tmp_path/tiny`` (needs root) for the block; skips the
    test if it cannot be mounted, saying ``instead`` (what covers it then)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a 400 KiB tmpfs for a real full disk ({exc}){instead}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 400 KiB tmpfs for a real full disk (needs root): {done.stderr.strip()}{instead}")
    try:
        yield RealFullDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


@pytest.fixture(params=["tmpfs", "max_page_count"])
def disk(request, tmp_path):
    if request.param == "max_page_count":
        yield _PageLimit(tmp_path)
        return
    with _tiny_tmpfs(tmp_path, "; the max_page_count variant covers the same code") as real:
        yield real


@pytest.fixture
def real_full_disk(tmp_path):
    """Only the real full disk (:class:`RealFullDisk` on a 400 KiB tmpfs; skipped without root)."""
    with _tiny_tmpfs(tmp_path, "") as real:
        yield real


# ---------------------------------------------------------------- mosquitto


@pytest.fixture
def CertificateAuthority():
    """The test CA class, for a test that needs a second (rogue) CA."""
    return _CertificateAuthority


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return _CertificateAuthority(tmp_path_factory.mktemp("pki"))


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
