"""Delivery: the camera pipeline hands alerts to an :class:`OutboxPublisher`, which stores them
in the durable :class:`~edge_component.delivery.outbox.Outbox` and returns at once; one
background thread sends the backlog, strictly in order, through the real transport
(Greengrass IPC, MQTT, JSON lines) and removes each message only after the transport
has accepted it (for IPC and MQTT: after the QoS 1 acknowledgement).

When the transport refuses (:class:`~edge_component.delivery.publisher.PublishError`), the same
head message is retried after an exponential backoff with jitter, so nothing behind it
overtakes it. A refusal for good (:class:`~edge_component.delivery.publisher.PublishRefusedError`:
not authorized for the topic, say after a thing rename) is not retried: the message is
moved to the outbox's ``dead_letters`` (logged with its id), as an unreadable row is,
so it cannot block the queue forever. Delivery is at least once: a message whose acknowledgement was lost is
sent again, with the same ``event_id``, and the alert Lambda deduplicates by it.

An alert the outbox cannot store (full disk, unwritable file) is held in a bounded
in-memory overflow (``overflow_max_messages``, oldest dropped and logged) that the same
thread sends after the stored backlog, in arrival order. The first failure of a streak
is logged with the outbox's reason; :meth:`OutboxPublisher.close` stores what is still
held if the disk allows and logs the rest as lost, by ``event_id``.

Telemetry goes through :meth:`OutboxPublisher.publish_latest` instead: newest per topic,
in memory, sent once the alert backlog and the overflow are empty, so it can never crowd
alerts out.

The sender thread never dies of an exception: anything unexpected is logged with its
traceback, backed off and retried (``stats()["sender_alive"]`` says it runs).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from typing import Any

from edge_component.backoff import Backoff

from .handover import HandoverJournal
from .outbox import Outbox
from .outbox_file import OutboxError
from .publisher import Publisher, PublishError, PublishRefusedError

log = logging.getLogger(__name__)


class OutboxPublisher:
    """A :class:`~edge_component.delivery.publisher.Publisher` that never blocks on the network.

    ``publish(topic, message)`` stores the message in ``outbox`` (or, if the outbox cannot
    store it, holds it in memory; PublishError only for a message that is not JSON or a
    closed publisher) and wakes the sender thread. Backoff after the n-th consecutive
    failure is ``min(retry_max_s, retry_initial_s * 2**(n-1))``, scaled by a random factor
    in [0.5, 1] so that many devices coming back at once do not retry in step.
    ``publish_latest(topic, message)`` is for telemetry (see the module docstring).
    With ``journal`` (:class:`~edge_component.delivery.handover.HandoverJournal`) every
    alert the transport took is recorded there before the outbox removes it, so that the
    next start can hand it over again. The publisher owns ``outbox``, ``transport`` and
    ``journal``: :meth:`close` closes them.
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: Publisher,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        batch: int = 64,
        overflow_max_messages: int = 1000,
        rng: random.Random | None = None,
        journal: HandoverJournal | None = None,
    ):
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError(f"need 0 < retry_initial_s <= retry_max_s, got {retry_initial_s}, {retry_max_s}")
        if overflow_max_messages < 1:
            raise ValueError(f"overflow_max_messages must be at least 1, got {overflow_max_messages}")
        self.outbox = outbox
        self.transport = transport
        self.journal = journal
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.overflow_max_messages = overflow_max_messages
        self._batch = batch
        self._backoff = Backoff(
            retry_initial_s, retry_max_s, jitter_base=0.5, jitter_spread=0.5, rng=rng or random.Random()
        )
        self._sent = 0
        self._retries = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._latest: dict[str, dict[str, Any]] = {}  # topic -> newest unsent publish_latest() message
        self._latest_lock = threading.Lock()
        self._latest_error: Exception | None = None
        # Alerts the outbox could not store, oldest first; the sender sends them after the stored backlog.
        self._overflow: deque[tuple[str, dict[str, Any]]] = deque()
        self._overflow_lock = threading.Lock()
        self._overflow_dropped = 0
        self._store_failures = 0  # consecutive put() failures: the current streak
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vigil-outbox-sender", daemon=True)
        self._thread.start()

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Store ``message`` durably (or hold it in memory, see the module docstring) and
        schedule it; raises PublishError only if the message is not a JSON object or the
        publisher is closed."""
        if self._closed or self.outbox.closed:
            raise PublishError(f"alert not accepted: the publisher of outbox {self.outbox.path} is closed")
        try:
            self.outbox.put(topic, message)
        except (ValueError, TypeError) as exc:
            raise PublishError(f"alert not stored in outbox {self.outbox.path}: {exc}") from exc
        except OutboxError as exc:
            if self.outbox.closed:
                raise PublishError(f"alert not stored in outbox {self.outbox.path}: {exc}") from exc
            self._hold(topic, message, exc)
        else:
            with self._overflow_lock:
                streak, self._store_failures = self._store_failures, 0
            if streak:
                log.info("outbox %s stores alerts again after %d that it could not store", self.outbox.path, streak)
        self._wake.set()

    def _hold(self, topic: str, message: dict[str, Any], exc: OutboxError) -> None:
        """Keep an alert the outbox could not store in the bounded in-memory overflow."""
        with self._overflow_lock:
            self._store_failures += 1
            first = self._store_failures == 1
            self._overflow.append((topic, message))
            lost = self._overflow.popleft() if len(self._overflow) > self.overflow_max_messages else None
            if lost is not None:
                self._overflow_dropped += 1
            held = len(self._overflow)
        if first:
            log.error(
                "%s; holding alerts in memory until they are sent (%d held, at most %d); "
                "they are lost if the process stops before that and the disk is still full",
                exc,
                held,
                self.overflow_max_messages,
            )
        if lost is not None:
            log.warning(
                "alerts held in memory: %d, the most there is room for; dropped the oldest, %s",
                self.overflow_max_messages,
                _describe(lost[1]),
            )

    def hold_replayed(self, entries: list[tuple[str, str, float]]) -> None:
        """Hold in memory, to be sent after the stored backlog, replayed journal entries
        (``(topic, payload JSON text, created_at)``) that the outbox could not store
        (:func:`~edge_component.delivery.handover.replay_into` with ``unstored``)."""
        for topic, payload, _ in entries:
            try:
                message = json.loads(payload)
            except ValueError:
                continue  # the journal wrote it with json.dumps: not expected
            if isinstance(message, dict):
                self._hold(topic, message, OutboxError(f"outbox {self.outbox.path} cannot store replayed alerts"))
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
        return self._backoff.delay_s(failures)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                failures = self._send_some(failures)
            except Exception as exc:  # noqa: BLE001 - the one thread that sends alerts must not die
                if self._stop.is_set():
                    return
                failures = self._failed(failures, "outbox", exc)

    def _send_some(self, failures: int) -> int:
        """One round: the stored backlog (a batch), else one held alert, else telemetry
        (then wait to be woken). Returns the new count of consecutive failures."""
        self._wake.clear()  # before peeking: a put() after the peek sets it again
        unreadable: OutboxError | None = None
        try:
            items = self.outbox.peek(self._batch)
        except OutboxError as exc:
            if self._stop.is_set():
                return failures
            items, unreadable = [], exc  # held alerts still go out while the file cannot be read
        for item in items:
            if self._stop.is_set():
                return failures
            try:
                self.transport.publish(item.topic, item.message)
            except PublishRefusedError as exc:  # for good: it must not block the queue behind it
                self.outbox.dead_letter(item.id, f"refused by the transport: {exc}")
                log.error(
                    "outbox %s: message id %d on %s refused for good, moved to dead_letters (%s): %s",
                    self.outbox.path,
                    item.id,
                    item.topic,
                    _describe(item.message),
                    exc,
                )
                continue
            except Exception as exc:  # PublishError is expected; anything else is a bug, still retried
                try:
                    self.outbox.record_attempt(item.id)
                except OutboxError:
                    pass  # a full disk cannot count attempts; the retry matters, not the count
                return self._failed(failures, f"outbox message {item.id}", exc)  # peek again after
            failures = self._delivered(failures)
            if self.journal is not None:  # before the outbox lets it go: see .handover
                self.journal.record(item.topic, item.message, item.created_at)
            self.outbox.ack(item.id)
        if items:
            return failures
        with self._overflow_lock:
            head = self._overflow[0] if self._overflow else None
        if head is not None:
            try:
                self.transport.publish(*head)
            except PublishRefusedError as exc:
                log.error(
                    "alert held in memory on %s refused for good, dropped (%s): %s", head[0], _describe(head[1]), exc
                )
                with self._overflow_lock:
                    if self._overflow and self._overflow[0] is head:
                        self._overflow.popleft()
                        self._overflow_dropped += 1
                return failures
            except Exception as exc:
                return self._failed(failures, "alert held in memory", exc)
            if self.journal is not None:
                self.journal.record(head[0], head[1], time.time())
            with self._overflow_lock:
                if self._overflow and self._overflow[0] is head:  # not dropped meanwhile
                    self._overflow.popleft()
            return self._delivered(failures)
        if unreadable is not None:
            return self._failed(failures, "outbox", unreadable)
        if not self._send_latest():
            return self._failed(failures, "telemetry", None)
        with self._progress:
            self._progress.notify_all()
        self._wake.wait()
        return failures

    def _delivered(self, failures: int) -> int:
        if failures:
            log.info("outbox delivering again after %d failed sends", failures)
        self._sent += 1
        with self._progress:
            self._progress.notify_all()
        return 0

    def _send_latest(self) -> bool:
        with self._latest_lock:
            waiting = list(self._latest.items())
        for topic, message in waiting:
            try:
                self.transport.publish(topic, message)
            except PublishRefusedError as exc:
                log.error("telemetry on %s refused for good, dropped: %s", topic, exc)
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
        # An outage of hours would otherwise log every retry; a bug always logs, with its traceback.
        level = (
            (logging.WARNING if failures == 1 or failures % 20 == 0 else logging.DEBUG) if expected else logging.ERROR
        )
        log.log(
            level,
            "sending %s failed (%d in a row, %d queued), retrying in %.2f s: %s",
            what,
            failures,
            self.outbox.depth,
            delay,
            exc,
            exc_info=exc if not expected else None,
        )
        self._stop.wait(delay)
        return failures

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the outbox and the overflow are empty and
        the latest telemetry sent; True if that happened."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self.outbox.depth > 0 or self._overflow or self._latest:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.1))
        return True

    def stats(self) -> dict[str, int | bool]:
        """Counters for telemetry: ``depth`` (stored and queued now), ``unstored`` (alerts
        held in memory now because the outbox could not store them), ``sent``,
        ``retries`` (failed sends), ``dropped`` (outbox full, over the file's life, plus
        overflow drops in this run), ``dead`` (stored rows that could not be read back,
        over the file's life), ``lost`` (stored rows a crash or a damaged file took, found
        at open, over the file's life), ``reconnects`` (the transport's, 0 if it does not count
        them) and ``sender_alive`` (the sender thread runs; False only after close)."""
        return {
            "depth": self.outbox.depth,
            "unstored": len(self._overflow),
            "sent": self._sent,
            "retries": self._retries,
            "dropped": self.outbox.dropped + self._overflow_dropped,
            "dead": self.outbox.dead,
            "lost": self.outbox.lost,
            "reconnects": int(getattr(self.transport, "reconnects", 0)),
            "sender_alive": self._thread.is_alive(),
        }

    def close(self, drain_timeout_s: float = 0.0) -> None:
        """Stop sending (after trying to empty the outbox for up to ``drain_timeout_s``),
        then close the transport and the outbox. What is unsent stays on disk for the
        next start (logged as a warning with the count); alerts held in memory are
        stored if the disk now allows, else logged as lost. Idempotent."""
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
            try:
                self._store_held()
                if self.outbox.depth > 0:
                    log.warning(
                        "%d alerts still queued in %s; they will be sent on the next start",
                        self.outbox.depth,
                        self.outbox.path,
                    )
            finally:
                self.outbox.close()
                if self.journal is not None:
                    self.journal.close()

    def _store_held(self) -> None:
        """At close: write the alerts held in memory to the outbox, in order, while it takes them."""
        with self._overflow_lock:
            held, self._overflow = list(self._overflow), deque()
        for n, (topic, message) in enumerate(held):
            try:
                self.outbox.put(topic, message)
            except OutboxError as exc:
                lost = held[n:]
                log.error(
                    "%d alerts held in memory could not be stored in %s and are lost (%s): %s",
                    len(lost),
                    self.outbox.path,
                    exc,
                    ", ".join(_describe(m) for _, m in lost),
                )
                return

    def __enter__(self) -> OutboxPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(message: dict[str, Any]) -> str:
    """``event_id/event_type#sequence`` of an alert, for the log of what was dropped or lost."""
    return f"{message.get('event_id')}/{message.get('event_type')}#{message.get('sequence')}"
