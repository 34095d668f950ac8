"""One camera through every stage (edge_component/camera.py) on the real example clip: one
timely alert per intrusion, no false alert, snapshots, schedules, lighting changes, the
stages' settings."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_component.camera import CameraPipeline
from edge_component.config import parse_config
from edge_component.contracts.alerts import validate_alert
from edge_component.delivery.publisher import PublishError
from edge_component.events.snapshots import SnapshotStore
from edge_component.model.bundle import load_bundle
from infra.config import load_stages
from training.evaluate import match_alerts

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
STAGES = load_stages(json.loads((REPO / "cdk.json").read_text())["context"]["vigil:stages"])


class Discard:
    def publish(self, topic, message):
        pass

    def close(self):
        pass


class Recorder:
    def __init__(self):
        self.sent = []

    def publish(self, topic, message):
        self.sent.append((topic, message))

    def close(self):
        pass


@pytest.fixture(scope="module")
def demo_config():
    import yaml

    raw = yaml.safe_load((REPO / "examples" / "demo-config.yaml").read_text())
    raw["cameras"][0]["source"] = str(CLIP)
    return parse_config(raw)


@pytest.fixture(scope="module")
def clip_run(demo_config, trained_bundle, tmp_path_factory):
    snaps = SnapshotStore(tmp_path_factory.mktemp("snaps"))
    rec = Recorder()
    det = CameraPipeline(demo_config, load_bundle(trained_bundle), rec, thing_name="vigil-test-cam", snapshots=snaps)
    return det.run_replay(demo_config.cameras[0]), rec, snaps


def motion_only(config):
    """``config`` with every zone of its first camera on motion alone (the trained model's
    events, as before objects were detected): for the tests of what both paths share."""
    cam = config.cameras[0]
    zones = [z.model_copy(update={"motion_only": True}) for z in cam.zones]
    return config.model_copy(update={"cameras": [cam.model_copy(update={"zones": zones})]})


def test_one_alert_per_intrusion_labelled_person_each_within_1_5_seconds(clip_run, ground_truth):
    # The demo's zone watches the default objects, [person].
    report, rec, _ = clip_run
    starts = [m for _, m in rec.sent if m["event_type"] == "start"]
    gt = ground_truth()
    assert len(starts) == len(gt) == 6
    for (t0, _t1), alert in zip(gt, starts, strict=True):
        assert t0 <= alert["media_offset_s"] <= t0 + 1.5, (t0, alert["media_offset_s"])
        assert alert["label"] == "person" and alert["schema_version"] == "1.2"
        assert alert["score"] >= alert["threshold"] == 0.7
    # The detector ran only where motion was, in about one region per analysed frame.
    assert 0 < report.detector_calls <= 1.5 * report.stats.analysed


def test_no_alert_in_the_empty_stretches(clip_run, ground_truth):
    _, rec, _ = clip_run
    gt = ground_truth()
    for _, m in rec.sent:
        if m["event_type"] == "start":
            assert any(a <= m["media_offset_s"] < b for a, b in gt)


def test_every_event_ends_and_every_message_is_schema_valid_on_the_thing_topic(clip_run):
    _, rec, _ = clip_run
    by_event = {}
    for topic, m in rec.sent:
        assert topic == "vigil/vigil-test-cam/alerts"
        validate_alert(m)
        by_event.setdefault(m["event_id"], []).append(m)
    assert len(by_event) == 6
    for msgs in by_event.values():
        assert [m["event_type"] for m in msgs][0] == "start" and msgs[-1]["event_type"] == "end"
        assert [m["sequence"] for m in msgs] == list(range(len(msgs)))
        # A replay's ends say why: the tracker lost the person, or the file ended mid-event.
        assert msgs[-1]["end_reason"] in {"object_lost", "stopped"}
        assert all("end_reason" not in m for m in msgs[:-1])


def test_each_start_alert_references_an_annotated_jpeg_snapshot(clip_run):
    _, rec, snaps = clip_run
    for _, m in rec.sent:
        if m["event_type"] == "start":
            img = cv2.imread(str(snaps.directory / m["snapshot"]["file"]))
            assert img is not None and img.shape == (432, 768, 3)
            # In colour, though the replay analysed luma only: decoded again for evidence.
            assert np.abs(img[..., 0].astype(np.int16) - img[..., 2]).mean() > 5


def test_a_later_message_carries_a_better_frame_only_when_one_came(clip_run):
    _, rec, snaps = clip_run
    by_event = {}
    for _, m in rec.sent:
        by_event.setdefault(m["event_id"], []).append(m)
    for msgs in by_event.values():
        files = [m.get("snapshot", {}).get("file") for m in msgs]
        assert files[0]  # the start always has one
        for m in msgs[1:]:
            f = m["snapshot"]["file"]
            assert (snaps.directory / f).is_file()
            # an object's event keeps its start's snapshot; a motion event's later message
            # carries a new, higher-scoring frame only when one came
            assert f == files[0] or (f.endswith(f"-{m['sequence']}.jpg") and m["score"] >= msgs[0]["score"])


def test_the_armed_schedule_silences_a_camera_outside_its_hours(demo_config, trained_bundle):
    from datetime import datetime

    armed = {
        "time_zone": "Europe/London",
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "18:00", "end": "07:00"}],
    }
    cam = demo_config.cameras[0].model_copy(
        update={
            "armed": parse_config(
                {
                    "cameras": [
                        {
                            "name": "c",
                            "source": "x",
                            "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                            "armed": armed,
                        }
                    ]
                }
            )
            .cameras[0]
            .armed
        }
    )
    det = CameraPipeline(motion_only(demo_config), load_bundle(trained_bundle), Recorder(), thing_name="t")
    cam = cam.model_copy(update={"zones": motion_only(demo_config).cameras[0].zones})
    # Recorded on a Wednesday at 12:00 in London (BST): disarmed for the whole clip.
    noon = det.run_replay(cam, origin=datetime(2026, 6, 3, 11, 0, tzinfo=UTC))
    assert noon.starts == []
    # The same footage at 23:00 on a Friday: armed (the window runs past midnight).
    night = det.run_replay(cam, origin=datetime(2026, 6, 5, 22, 0, tzinfo=UTC))
    assert len(night.starts) == 6
    # Starting at 06:58:30 on a Saturday: Friday's window closes at 07:00, so only the
    # intrusions in the first 90 s alert.
    morning = det.run_replay(cam, origin=datetime(2026, 6, 6, 5, 58, 30, tzinfo=UTC))
    assert [round(a["media_offset_s"]) for a in morning.starts] == [
        round(a["media_offset_s"]) for a in night.starts[:4]
    ]


def test_a_clip_that_brightens_sharply_raises_no_alert(demo_config, trained_bundle, tmp_path):
    # The empty first 5.5 s of the real clip, with the lights switched on at 2.5 s.
    cap = cv2.VideoCapture(str(CLIP))
    out_path = tmp_path / "lights.avi"
    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 432))
    for i in range(55):
        ok, frame = cap.read()
        assert ok
        if i >= 25:
            frame = np.clip(frame.astype(np.int16) + 80, 0, 255).astype(np.uint8)
        writer.write(frame)
    writer.release()
    cap.release()
    cam = demo_config.cameras[0].model_copy(update={"source": str(out_path)})
    rec = Recorder()
    report = CameraPipeline(demo_config, load_bundle(trained_bundle), rec, thing_name="t").run_replay(cam)
    assert report.windows > 20
    assert rec.sent == []


@pytest.mark.timeout(600)  # three 60-s replays with the detector: over 180 s on a loaded 2-core machine
def test_blank_frames_and_a_fade_to_black_and_back_change_no_alert(demo_config, trained_bundle, tmp_path):
    # The first 60 s of the real clip (three intrusions), once as it is and once with a
    # black frame before it and two during the second intrusion, as decoders and cameras
    # produce them.
    cap = cv2.VideoCapture(str(CLIP))
    frames = [cap.read()[1] for _ in range(600)]
    cap.release()
    black = np.zeros_like(frames[0])
    # The lights fade out over 1.5 s in the empty stretch after the second intrusion, stay
    # off for a moment and fade back in: the background must follow, not be left half dark.
    gain = np.interp(np.arange(600) / 10.0, [45.5, 47.0, 47.5, 49.0], [1.0, 0.0, 0.0, 1.0])
    faded = [(f * g).astype(np.uint8) for f, g in zip(frames, gain, strict=True)]
    starts = {}
    variants = {"plain": frames, "blanks": [black] + frames[:250] + [black, black] + frames[252:], "fade": faded}
    for name, sequence in variants.items():
        path = tmp_path / f"{name}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 432))
        for image in sequence:
            writer.write(image)
        writer.release()
        cam = demo_config.cameras[0].model_copy(update={"source": str(path)})
        report = CameraPipeline(demo_config, load_bundle(trained_bundle), Recorder(), thing_name="t").run_replay(cam)
        starts[name] = [a["media_offset_s"] for a in report.starts]
        # Counted for telemetry: a camera that sends only blank frames is blind, and shows it.
        if name != "fade":
            assert report.blank_frames == (0 if name == "plain" else 2)  # of the three, the ones analysed
    assert len(starts["plain"]) == 3
    assert len(starts["fade"]) == 3 and np.allclose(starts["fade"], starts["plain"], atol=0.25)
    # The same three alerts; the leading black frame shifts media time by 0.1 s.
    assert len(starts["blanks"]) == 3
    assert np.allclose(np.array(starts["blanks"]) - 0.1, starts["plain"], atol=0.25)


def test_a_refusing_publisher_keeps_the_message(demo_config, trained_bundle):
    class Down(Recorder):
        def publish(self, topic, message):
            raise PublishError("broker down")

    config = motion_only(demo_config)
    report = CameraPipeline(config, load_bundle(trained_bundle), Down(), thing_name="t").run_replay(config.cameras[0])
    assert len([m for m in report.failed if m["event_type"] == "start"]) == 6


def test_model_file_onnx_runs_the_same_detections_in_onnx_runtime(tmp_path, ground_truth):
    from training.evaluate import match_alerts

    seed = REPO / "edge_component" / "models" / "seed"
    config = parse_config(
        {
            "model_file": "model.onnx",
            "cameras": [
                {
                    "name": "lab",
                    "source": str(CLIP),
                    "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "motion_only": True}],
                }
            ],
        }
    )
    bundle = load_bundle(seed, config.model_file)
    assert type(bundle.scorer).__name__ == "OnnxScorer"
    report = CameraPipeline(config, bundle, Recorder(), thing_name="t").run_replay(config.cameras[0])
    result = match_alerts([a["media_offset_s"] for a in report.starts], ground_truth(), 139.4)
    assert (result.found, result.duplicates, len(result.false_alerts_at_s)) == (6, 0, 0)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_edge_settings_give_one_timely_alert_per_intrusion(stage, ground_truth):
    # Exactly what the deployment merges into the component configuration.
    merge, _reset = STAGES[stage].edge.configuration_update()
    config = parse_config(
        {
            **merge,
            "cameras": [
                {
                    "name": "lab",
                    "source": str(CLIP),
                    "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "motion_only": True}],
                }
            ],
        }
    )
    bundle = load_bundle(REPO / "edge_component" / "models" / "seed")
    report = CameraPipeline(config, bundle, Discard(), thing_name="t").run_replay(config.cameras[0])
    result = match_alerts([a["media_offset_s"] for a in report.starts], ground_truth(), 139.4, max_delay_s=2.0)
    assert (result.found, result.late, result.missed, result.duplicates) == (6, 0, 0, 0), result.summary()
    assert result.false_alerts_at_s == []


def test_a_live_alert_is_dated_by_the_wall_clock_of_its_frame(demo_config, trained_bundle):
    """Live frames carry the wall clock when they were read (capture.live). Here the clip's
    frames get a wall clock that steps forward an hour 60 s in (NTP correcting a device
    that booted with a wrong clock): alerts before the step carry the old dates, alerts
    after it the new ones, at once, with no restart."""
    from datetime import datetime

    from edge_component.capture.feed import Feed
    from edge_component.capture.frames import CaptureStats
    from edge_component.capture.replay import replay

    boot = datetime(2026, 6, 5, 22, 0, tzinfo=UTC).timestamp()
    step_after_s, step_s = 60.0, 3600.0

    def frames():
        for frame in replay(str(CLIP), demo_config.detection_fps):
            frame.wall_s = boot + frame.time_s + (step_s if frame.time_s >= step_after_s else 0.0)
            yield frame

    rec = Recorder()
    det = CameraPipeline(demo_config, load_bundle(trained_bundle), rec, thing_name="t")
    det._run(demo_config.cameras[0], Feed(str(CLIP), frames(), CaptureStats(), media_time=False))
    starts = [m["sent_at"] for _, m in rec.sent if m["event_type"] == "start"]
    # Intrusions start about 6, 23, 51, 75, 93 and 124 s into the clip: three before the step, three after.
    assert [s[:16] for s in starts] == ["2026-06-05T22:00"] * 3 + ["2026-06-05T23:01"] * 2 + ["2026-06-05T23:02"], (
        starts
    )
