"""Evidence uploads end to end: the edge replays a short clip with
``evidence.upload_snapshots`` on, against moto's S3 in server mode over real HTTP, with
the credentials a Greengrass component gets from the token exchange service (see
conftest.py for the source); a kill before the upload and a restart; uploads off.

The device's IAM allows ``s3:PutObject`` only under ``snapshots/<thing>/*``
(infra/devices.py), which is the key every upload here must have.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_component.__main__ import main as edge_main
from edge_component.contracts.alerts import validate_alert
from edge_component.delivery.jsonl import JsonLinesPublisher
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.sender import OutboxPublisher
from edge_component.evidence.uploader import UPLOAD_SEQUENCE_BASE, SnapshotUploader, snapshot_key

from .conftest import BUCKET, REPO, SEED, TES_TOKEN, ConnectionCounter, free_port, start_moto

THING = "cam-1"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]
MASK = [[0, 0], [0.3, 0], [0.3, 0.4], [0, 0.4]]  # top-left: blacked out before the JPEG is written


def _config(tmp_path: Path, clip: Path, upload: bool) -> Path:
    cfg = tmp_path / "cfg.json"
    camera = {
        "name": "lab",
        "source": str(clip),
        "zones": [{"name": "room", "polygon": WHOLE}],
        "privacy_masks": [{"name": "door", "polygon": MASK}],
    }
    cfg.write_text(json.dumps({"cameras": [camera], "evidence": {"upload_snapshots": upload, "bucket": BUCKET}}))
    return cfg


def _argv(cfg: Path, state: Path, out: Path) -> list[str]:
    return [
        "run",
        "--config",
        str(cfg),
        "--model-dir",
        str(SEED),
        "--thing-name",
        THING,
        "--alerts-out",
        str(out),
        "--state-dir",
        str(state),
    ]


def _alerts(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return [line["message"] for line in lines if line["topic"] == f"vigil/{THING}/alerts"]


def _wait_for(predicate, what: str, limit_s: float = 60.0):
    """Poll until ``predicate()`` is truthy (a bound on a hang, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _assert_masked_jpeg(data: bytes) -> None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the uploaded object is not a JPEG OpenCV can decode"
    assert data[:3] == b"\xff\xd8\xff"  # JPEG SOI marker
    h, w = image.shape[:2]
    # 16 px in from the mask's edge: JPEG's 8x8 blocks that straddle it ring a little.
    inside = image[16 : int(0.4 * h) - 16, 16 : int(0.3 * w) - 16]
    assert inside.max() <= 8  # the privacy mask is black
    assert image[: h // 2, w // 2 :].mean() > 30  # the rest of the room is there


def test_the_edge_uploads_the_masked_snapshot_and_sends_an_update_with_its_key(
    segment, tmp_path, device_env, moto_s3, tes
):
    url, s3 = moto_s3
    device_env(url)
    state, out = tmp_path / "state", tmp_path / "alerts.jsonl"
    assert edge_main(_argv(_config(tmp_path, segment, upload=True), state, out)) == 0

    alerts = _alerts(out)
    starts = [m for m in alerts if m["event_type"] == "start"]
    assert len(starts) == 1 and "s3_key" not in starts[0]["snapshot"]  # the alert went out without waiting
    file, event_id = starts[0]["snapshot"]["file"], starts[0]["event_id"]
    key = snapshot_key(THING, event_id, file)
    assert key == f"snapshots/{THING}/{event_id}/{file}"

    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == (state / "snapshots" / file).read_bytes()
    _assert_masked_jpeg(body)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [key]  # once, though 2 messages name it

    updates = [m for m in alerts if m["event_type"] == "update" and "s3_key" in m.get("snapshot", {})]
    assert len(updates) == 1
    update = updates[0]
    validate_alert(update)
    assert update["snapshot"] == {"file": file, "s3_key": key}
    assert update["event_id"] == event_id and update["sequence"] == UPLOAD_SEQUENCE_BASE + 0
    assert alerts.index(starts[0]) < alerts.index(update)
    assert tes.hits and set(tes.hits) == {TES_TOKEN}  # credentials from the token exchange service
    with sqlite3.connect(state / "evidence.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM uploads WHERE finished_at IS NULL").fetchone()[0] == 0
    telemetry = [json.loads(line)["message"] for line in out.read_text().splitlines() if "telemetry" in line]
    evidence = telemetry[-1]["evidence"]  # the last heartbeat may come before the upload lands
    assert set(evidence) == {"queued", "uploaded", "given_up", "failed_attempts"}
    assert evidence["queued"] + evidence["uploaded"] == 1 and evidence["given_up"] == 0


def test_an_upload_queued_before_a_kill_completes_when_a_new_uploader_starts(segment, tmp_path, device_env, tes):
    port = free_port()  # nothing listens there yet: S3 is down
    device_env(f"http://127.0.0.1:{port}")
    state, out = tmp_path / "state", tmp_path / "alerts.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    edge = subprocess.Popen(
        [sys.executable, "-m", "edge_component", *_argv(_config(tmp_path, segment, upload=True), state, out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def failed_once():
            if not (state / "evidence.sqlite").exists():
                return None
            with sqlite3.connect(state / "evidence.sqlite") as db:
                return db.execute("SELECT event_id, file FROM uploads WHERE attempts >= 1").fetchone()

        event_id, file = _wait_for(failed_once, "a failed upload in the queue")
        edge.send_signal(signal.SIGKILL)
        edge.wait(30)
    finally:
        if edge.poll() is None:
            edge.kill()
    assert edge.returncode == -signal.SIGKILL
    assert "s3_key" not in json.dumps(_alerts(out))

    server, url = start_moto(port)  # S3 is back, where it was
    try:
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        s3.create_bucket(Bucket=BUCKET)
        publisher = OutboxPublisher(Outbox(state / "outbox.sqlite"), JsonLinesPublisher(out))
        uploader = SnapshotUploader(
            state / "evidence.sqlite", state / "snapshots", thing_name=THING, bucket=BUCKET, publisher=publisher
        ).start()
        key = snapshot_key(THING, event_id, file)
        try:
            _wait_for(lambda: uploader.uploaded == 1, "the upload after the restart")
        finally:
            uploader.close()
            publisher.close(drain_timeout_s=10.0)
        _assert_masked_jpeg(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    finally:
        server.stop()
    updates = [m for m in _alerts(out) if m["event_type"] == "update" and "s3_key" in m.get("snapshot", {})]
    assert [u["snapshot"]["s3_key"] for u in updates] == [key]


def test_with_uploads_off_no_request_leaves_and_no_boto3_client_is_made(
    segment, tmp_path, device_env, tes, monkeypatch
):
    s3 = ConnectionCounter()
    device_env(s3.url)
    made = []
    import boto3
    import boto3.session

    monkeypatch.setattr(boto3, "client", lambda *a, **k: made.append(a) or pytest.fail("boto3.client called"))
    monkeypatch.setattr(
        boto3.session.Session, "client", lambda *a, **k: made.append(a) or pytest.fail("Session.client called")
    )
    state, out = tmp_path / "state", tmp_path / "alerts.jsonl"
    try:
        assert edge_main(_argv(_config(tmp_path, segment, upload=False), state, out)) == 0
    finally:
        s3.close()
    alerts = _alerts(out)
    assert any("snapshot" in m for m in alerts)  # there was a snapshot to upload
    assert "s3_key" not in json.dumps(alerts)
    assert s3.connections == 0 and tes.hits == [] and made == []
    assert not (state / "evidence.sqlite").exists()


class _Recorder:
    def __init__(self):
        self.messages = []

    def publish(self, topic, message):
        self.messages.append((topic, message))


def _start_alert(event_id: str, file: str) -> dict:
    return {
        "schema_version": "1.2",
        "event_id": event_id,
        "event_type": "start",
        "sequence": 0,
        "thing_name": THING,
        "camera": "lab",
        "zone": "room",
        "started_at": "2026-12-03T07:00:00.000Z",
        "sent_at": "2026-12-03T07:00:01.000Z",
        "score": 0.9,
        "threshold": 0.5,
        "snapshot": {"file": file},
    }


def test_a_snapshot_deleted_before_its_upload_is_given_up_with_a_log_line(tmp_path, caplog):
    made = []
    uploader = SnapshotUploader(
        tmp_path / "evidence.sqlite",
        tmp_path,
        thing_name=THING,
        bucket=BUCKET,
        publisher=_Recorder(),
        client_factory=lambda: made.append(1),
    ).start()
    with caplog.at_level(logging.WARNING, logger="edge_component.evidence.uploader"):
        assert uploader.offer(_start_alert("a" * 32, "lab-gone.jpg"))
        _wait_for(lambda: uploader.given_up == 1, "the upload given up")
    uploader.close()
    assert "lab-gone.jpg is gone" in caplog.text
    assert made == [] and uploader.uploaded == 0
    with sqlite3.connect(tmp_path / "evidence.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM uploads WHERE finished_at IS NULL").fetchone()[0] == 0


def test_offer_returns_while_an_upload_is_in_flight(tmp_path):
    """The supervisor's thread only queues the file: a hung S3 never holds up the next alert."""
    (tmp_path / "lab-1.jpg").write_bytes(b"\xff\xd8\xff one")
    (tmp_path / "lab-2.jpg").write_bytes(b"\xff\xd8\xff two")
    in_flight, release, keys = threading.Event(), threading.Event(), []

    class HungS3:
        def put_object(self, **kw):
            keys.append(kw["Key"])
            in_flight.set()
            release.wait(30)

    recorder = _Recorder()
    uploader = SnapshotUploader(
        tmp_path / "evidence.sqlite",
        tmp_path,
        thing_name=THING,
        bucket=BUCKET,
        publisher=recorder,
        client_factory=HungS3,
    ).start()
    try:
        assert uploader.offer(_start_alert("b" * 32, "lab-1.jpg"))
        assert in_flight.wait(30)
        assert uploader.offer(_start_alert("c" * 32, "lab-2.jpg"))  # returns though the first upload hangs
        assert not uploader.offer(_start_alert("c" * 32, "lab-2.jpg"))  # queued once
        assert recorder.messages == []
    finally:
        release.set()
        _wait_for(lambda: uploader.uploaded == 2, "both uploads")
        uploader.close()
    assert keys == [snapshot_key(THING, "b" * 32, "lab-1.jpg"), snapshot_key(THING, "c" * 32, "lab-2.jpg")]
    assert [m["snapshot"]["s3_key"] for _, m in recorder.messages] == keys


def test_a_later_message_naming_an_uploaded_snapshot_uploads_nothing(tmp_path):
    """An event's update and end messages name its start's snapshot again."""
    (tmp_path / "lab-1.jpg").write_bytes(b"\xff\xd8\xff")
    keys = []

    class S3:
        def put_object(self, **kw):
            keys.append(kw["Key"])

    recorder = _Recorder()
    uploader = SnapshotUploader(
        tmp_path / "evidence.sqlite", tmp_path, thing_name=THING, bucket=BUCKET, publisher=recorder, client_factory=S3
    ).start()
    assert uploader.offer(_start_alert("e" * 32, "lab-1.jpg"))
    _wait_for(lambda: uploader.uploaded == 1, "the upload")
    end = _start_alert("e" * 32, "lab-1.jpg") | {"event_type": "end", "sequence": 1}
    assert not uploader.offer(end)
    assert not uploader.offer(recorder.messages[0][1])  # the update itself carries the s3_key
    uploader.close()
    assert len(keys) == 1 and len(recorder.messages) == 1
