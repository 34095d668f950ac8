"""Test helpers: certificates made with ``cryptography`` and a real mosquitto broker on
127.0.0.1 that stands in for AWS IoT Core's mutual-TLS MQTT endpoint.

The broker listens only on loopback, on a free port, with TLS; it requires a client
certificate signed by the test CA and takes the certificate's CN as the user name
(as IoT Core takes the thing's certificate), and keeps nothing on disk
(``persistence false``), so a restart forgets every session.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class KeyPair:
    """PEM files of one certificate and its private key."""

    cert: Path
    key: Path


class CertificateAuthority:
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
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = self.dir / f"{name}-ca.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.timezone.utc)
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
        pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        pair.key.chmod(0o600)
        return pair

    def server(self) -> KeyPair:
        """A server certificate for ``localhost`` and 127.0.0.1."""
        return self._issue("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                           [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))])

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
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


class Mosquitto:
    """One mosquitto process on 127.0.0.1:``port`` with a TLS listener that requires a
    client certificate from ``ca``. ``start``/``stop`` may be repeated (same port), which
    is how the tests restart the broker. Its log is ``<dir>/mosquitto.log``."""

    def __init__(self, directory: Path, ca: CertificateAuthority, port: int | None = None):
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
        self.conf.write_text("\n".join([
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
        ]))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until its port accepts connections."""
        if self.running:
            return
        self._proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
