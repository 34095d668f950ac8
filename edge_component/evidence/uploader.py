"""Evidence uploads: each event's snapshot (privacy masks already black in the file,
:meth:`~edge_component.events.snapshots.SnapshotStore.save`) to the stage's evidence
bucket under ``snapshots/<thing>/<event_id>/<file>``, and an ``update`` alert carrying
``snapshot.s3_key`` once it has landed.

Choices, and why:

- An alert is never delayed by an upload: the supervisor publishes the alert first and
  then :meth:`SnapshotUploader.offer` only queues the file (one SQLite commit); the
  uploads run on their own thread.
- Durable: the queue is a SQLite file next to the outbox (:mod:`.queue`); a failed
  upload is retried with :class:`~edge_component.backoff.Backoff` (its ``next_at`` is
  stored, so the wait survives a restart), and a queued upload completes after a
  restart. Order on success: upload, publish the update (the outbox commits it), then
  mark the row finished; a crash in between uploads again (PutObject of the same key
  is idempotent) and sends the update again (consumers deduplicate). A finished row is
  kept a day, so the event's later messages, which name the same file, upload nothing.
- A snapshot deleted before its upload (the store keeps ``snapshot_max_files``) is
  given up with a log line: there is nothing left to send.
- Credentials: boto3's default chain. On a Greengrass core the token exchange service
  (``aws.greengrass.TokenExchangeService``) sets ``AWS_CONTAINER_CREDENTIALS_FULL_URI``
  and ``AWS_CONTAINER_AUTHORIZATION_TOKEN``; "when a component creates an AWS SDK
  client, the client recognizes this URI environment variable" and fetches the token
  exchange role's credentials, refreshed before they expire
  (https://docs.aws.amazon.com/greengrass/v2/developerguide/token-exchange-service-component.html).
  boto3 is imported, and its client created, only when the first upload is due: with
  ``evidence.upload_snapshots`` off no uploader exists at all.
- The update's ``sequence``: the schema numbers an event's messages 0, 1, 2... from the
  camera worker, which the uploader (in the supervisor, after the event may have ended)
  cannot know. Its updates take :data:`UPLOAD_SEQUENCE_BASE` + the sequence of the
  message that named the file, so they never collide with the camera's
  (``(event_id, event_type, sequence)`` is what consumers deduplicate on).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_component.backoff import Backoff
from edge_component.contracts.alert_rules import SNAPSHOT_PREFIX
from edge_component.contracts.alerts import AlertValidationError, validate_alert
from edge_component.contracts.topics import alert_topic
from edge_component.delivery.outbox_file import OutboxError
from edge_component.delivery.publisher import Publisher, PublishError

from .queue import Upload, UploadQueue

log = logging.getLogger(__name__)

UPLOAD_SEQUENCE_BASE = 500_000  # the schema allows up to 1,000,000; a camera's event never gets near
_KEPT = ("schema_version", "event_id", "thing_name", "camera", "zone", "started_at", "score", "threshold")
_KEPT_IF_PRESENT = ("model_sha256", "label", "box", "media_offset_s")


def snapshot_key(thing_name: str, event_id: str, file: str) -> str:
    """The object key of ``file`` of ``event_id``: ``snapshots/<thing>/<event_id>/<file>``."""
    return f"{SNAPSHOT_PREFIX}/{thing_name}/{event_id}/{file}"


def update_message(alert: Mapping[str, Any], key: str, sent_at: datetime | None = None) -> dict[str, Any]:
    """The ``update`` alert saying ``alert``'s snapshot is at ``key`` in the evidence
    bucket; validated (AlertValidationError if not)."""
    moment = (sent_at or datetime.now(UTC)).astimezone(UTC)
    msg: dict[str, Any] = {k: alert[k] for k in _KEPT}
    msg.update({k: alert[k] for k in _KEPT_IF_PRESENT if k in alert})
    msg["event_type"] = "update"
    msg["sequence"] = UPLOAD_SEQUENCE_BASE + int(alert["sequence"])
    msg["sent_at"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    msg["snapshot"] = {"file": alert["snapshot"]["file"], "s3_key": key}
    validate_alert(msg)
    return msg


def s3_client(region: str | None = None) -> Any:
    """An S3 client on boto3's default credential chain (the token exchange service on
    a Greengrass core); ``AWS_ENDPOINT_URL_S3`` points it elsewhere (tests: moto)."""
    import boto3  # lazily: only a device with uploads on needs it
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
    return boto3.session.Session().client("s3", region_name=region, config=config)


class SnapshotUploader:
    """Uploads the snapshots named by alerts to ``bucket``, from the queue file
    ``queue_path``, on its own thread (:meth:`start` .. :meth:`close`).

    ``snapshot_dir``: where the camera workers write the JPEGs. ``publisher`` takes the
    update messages (normally the outbox publisher). ``client_factory()`` returns the S3
    client (default :func:`s3_client` for ``region``), called once, when the first
    upload is due. Raises OutboxError if the queue file cannot be used, ValueError if
    ``thing_name`` cannot be part of an ``s3_key`` (the schema allows ``[a-zA-Z0-9_./-]``).
    """

    def __init__(
        self,
        queue_path: str | Path,
        snapshot_dir: str | Path,
        *,
        thing_name: str,
        bucket: str,
        publisher: Publisher,
        region: str | None = None,
        client_factory: Callable[[], Any] | None = None,
        retry_initial_s: float = 2.0,
        retry_max_s: float = 300.0,
    ):
        if ":" in thing_name:
            raise ValueError(
                f"evidence uploads: thing name {thing_name!r} holds ':', which the alert schema's"
                " snapshot.s3_key does not allow; rename the thing or turn evidence.upload_snapshots off"
            )
        self.snapshot_dir = Path(snapshot_dir)
        self.thing_name = thing_name
        self.bucket = bucket
        self.publisher = publisher
        self.topic = alert_topic(thing_name)
        self._client_factory = client_factory or (lambda: s3_client(region))
        self._client: Any = None
        self._backoff = Backoff(retry_initial_s, retry_max_s, jitter_base=0.8, jitter_spread=0.4)
        self.queue = UploadQueue(queue_path)
        self.uploaded = 0
        self.given_up = 0
        self.failed_attempts = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, message: Mapping[str, Any]) -> bool:
        """Queue the upload of the snapshot ``message`` names (an alert already handed
        to the publisher); True if queued, False if it names none, already carries an
        ``s3_key`` or is queued already. Never raises: evidence is worth less than the alert."""
        snapshot = message.get("snapshot")
        if not isinstance(snapshot, Mapping) or "file" not in snapshot or "s3_key" in snapshot:
            return False
        try:
            added = self.queue.add(str(message["event_id"]), str(snapshot["file"]), dict(message))
        except (OutboxError, KeyError, TypeError, ValueError) as exc:
            log.error("evidence: snapshot %s not queued for upload: %s", snapshot.get("file"), exc)
            return False
        if added:
            self._wake.set()
        return added

    def start(self) -> SnapshotUploader:
        self._thread = threading.Thread(target=self._run, name="evidence-uploader", daemon=True)
        self._thread.start()
        return self

    def close(self, drain_timeout_s: float = 0.0, timeout_s: float = 10.0) -> None:
        """Stop the thread and close the queue. First, up to ``drain_timeout_s``, let it
        finish the uploads that are due now (not those waiting out a backoff); then an
        upload in flight finishes or times out within ``timeout_s``. What is left stays
        queued for the next start."""
        deadline = time.monotonic() + drain_timeout_s
        while self._thread is not None and self._thread.is_alive() and time.monotonic() < deadline:
            try:
                if not self.queue.due(limit=1):
                    break
            except OutboxError:
                break
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("evidence: uploader did not stop within %.0fs; the queue stays for next time", timeout_s)
                return
        self.queue.close()

    def stats(self) -> dict[str, int]:
        """Uploads queued (-1 if the queue cannot be read), uploaded, given up, and failed attempts."""
        try:
            queued = self.queue.depth()
        except sqlite3.Error:
            queued = -1
        return {
            "queued": queued,
            "uploaded": self.uploaded,
            "given_up": self.given_up,
            "failed_attempts": self.failed_attempts,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                due = self.queue.due()
                for upload in due:
                    if self._stop.is_set():
                        return
                    self._attempt(upload)
                if due:
                    continue
                next_at = self.queue.next_at()
            except OutboxError as exc:  # the queue file (a full disk): try again shortly
                log.error("evidence: %s", exc)
                next_at = time.time() + 5.0
            wait = 3600.0 if next_at is None else max(0.0, next_at - time.time())
            self._wake.wait(min(wait, 3600.0))
            self._wake.clear()

    def _attempt(self, upload: Upload) -> None:
        path = self.snapshot_dir / upload.file
        key = snapshot_key(self.thing_name, upload.event_id, upload.file)
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            log.warning("evidence: snapshot %s is gone (deleted before its upload); upload of %s given up", path, key)
            self.given_up += 1
            self.queue.done(upload.id)
            return
        except OSError as exc:
            self._retry(upload, key, f"cannot read {path}: {exc}")
            return
        try:
            update = update_message(upload.alert, key)
        except (AlertValidationError, KeyError, TypeError, ValueError) as exc:
            log.error("evidence: no valid update message for %s (%s); upload given up", key, exc)
            self.given_up += 1
            self.queue.done(upload.id)
            return
        try:
            if self._client is None:
                self._client = self._client_factory()
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="image/jpeg")
        except Exception as exc:  # botocore's errors, credentials, the network: all are retried
            self._retry(upload, key, f"{type(exc).__name__}: {exc}")
            return
        try:
            self.publisher.publish(self.topic, update)
        except PublishError as exc:
            self._retry(upload, key, f"uploaded, but the update was not accepted: {exc}")
            return
        self.uploaded += 1
        self.queue.done(upload.id)
        log.info("evidence: %s uploaded to s3://%s/%s", upload.file, self.bucket, key)

    def _retry(self, upload: Upload, key: str, reason: str) -> None:
        self.failed_attempts += 1
        attempts = upload.attempts + 1
        delay = self._backoff.delay_s(attempts)
        log.warning("evidence: upload of %s failed (attempt %d): %s; retrying in %.0fs", key, attempts, reason, delay)
        self.queue.retry_at(upload.id, attempts, time.time() + delay)
