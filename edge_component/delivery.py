"""Delivery: the detector hands alerts to an :class:`OutboxPublisher`, which stores them
in the durable :class:`~edge_component.outbox.Outbox` and returns at once; one
background thread sends the backlog, strictly in order, through the real transport
(Greengrass IPC, MQTT, JSON lines) and removes each message only after the transport
has accepted it (for IPC and MQTT: after the QoS 1 acknowledgement).

When the transport refuses (:class:`~edge_component.publishers.PublishError`), the same
head message is retried after an exponential backoff with jitter, so nothing behind it
overtakes it. Delivery is at least once: a message whose acknowledgement was lost is
sent again, with the same ``event_id``, and the alert Lambda deduplicates by it.

Telemetry goes through :meth:`OutboxPublisher.publish_latest` instead: newest per topic,
in memory, sent once the alert backlog is empty, so it can never crowd alerts out.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from .outbox import Outbox, OutboxError
from .publishers import PublishError, Publisher

log = logging.getLogger(__name__)


class OutboxPublisher:
    """A :class:`~edge_component.publishers.Publisher` that never blocks on the network.

    ``publish(topic, message)`` stores the message in ``outbox`` (PublishError only when
    it cannot be stored) and wakes the sender thread. Backoff after the n-th consecutive
    failure is ``min(retry_max_s, retry_initial_s * 2**(n-1))``, scaled by a random factor
    in [0.5, 1] so that many devices coming back at once do not retry in step.
    ``publish_latest(topic, message)`` is for telemetry (see the module docstring).
    The publisher owns ``outbox`` and ``transport``: :meth:`close` closes both.
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: Publisher,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        batch: int = 64,
        rng: random.Random | None = None,
    ):
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError(f"need 0 < retry_initial_s <= retry_max_s, got {retry_initial_s}, {retry_max_s}")
        self.outbox = outbox
        self.transport = transport
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._batch = batch
        self._rng = rng or random.Random()
        self._sent = 0
        self._retries = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._latest: dict[str, dict[str, Any]] = {}  # topic -> newest unsent publish_latest() message
        self._latest_lock = threading.Lock()
        self._latest_error: Exception | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vigil-outbox-sender", daemon=True)
        self._thread.start()

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Store ``message`` durably and schedule it; raises PublishError if it cannot be stored."""
        try:
            self.outbox.put(topic, message)
        except (OutboxError, ValueError, TypeError) as exc:
            raise PublishError(f"alert not stored in outbox {self.outbox.path}: {exc}") from exc
        self._wake.set()

    def publish_latest(self, topic: str, message: dict[str, Any]) -> None:
        """Send ``message`` when the alert backlog is empty; not stored on disk.

        For telemetry: only the newest message per topic is kept (in memory), so a
        heartbeat every minute during a week offline neither fills the bounded outbox
        nor pushes alerts out of it; after a restart the next heartbeat replaces it.
        """
        with self._latest_lock:
            self._latest[topic] = message
        self._wake.set()

    def backoff_s(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (>= 1) consecutive failed sends."""
        ceiling = min(self.retry_max_s, self.retry_initial_s * 2.0 ** min(failures - 1, 60))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._wake.clear()  # before peeking: a put() after the peek sets it again
                items = self.outbox.peek(self._batch)
                if not items:
                    if not self._send_latest():
                        failures = self._failed(failures, "telemetry", None)
                        continue
                    with self._progress:
                        self._progress.notify_all()
                    self._wake.wait()
                    continue
                for item in items:
                    if self._stop.is_set():
                        return
                    try:
                        self.transport.publish(item.topic, item.message)
                    except Exception as exc:  # PublishError is expected; anything else is a bug, still retried
                        self.outbox.record_attempt(item.id)
                        failures = self._failed(failures, f"outbox message {item.id}", exc)
                        break  # peek again: the head may have been dropped meanwhile
                    if failures:
                        log.info("outbox delivering again after %d failed sends", failures)
                        failures = 0
                    self.outbox.ack(item.id)
                    self._sent += 1
                    with self._progress:
                        self._progress.notify_all()
            except OutboxError as exc:
                if self._stop.is_set():
                    return
                failures = self._failed(failures, "outbox", exc)

    def _send_latest(self) -> bool:
        with self._latest_lock:
            waiting = list(self._latest.items())
        for topic, message in waiting:
            try:
                self.transport.publish(topic, message)
            except Exception as exc:
                self._latest_error = exc
                return False
            with self._latest_lock:
                if self._latest.get(topic) is message:  # not replaced meanwhile
                    del self._latest[topic]
        return True

    def _failed(self, failures: int, what: str, exc: Exception | None) -> int:
        """Log one failed send and wait out its backoff; returns the new failure count."""
        exc = exc or self._latest_error
        failures += 1
        self._retries += 1
        if self._stop.is_set():  # closing: the transport was closed under this send
            return failures
        delay = self.backoff_s(failures)
        expected = isinstance(exc, (PublishError, OutboxError))
        # An outage of hours would otherwise log every retry; a bug always logs.
        level = (logging.WARNING if failures == 1 or failures % 20 == 0 else logging.DEBUG) if expected else logging.ERROR
        log.log(level, "sending %s failed (%d in a row, %d queued), retrying in %.2f s: %s",
                what, failures, self.outbox.depth, delay, exc, exc_info=not expected)
        self._stop.wait(delay)
        return failures

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the outbox is empty and the latest
        telemetry sent; True if that happened."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self.outbox.depth > 0 or self._latest:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.1))
        return True

    def stats(self) -> dict[str, int]:
        """Counters for telemetry: ``depth`` (queued now), ``sent``, ``retries`` (failed
        sends), ``dropped`` (outbox full, over the file's life), ``reconnects`` (the
        transport's, 0 if it does not count them)."""
        return {
            "depth": self.outbox.depth,
            "sent": self._sent,
            "retries": self._retries,
            "dropped": self.outbox.dropped,
            "reconnects": int(getattr(self.transport, "reconnects", 0)),
        }

    def close(self, drain_timeout_s: float = 0.0) -> None:
        """Stop sending (after trying to empty the outbox for up to ``drain_timeout_s``),
        then close the transport and the outbox. What is unsent stays on disk for the
        next start. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if drain_timeout_s > 0:
            self.flush(drain_timeout_s)
        self._stop.set()
        self._wake.set()
        try:
            self.transport.close()  # also ends a send that is waiting for an acknowledgement
        finally:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("outbox sender did not stop within 10 s; closing the outbox under it")
            self.outbox.close()

    def __enter__(self) -> OutboxPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
