"""The upload queue's file (the outbox's discipline: one owner, a corrupt or foreign file
moved aside), retries with backoff that survive a restart, the update message, and a
configuration update that turns uploads off."""

from __future__ import annotations

import sqlite3
import time

import pytest

from edge_component.config import parse_config
from edge_component.contracts.alerts import validate_alert
from edge_component.delivery.outbox_file import OutboxError
from edge_component.evidence.queue import UploadQueue
from edge_component.evidence.uploader import UPLOAD_SEQUENCE_BASE, SnapshotUploader, update_message
from edge_component.runtime import Supervisor

from .test_uploads import THING, _Recorder, _start_alert, _wait_for

EVENT = "d" * 32


def test_one_owner_per_queue_file(tmp_path):
    first = UploadQueue(tmp_path / "evidence.sqlite")
    with pytest.raises(OutboxError, match="in use"):
        UploadQueue(tmp_path / "evidence.sqlite")
    first.close()
    UploadQueue(tmp_path / "evidence.sqlite").close()  # the lock went with its owner


@pytest.mark.parametrize("content, kind", [(b"this is not a database" * 100, "corrupt"), (None, "foreign")])
def test_a_corrupt_or_foreign_queue_file_is_moved_aside_and_a_fresh_queue_starts(tmp_path, content, kind, caplog):
    path = tmp_path / "evidence.sqlite"
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE other (x)")
    else:
        path.write_bytes(content)
    queue = UploadQueue(path)
    assert queue.add(EVENT, "lab-1.jpg", _start_alert(EVENT, "lab-1.jpg"))
    assert queue.depth() == 1
    queue.close()
    assert len(list(tmp_path.glob(f"evidence.sqlite.{kind}-*"))) == 1
    assert "moved it to" in caplog.text


def test_a_failed_upload_is_retried_with_backoff_and_its_wait_survives_a_restart(tmp_path):
    (tmp_path / "lab-1.jpg").write_bytes(b"\xff\xd8\xff")
    calls = []

    class FlakyS3:
        def put_object(self, **kw):
            calls.append(kw["Key"])
            if len(calls) == 1:
                raise ConnectionError("S3 unreachable")

    queue_path = tmp_path / "evidence.sqlite"
    slow = SnapshotUploader(
        queue_path,
        tmp_path,
        thing_name=THING,
        bucket="b",
        publisher=_Recorder(),
        client_factory=FlakyS3,
        retry_initial_s=3600,
    ).start()
    slow.offer(_start_alert(EVENT, "lab-1.jpg"))
    _wait_for(lambda: slow.failed_attempts == 1, "the first failure")
    slow.close()
    with sqlite3.connect(queue_path) as db:
        attempts, next_at = db.execute("SELECT attempts, next_at FROM uploads").fetchone()
    assert attempts == 1 and next_at > time.time() + 3600 * 0.8 - 60  # the wait is stored

    with sqlite3.connect(queue_path) as db:  # as if that hour had passed
        db.execute("UPDATE uploads SET next_at = 0")
    recorder = _Recorder()
    again = SnapshotUploader(
        queue_path, tmp_path, thing_name=THING, bucket="b", publisher=recorder, client_factory=FlakyS3
    ).start()
    _wait_for(lambda: again.uploaded == 1, "the retry")
    again.close()
    assert len(calls) == 2 and calls[0] == calls[1]
    assert recorder.messages[0][0] == f"vigil/{THING}/alerts"


def test_the_update_message_keeps_the_event_and_carries_the_key():
    alert = _start_alert(EVENT, "lab-1.jpg") | {"label": "person", "box": [0.1, 0.2, 0.3, 0.4], "sequence": 0}
    msg = update_message(alert, f"snapshots/{THING}/{EVENT}/lab-1.jpg")
    validate_alert(msg)
    assert msg["event_type"] == "update" and msg["sequence"] == UPLOAD_SEQUENCE_BASE
    assert msg["snapshot"] == {"file": "lab-1.jpg", "s3_key": f"snapshots/{THING}/{EVENT}/lab-1.jpg"}
    assert (msg["label"], msg["box"], msg["started_at"]) == ("person", alert["box"], alert["started_at"])


def test_a_thing_name_an_s3_key_cannot_hold_is_refused(tmp_path):
    with pytest.raises(ValueError, match="':'"):
        SnapshotUploader(tmp_path / "q.sqlite", tmp_path, thing_name="site:cam", bucket="b", publisher=_Recorder())


def test_a_configuration_update_that_turns_uploads_off_stops_them_at_once(tmp_path):
    cam = {"name": "lab", "source": "x.mp4", "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1]]}]}
    on = parse_config({"cameras": [cam], "evidence": {"upload_snapshots": True, "bucket": "bucket-1"}})
    uploader = SnapshotUploader(
        tmp_path / "q.sqlite", tmp_path, thing_name=THING, bucket="bucket-1", publisher=_Recorder()
    ).start()
    supervisor = Supervisor(
        on, model_dir=tmp_path, thing_name=THING, publisher=_Recorder(), snapshot_dir=tmp_path, evidence=uploader
    )
    supervisor.update_config(
        on.model_copy(update={"evidence": on.evidence.model_copy(update={"upload_snapshots": False})})
    )
    supervisor._apply_pending()
    assert supervisor.evidence is None
    assert not uploader._thread.is_alive()
