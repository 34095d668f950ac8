"""The component with the model from the model component (VIGIL_MODEL_DIR): its alerts
and telemetry carry the model's digest and version; a corrupt bundle stops it (exit 2,
the reason naming the variable) instead of running the seed, and in Greengrass mode
that reason goes out in telemetry (``model.load_error``) for the canary check
(lambda/vigil_loop/canary.py reads ``model.sha256``, ``model.version``,
``model.load_error``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_component.__main__ import main as edge_main
from edge_component.config import parse_config
from edge_component.model.errors import ModelError
from edge_component.model.source import MODEL_DIR_ENV
from edge_component.runtime import TELEMETRY_SCHEMA_VERSION, Supervisor
from tests.edge.conftest import clip_excerpt
from tests.edge.model.test_source import SEED, SEED_SHA, unpack_model_component

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


@pytest.fixture(scope="module")
def first_event_clip(tmp_path_factory):
    """The clip's first 12 s (120 frames at 10 fps; its first intrusion starts at 6 s),
    re-encoded, so a replay is short but still alerts."""
    return clip_excerpt(tmp_path_factory.mktemp("clip") / "first12s.avi", frames=120)


def _corrupt(folder: Path) -> None:
    model = folder / "model.tflite"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0x55
    model.write_bytes(bytes(data))


def _run(tmp_path, clip, model_dir) -> tuple[int, Path]:
    cfg = {"cameras": [{"name": "lab", "source": str(clip), "zones": [{"name": "room", "polygon": WHOLE}]}]}
    out = tmp_path / "alerts.jsonl"
    rc = edge_main(
        [
            "run",
            "--config-json",
            json.dumps(cfg),
            "--model-dir",
            str(model_dir),
            "--thing-name",
            "cam-1",
            "--alerts-out",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ]
    )
    return rc, out


def test_alerts_and_telemetry_carry_the_model_components_digest_and_version(tmp_path, monkeypatch, first_event_clip):
    folder = unpack_model_component(tmp_path / "gg", version="1.3.0")
    monkeypatch.setenv(MODEL_DIR_ENV, str(folder))
    rc, out = _run(tmp_path, first_event_clip, tmp_path / "no-seed-here")  # the variable wins
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    alerts = [ln["message"] for ln in lines if ln["topic"] == "vigil/cam-1/alerts"]
    starts = [m for m in alerts if m["event_type"] == "start"]
    assert starts and all(m["model_sha256"] == SEED_SHA for m in starts)
    telemetry = [ln["message"] for ln in lines if ln["topic"] == "vigil/cam-1/telemetry"]
    assert telemetry and all(t["schema_version"] == TELEMETRY_SCHEMA_VERSION for t in telemetry)
    assert all(t["model"] == {"sha256": SEED_SHA, "version": "1.3.0", "file": "model.tflite"} for t in telemetry)


def test_a_corrupt_model_component_stops_the_component_and_never_runs_the_seed(tmp_path, monkeypatch, caplog):
    folder = unpack_model_component(tmp_path / "gg")
    _corrupt(folder)
    monkeypatch.setenv(MODEL_DIR_ENV, str(folder))
    rc, out = _run(tmp_path, CLIP, SEED)  # a good seed given too: it must not be used
    assert rc == 2
    assert f"{MODEL_DIR_ENV}={folder}: " in caplog.text and "model.tflite SHA-256" in caplog.text
    assert not out.exists() or out.read_text() == ""  # no camera started


def test_in_greengrass_mode_a_model_load_error_is_reported_in_telemetry(tmp_path, monkeypatch, FakeIpcClient):
    import yaml

    import edge_component.__main__ as cli

    folder = unpack_model_component(tmp_path / "gg", version="1.4.0")
    _corrupt(folder)
    monkeypatch.setenv(MODEL_DIR_ENV, str(folder))
    recipe = yaml.safe_load((REPO / "edge_component" / "recipe.yaml").read_text())
    configuration = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    configuration["cameras"][0]["source"] = str(CLIP)
    fake = FakeIpcClient(configuration)
    monkeypatch.setattr(cli, "_greengrass_client", lambda: fake)
    rc = cli.main(["run", "--greengrass", "--thing-name", "gg-cam", "--state-dir", str(tmp_path / "state")])
    assert rc == 2
    assert [topic for topic, _, _ in fake.published] == ["vigil/gg-cam/telemetry"]
    model = fake.published[0][2]["model"]
    assert model["sha256"] is None and model["version"] == "1.4.0"
    assert model["load_error"].startswith(f"{MODEL_DIR_ENV}={folder}: ") and "SHA-256" in model["load_error"]


class _Out:
    def publish(self, topic, message):
        pass


def test_telemetry_says_why_when_the_model_of_the_configuration_cannot_be_read(tmp_path):
    config = parse_config({"cameras": [{"name": "c", "source": str(CLIP), "zones": [{"name": "z", "polygon": WHOLE}]}]})

    def model_info(model_file):
        raise ModelError("model bundle x: model.onnx is listed in the manifest but missing")

    sup = Supervisor(
        config, model_dir=SEED, thing_name="t", publisher=_Out(), snapshot_dir=tmp_path, model_info=model_info
    )
    model = sup.telemetry()["model"]
    assert model["sha256"] is None and "model.onnx is listed in the manifest but missing" in model["load_error"]
    plain = Supervisor(config, model_dir=SEED, thing_name="t", publisher=_Out(), snapshot_dir=tmp_path)
    assert "model" not in plain.telemetry()
