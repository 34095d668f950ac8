"""``python -m edge_component run --iotedge`` (edge_component/__main__.py) outside a
container: the fake ``IoTHubModuleClient`` stands in for the edge hub, the module twin
holds the configuration (patched during the run, through Supervisor.update_config), and
the real clip and seed model run as on Greengrass."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import edge_component.__main__ as cli

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"  # the clip of tests/edge/test_main.py
SEED = REPO / "edge_component" / "models" / "seed"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]
CONFIG = {"cameras": [{"name": "lab", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]}]}


def _events(alerts: list[dict]) -> list[tuple]:
    """What must agree between two runs of the clip (event ids and wall-clock times differ)."""
    return [
        (m["event_type"], m["sequence"], m["camera"], m["zone"], m.get("label"), m["media_offset_s"]) for m in alerts
    ]


@pytest.mark.slow
def test_the_module_raises_the_same_alerts_on_the_clip_as_the_jsonl_path(FakeModuleClient, monkeypatch, tmp_path):
    """The jsonl path runs the Greengrass default, the int8 TFLite classifier in LiteRT; the
    module runs what the deployment manifest's twin sets, model.onnx in ONNX Runtime
    (infra/azure_manifest.py MODULE_MODEL_FILE). Same alerts from both; each alert's
    model_sha256 names the file that scored it."""
    from infra.azure_manifest import MODULE_MODEL_FILE

    files = json.loads((SEED / "manifest.json").read_text())["files"]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    out = tmp_path / "alerts.jsonl"
    common = ["--model-dir", str(SEED)]
    rc = cli.main(
        ["run", "--config", str(cfg), "--thing-name", "edge-cam", "--alerts-out", str(out)]
        + common
        + ["--state-dir", str(tmp_path / "jsonl")]
    )
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [line["message"] for line in lines if line["topic"] == "vigil/edge-cam/alerts"]

    client = FakeModuleClient({**CONFIG, "model_file": MODULE_MODEL_FILE})
    client.connect()
    patched = threading.Event()

    def patch_during_the_run(output, message):
        # After the first alert (media 7 s of the clip's 139 s): an invalid patch (refused,
        # the old configuration keeps running), then its fix with a telemetry change, which
        # restarts no camera. On the outbox's sender thread, which waits for both.
        if output == "alerts" and not patched.is_set():
            patched.set()
            client.update_desired({"detection_fps": 0})
            client.update_desired({"detection_fps": None, "telemetry_every_s": 30})

    client.on_send = patch_during_the_run
    monkeypatch.setattr(cli, "_iotedge_client", lambda: client)
    monkeypatch.setenv("IOTEDGE_DEVICEID", "edge-cam")
    rc = cli.main(["run", "--iotedge", "--state-dir", str(tmp_path / "edge")] + common)
    assert rc == 0
    assert [(r["vigil"]["config"]["status"], r["vigil"]["config"]["version"]) for r in client.reports] == [
        ("applied", 1),
        ("refused", 2),
        ("applied", 3),
    ]
    assert "detection_fps" in client.reports[1]["vigil"]["config"]["message"]
    assert client.reports[2]["vigil"]["config"]["message"] == "started [], restarted [], stopped []"
    alerts = [json.loads(m.data) for output, m in client.sent if output == "alerts"]
    telemetry = [json.loads(m.data) for output, m in client.sent if output == "telemetry"]
    assert sum(1 for m in expected if m["event_type"] == "start") == 6  # the clip's six intrusions
    assert _events(alerts) == _events(expected)
    assert {m["model_sha256"] for m in expected} == {files["model.tflite"]}  # LiteRT, int8
    assert MODULE_MODEL_FILE == "model.onnx"
    assert {m["model_sha256"] for m in alerts} == {files["model.onnx"]}  # ONNX Runtime, float32
    assert {m["model"]["file"] for m in telemetry} == {"model.onnx"}
    assert {m["thing_name"] for m in alerts} == {"edge-cam"}
    assert telemetry[-1]["cameras"]["lab"]["state"] == "done"
    assert client.shut_down  # closed with the publisher


def test_outside_a_module_the_error_names_the_missing_variables(monkeypatch, tmp_path, caplog):
    for name in cli.IOTEDGE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IOTEDGE_MODULEID", "vigil")
    rc = cli.main(["run", "--iotedge", "--model-dir", str(SEED), "--state-dir", str(tmp_path)])
    assert rc == 2
    assert "not running as an IoT Edge module" in caplog.text
    assert "IOTEDGE_DEVICEID" in caplog.text and "IOTEDGE_WORKLOADURI" in caplog.text
    assert "IOTEDGE_MODULEID," not in caplog.text  # the one that is set is not named


def test_a_device_id_that_is_no_thing_name_is_refused_clearly_and_thing_name_overrides_it(
    FakeModuleClient, monkeypatch, tmp_path, caplog
):
    """IoT Hub device ids may hold '.', which the alert topic and the schema's thing_name
    refuse (contracts/topics.py THING_NAME_PATTERN); mapping it could let two devices
    share a name, so it is refused with the way out."""
    monkeypatch.setenv("IOTEDGE_DEVICEID", "site1.cam01")
    missing = {"cameras": [{**CONFIG["cameras"][0], "source": str(tmp_path / "missing.mp4")}]}
    clients = []

    def connected_client():
        clients.append(FakeModuleClient(missing))
        clients[-1].connect()
        return clients[-1]

    monkeypatch.setattr(cli, "_iotedge_client", connected_client)
    args = ["run", "--iotedge", "--model-dir", str(SEED), "--state-dir", str(tmp_path)]
    assert cli.main(args) == 2
    assert "IoT Edge device id 'site1.cam01' is not a valid thing name" in caplog.text
    assert "'.'" in caplog.text and "--thing-name" in caplog.text
    assert clients[0].reports == [] and clients[0].shut_down  # refused before the twin was read

    assert cli.main(args + ["--thing-name", "site1-cam01"]) == 2  # past the name, to the twin's check
    assert "video file not found" in caplog.text
    assert clients[1].reported_config()["status"] == "refused" and clients[1].shut_down


def test_a_twin_that_cannot_be_read_is_a_clear_error(FakeModuleClient, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(cli, "_iotedge_client", lambda: FakeModuleClient(CONFIG))  # not connected
    rc = cli.main(["run", "--iotedge", "--thing-name", "cam-1", "--model-dir", str(SEED), "--state-dir", str(tmp_path)])
    assert rc == 2 and "the module twin cannot be read: NoConnectionError" in caplog.text


def test_without_iotedge_the_thing_name_is_still_required(tmp_path, caplog):
    rc = cli.main(["run", "--config-json", json.dumps(CONFIG), "--model-dir", str(SEED), "--state-dir", str(tmp_path)])
    assert rc == 2 and "give --thing-name" in caplog.text


def test_the_module_path_imports_without_paho_mqtt_2():
    """azure-iot-device 2.14.0 needs paho-mqtt<2, so the module image has no paho-mqtt 2:
    nothing on the --iotedge path may import edge_component/delivery/mqtt.py (paho 2's
    ``paho.mqtt.enums``)."""
    code = (
        "import sys; sys.modules['paho.mqtt.enums'] = None\n"
        "import edge_component.__main__, edge_component.runtime, edge_component.twin_updates\n"
        "import edge_component.delivery.iotedge\n"
        "assert 'edge_component.delivery.mqtt' not in sys.modules\n"
        "try:\n    import edge_component.delivery.mqtt\nexcept ImportError:\n    print('blocked')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "blocked"  # the block works: mqtt.py does need paho 2
