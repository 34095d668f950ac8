"""The demo's evidence step (issue 14), run through examples/run_demo.py's own functions
on a 48 s cut of the example clip (its first two intrusions) with the shipped seed model,
against moto in server mode over real HTTP:

- evidence on: every event start gets a snapshot notification whose presigned link,
  fetched over HTTP from moto's S3, is the JPEG the edge wrote, with the demo camera's
  privacy mask black. "A presigned URL uses security credentials to grant time-limited
  permission to download objects. The URL can be entered in a browser or used by a
  program to download the object"
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ShareObjectPreSignedURL.html):
  so a plain HTTP GET, with no credentials of its own, must return the image.
- evidence off: moto answers no request while the edge runs, S3 gets none at all, and no
  snapshot notification is sent.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
SEED = REPO / "edge_component" / "models" / "seed"
# The demo camera's privacy mask (examples/demo-config.yaml): the window on the left wall.
WINDOW = (slice(0, int(0.4 * 432)), slice(0, int(0.15 * 768)))
INSET = 16  # px: JPEG's 8x8 blocks along the mask's edge ring a little


@pytest.fixture(scope="module")
def demo():
    """examples/run_demo.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("vigil_run_demo", REPO / "examples" / "run_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def two_intrusions(tmp_path_factory) -> Path:
    """The clip's first 48 s (480 frames at 10 fps): intrusions at 6-20 s and 23-45 s."""
    out = tmp_path_factory.mktemp("clip") / "two-intrusions.mp4"
    src = cv2.VideoCapture(str(CLIP))
    fps = src.get(cv2.CAP_PROP_FPS)
    size = (int(src.get(cv2.CAP_PROP_FRAME_WIDTH)), int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(int(48 * fps)):
        ok, frame = src.read()
        assert ok, "the example clip is shorter than 48 s"
        writer.write(frame)
    writer.release()
    src.release()
    return out


def _run(demo, clip: Path, out: Path, evidence: bool):
    config = demo.load_demo_config(evidence, clip)
    with demo.DemoMoto() as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=demo.DEMO_BUCKET, CreateBucketConfiguration={"LocationConstraint": demo.REGION})
        after_setup = len(moto.requests)
        edge = demo.run_edge(SEED, moto, config, out)
        bucket = demo.DEMO_BUCKET if evidence else None
        notifications = demo.run_cloud(edge.alerts_path, moto, bucket, out, with_feedback=False)
        checks = demo.check_snapshots(notifications, config)
        s3_requests = moto.s3_requests(after_setup)
        objects = s3.list_objects_v2(Bucket=demo.DEMO_BUCKET).get("Contents", [])
        # Fetched again here, by the test itself, while the server is up.
        links = [c.url for c in checks]
        bodies = [urllib.request.urlopen(url, timeout=10).read() for url in links]  # noqa: S310 - moto on localhost
    return config, edge, notifications, checks, s3_requests, objects, bodies


def _assert_masked(body: bytes) -> None:
    assert body[:3] == b"\xff\xd8\xff"  # JPEG SOI marker
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (432, 768, 3)
    rows, cols = WINDOW
    assert image[INSET : rows.stop - INSET, INSET : cols.stop - INSET].max() <= 8  # the window is black
    assert image[: 432 // 2, 768 // 2 :].mean() > 30  # the rest of the room is there


def test_the_demo_config_masks_a_region_that_is_not_black_in_the_clip():
    """Else a black mask region would prove nothing."""
    src = cv2.VideoCapture(str(CLIP))
    ok, frame = src.read()
    src.release()
    assert ok
    rows, cols = WINDOW
    assert frame[INSET : rows.stop - INSET, INSET : cols.stop - INSET].max() > 100


def test_with_evidence_on_each_start_gets_a_snapshot_notification_whose_link_fetches_the_masked_jpeg(
    demo, two_intrusions, tmp_path
):
    config, edge, notifications, checks, _, objects, bodies = _run(demo, two_intrusions, tmp_path, evidence=True)
    assert config.cameras[0].privacy_masks, "the demo camera has a privacy mask"
    starts = edge.report.starts
    assert len(starts) == 2  # one per intrusion in the cut
    snapshot_notes = [n for n in notifications if demo.is_snapshot_notification(n)]
    assert len(snapshot_notes) == len(starts)
    assert len(notifications) == 2 * len(starts)  # each start's alert and its snapshot follow-up
    assert edge.uploads is not None and edge.uploads["uploaded"] == len(starts) and edge.uploads["queued"] == 0

    by_event = {c.event_id: c for c in checks}
    assert sorted(by_event) == sorted(s["event_id"] for s in starts)
    for start in starts:
        check = by_event[start["event_id"]]
        assert check.ok, check
        assert check.url in json.dumps([n["Message"] for n in snapshot_notes])  # the link is in the notification
        assert "X-Amz-Signature=" in check.url and check.url.startswith("http://127.0.0.1:")
        assert check.status == 200 and check.content_type == "image/jpeg"
        # The very file the edge wrote (masked before it was written), under the thing's prefix.
        assert check.body == (tmp_path / "snapshots" / start["snapshot"]["file"]).read_bytes()
        assert f"/snapshots/{demo.THING}/{start['event_id']}/" in check.url
    assert sorted(o["Key"] for o in objects) == sorted(
        f"snapshots/{demo.THING}/{s['event_id']}/{s['snapshot']['file']}" for s in starts
    )
    for body in bodies:
        _assert_masked(body)
    ok, line = demo.evidence_verdict(starts, notifications, checks, [], evidence_on=True)
    assert ok and line.startswith("snapshot links: 2/2 ")


def test_with_evidence_off_no_request_reaches_moto_from_the_edge_and_no_snapshot_notification_is_sent(
    demo, two_intrusions, tmp_path
):
    _, edge, notifications, checks, s3_requests, objects, _ = _run(demo, two_intrusions, tmp_path, evidence=False)
    starts = edge.report.starts
    assert len(starts) == 2
    assert edge.requests == []  # moto answered nothing at all while the edge ran
    assert s3_requests == [] and objects == []  # nor any S3 request later
    assert edge.uploads is None and not (tmp_path / "evidence.sqlite").exists()
    assert not [n for n in notifications if demo.is_snapshot_notification(n)] and checks == []
    assert len(notifications) == len(starts)  # the alerts themselves still notify
    assert "s3_key" not in edge.alerts_path.read_text()
    ok, line = demo.evidence_verdict(starts, notifications, checks, edge.requests + s3_requests, evidence_on=False)
    assert ok and line.startswith("evidence off: 0 requests from the edge or to the evidence bucket, 0 snapshot")
    ok, _ = demo.evidence_verdict(starts, notifications, checks, [("PUT", "/x", "s3")], evidence_on=False)
    assert not ok


def test_the_snapshot_check_fails_on_an_unmasked_image_and_the_verdict_then_fails(demo, tmp_path):
    config = demo.load_demo_config(True)
    src = cv2.VideoCapture(str(CLIP))
    ok, frame = src.read()
    src.release()
    assert ok
    with demo.DemoMoto() as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket="vigil-check", CreateBucketConfiguration={"LocationConstraint": demo.REGION})
        s3.put_object(Bucket="vigil-check", Key="snapshots/t/e1/f.jpg", Body=cv2.imencode(".jpg", frame)[1].tobytes())
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "vigil-check", "Key": "snapshots/t/e1/f.jpg"})
        check = demo.check_snapshot_link(url, config)
        missing = demo.check_snapshot_link(url.replace("f.jpg", "g.jpg"), config)
    assert check.event_id == "e1" and check.status == 200 and check.mask_max > 100 and not check.ok
    assert missing.error.startswith("GET failed") and not missing.ok
    ok, line = demo.evidence_verdict([{"event_id": "e1"}], [], [check], [], evidence_on=True)
    assert not ok and "0/1" in line
