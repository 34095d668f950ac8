"""Alerts over MQTT with mutual TLS (paho-mqtt 2.x)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from .publisher import PublishError

log = logging.getLogger(__name__)


class MqttPublisher:
    """Publishes with QoS 1 to an MQTT broker over TLS with a client certificate, and
    returns only once the broker has acknowledged (PUBACK).

    ``client_id`` is the thing name on AWS IoT Core (its policy allows ``iot:Connect``
    for the client id ``${iot:Connection.Thing.ThingName}``); ``ca_file`` is the CA that
    signed the broker's certificate (Amazon Root CA 1 for IoT Core); ``cert_file`` and
    ``key_file`` are the device's PEM certificate and private key. The first connection
    is made in the background (a device may boot before its network) and paho
    reconnects on its own, waiting ``reconnect_min_s`` doubling to ``reconnect_max_s``.
    Missing or unreadable certificate files raise at construction.

    ``publish`` raises :class:`PublishError` when not connected, when the PUBACK does
    not come within ``publish_timeout_s``, when the connection drops first, or when
    paho returns an error. A message that was handed to paho and not acknowledged stays
    in paho's session and is resent by paho after reconnecting, so a retry of the same
    ``(topic, message)`` waits for that copy instead of sending another one.
    ``reconnects`` counts connections after the first, ``connect_failures`` the failed
    attempts; ``last_error`` is paho's last error (a TLS alert, a refused connection).
    """

    def __init__(
        self,
        host: str,
        port: int = 8883,
        *,
        client_id: str,
        ca_file: str | Path,
        cert_file: str | Path,
        key_file: str | Path,
        keepalive: int = 30,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 10.0,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
    ):
        self.host, self.port, self.client_id = host, port, client_id
        self.publish_timeout_s = publish_timeout_s
        self.reconnects = 0
        self.connect_failures = 0
        self.last_error: str | None = None  # paho's last error or warning, for diagnosis
        self._connected = threading.Event()
        self._ever_connected = False
        self._closed = False
        self._lock = threading.Lock()
        # (topic, payload) -> the paho message still waiting for its PUBACK
        self._pending: OrderedDict[tuple[str, bytes], mqtt.MQTTMessageInfo] = OrderedDict()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        try:
            client.tls_set(
                ca_certs=str(ca_file),
                certfile=str(cert_file),
                keyfile=str(key_file),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"MQTT TLS files (ca {ca_file}, cert {cert_file}, key {key_file}) unusable: {exc}"
            ) from exc
        client.connect_timeout = connect_timeout_s
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]  # floats work
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_log = self._on_log
        self._client = client
        client.connect_async(host, port, keepalive)
        client.loop_start()

    # paho calls these from its network thread.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._connect_failed(f"broker refused the connection: {reason_code}")
            return
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        log.info(
            "MQTT connected to %s:%s as %s (%d reconnects, %d failed attempts so far)",
            self.host,
            self.port,
            self.client_id,
            self.reconnects,
            self.connect_failures,
        )
        self.last_error = None
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if not self._connected.is_set():
            # Dropped before the CONNACK: with TLS 1.2 a broker that rejects our
            # certificate is seen here, after the client's side of the handshake.
            if not self._closed:
                self._connect_failed(f"connection closed before CONNACK ({reason_code})")
            return
        self._connected.clear()
        if not self._closed:
            log.warning("MQTT connection to %s:%s lost (%s); reconnecting", self.host, self.port, reason_code)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._connect_failed("cannot connect")

    def _on_log(self, client: Any, userdata: Any, level: int, buf: str) -> None:
        if level in (mqtt.MQTT_LOG_ERR, mqtt.MQTT_LOG_WARNING):
            self.last_error = buf  # e.g. "failed to receive on socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] ..."

    def _connect_failed(self, what: str) -> None:
        self.connect_failures += 1
        # Once, then rarely: a device may be offline for days.
        level = logging.WARNING if self.connect_failures == 1 or self.connect_failures % 50 == 0 else logging.DEBUG
        log.log(
            level,
            "MQTT %s:%s as %s: %s (%d failed attempts; last error: %s)",
            self.host,
            self.port,
            self.client_id,
            what,
            self.connect_failures,
            self.last_error,
        )

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a connection; True if connected."""
        return self._connected.wait(timeout)

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
        where = f"MQTT {self.host}:{self.port} topic {topic}"
        if self._closed:
            raise PublishError(f"{where}: publisher is closed")
        if not self._connected.is_set():
            raise PublishError(f"{where}: not connected (last error: {self.last_error})")
        key = (topic, payload)
        with self._lock:
            info = self._pending.get(key)
            if info is None:
                info = self._client.publish(topic, payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise PublishError(f"{where}: {mqtt.error_string(info.rc)}")
                self._pending[key] = info
                while len(self._pending) > 100:  # only forgets our handle; paho still delivers it
                    self._pending.popitem(last=False)
        deadline = time.monotonic() + self.publish_timeout_s
        while not info.is_published():
            if self._closed:
                raise PublishError(f"{where}: publisher closed before the PUBACK")
            if not self._connected.is_set():
                raise PublishError(f"{where}: connection lost before the PUBACK (paho resends after reconnecting)")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(f"{where}: no PUBACK within {self.publish_timeout_s} s")
            info.wait_for_publish(min(remaining, 0.05))
        with self._lock:
            self._pending.pop(key, None)

    def close(self) -> None:
        """Disconnect and stop paho's network thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()
