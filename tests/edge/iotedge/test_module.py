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


@pytest.fixture(scope="module")
def greengrass_alerts(tmp_path_factory) -> list[dict]:
    """The clip's alerts on the Greengrass default: the bundle manifest's int8 TFLite
    classifier in LiteRT (no model_file), published to a JSON-lines file."""
    tmp = tmp_path_factory.mktemp("jsonl")
    cfg = tmp / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    out = tmp / "alerts.jsonl"
    rc = cli.main(
        ["run", "--config", str(cfg), "--thing-name", "edge-cam", "--alerts-out", str(out)]
        + ["--model-dir", str(SEED), "--state-dir", str(tmp / "state")]
    )
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return [line["message"] for line in lines if line["topic"] == "vigil/edge-cam/alerts"]


# The one alert ONNX Runtime changes on the room clip, measured with the seed bundle: the
# detector looks at motion only in windows the classifier scores at least the gate (the
# decision threshold, 0.26171875). At media 124.0 s the int8 model scores 0.2617 (67/256,
# on the gate) and the float ONNX model 0.2558 (under it): the only one of the clip's 697
# windows on which the two decide differently (largest difference 0.0124 over all
# windows). So on ONNX the detector first sees the sixth person one window (0.2 s) later.
ONNX_SIXTH_START = (("start", 0, "lab", "room", "person", 124.2), ("start", 0, "lab", "room", "person", 124.4))


@pytest.mark.slow
@pytest.mark.parametrize("twin_model_file", ["manifest", "model.tflite"])
def test_the_module_raises_the_same_alerts_on_the_clip_as_the_greengrass_path(
    FakeModuleClient, greengrass_alerts, monkeypatch, tmp_path, twin_model_file
):
    """The module runs the classifier the twin names: model.onnx in ONNX Runtime as the
    deployment manifest sets it (infra/azure_manifest.py MODULE_MODEL_FILE), or
    model.tflite in LiteRT once the twin is switched back. Each alert's model_sha256 names
    the file that scored it. On LiteRT the alerts are the Greengrass path's; on ONNX Runtime
    all but one are, and that one starts one window later (ONNX_SIXTH_START, with why)."""
    from infra.azure_manifest import MODULE_MODEL_FILE, load_cdk_stages, module_desired_properties, select_stage

    model_file = module_desired_properties(select_stage(load_cdk_stages(), "dev"))["model_file"]
    assert model_file == MODULE_MODEL_FILE == "model.onnx"
    if twin_model_file != "manifest":
        model_file = twin_model_file
    files = json.loads((SEED / "manifest.json").read_text())["files"]
    expected = greengrass_alerts

    client = FakeModuleClient({**CONFIG, "model_file": model_file})
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
    rc = cli.main(["run", "--iotedge", "--state-dir", str(tmp_path / "edge"), "--model-dir", str(SEED)])
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
    assert {m["model_sha256"] for m in expected} == {files["model.tflite"]}  # Greengrass: LiteRT, int8
    assert {m["model_sha256"] for m in alerts} == {files[model_file]}
    assert {m["model"]["file"] for m in telemetry} == {model_file}
    differences = [(e, a) for e, a in zip(_events(expected), _events(alerts), strict=True) if e != a]
    assert differences == ([ONNX_SIXTH_START] if model_file == "model.onnx" else [])
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


def test_evidence_uploads_in_the_twin_are_refused_not_a_crash(FakeModuleClient, monkeypatch, tmp_path, caplog):
    """The snapshot uploader signs S3 requests with the Greengrass token exchange service's
    credentials (edge_component/evidence/uploader.py); an IoT Edge module has no such service,
    so the twin check refuses uploads on (once a TypeError at start: the thing name was None)."""
    on = {**CONFIG, "evidence": {"upload_snapshots": True, "bucket": "my-bucket", "region": "eu-west-1"}}
    client = FakeModuleClient(on)
    client.connect()
    monkeypatch.setattr(cli, "_iotedge_client", lambda: client)
    monkeypatch.setenv("IOTEDGE_DEVICEID", "edge-cam")
    rc = cli.main(["run", "--iotedge", "--state-dir", str(tmp_path / "e"), "--model-dir", str(SEED)])
    assert rc == 2
    report = client.reported_config()
    assert report["status"] == "refused" and "token exchange service" in report["message"]
    assert "evidence.upload_snapshots is not available on Azure IoT Edge" in caplog.text
    assert client.shut_down


def test_an_rtsp_password_is_in_neither_telemetry_nor_logs(FakeModuleClient, monkeypatch, tmp_path, caplog, capfd):
    """A real RTSP open that fails (nothing listens on 127.0.0.1:1): the camera's last_error
    names the source as rtsp://***@127.0.0.1:1/stream, in telemetry (routed to IoT Hub) and
    in every log line, the worker process's included. RFC 3986 section 3.2.1: "user:password"
    in a URI must not be rendered in clear text."""
    import os
    import signal

    password = "S3cretPw"
    source = f"rtsp://admin:{password}@127.0.0.1:1/stream"
    cams = {"cameras": [{"name": "door", "source": source, "zones": [{"name": "room", "polygon": WHOLE}]}]}
    client = FakeModuleClient({**cams, "telemetry_every_s": 1})
    client.connect()
    reported = threading.Event()

    def stop_once_the_error_is_reported(output, message):
        if (
            output == "telemetry"
            and json.loads(message.data)["cameras"]["door"]["last_error"]
            and not reported.is_set()
        ):
            reported.set()
            os.kill(os.getpid(), signal.SIGTERM)  # main() stops on SIGTERM, as under the edge agent

    client.on_send = stop_once_the_error_is_reported
    monkeypatch.setattr(cli, "_iotedge_client", lambda: client)
    monkeypatch.setenv("IOTEDGE_DEVICEID", "edge-cam")
    caplog.set_level("INFO")
    cli.main(["run", "--iotedge", "--state-dir", str(tmp_path / "e"), "--model-dir", str(SEED)])
    assert reported.is_set()
    telemetry = [m.data for output, m in client.sent if output == "telemetry"]
    errors = [json.loads(t)["cameras"]["door"]["last_error"] for t in telemetry]
    assert any("rtsp://***@127.0.0.1:1/stream" in e for e in errors), errors
    out, err = capfd.readouterr()
    assert "***@127.0.0.1:1" in caplog.text + err  # the source is named, without its userinfo
    for text in (*telemetry, caplog.text, out, err, json.dumps(client.reports)):
        assert password not in text and "admin:" not in text


@pytest.mark.parametrize("key", ["publisher", "mqtt"])
def test_publisher_and_mqtt_in_the_twin_are_refused_they_never_take_effect(
    FakeModuleClient, monkeypatch, tmp_path, caplog, key
):
    """The module always sends to its outputs through the edge hub (delivery/iotedge.py):
    a publisher or mqtt setting would be reported applied and do nothing."""
    value = "mqtt" if key == "publisher" else {"host": "broker", "port": 8883}
    client = FakeModuleClient({**CONFIG, key: value})
    client.connect()
    monkeypatch.setattr(cli, "_iotedge_client", lambda: client)
    monkeypatch.setenv("IOTEDGE_DEVICEID", "edge-cam")
    rc = cli.main(["run", "--iotedge", "--state-dir", str(tmp_path / "e"), "--model-dir", str(SEED)])
    assert rc == 2
    report = client.reported_config()
    assert report["status"] == "refused" and f"{key}: not used on Azure IoT Edge" in report["message"]


def test_a_missing_workload_socket_is_a_clear_error_naming_the_workload_uri(monkeypatch, tmp_path, caplog, capsys):
    """The real SDK (azure-iot-device create_from_edge_environment) asks the IoT Edge
    workload API, at IOTEDGE_WORKLOADURI, to sign its token; with no socket there it raises
    (once an 87-line traceback and exit status 1)."""
    socket = tmp_path / "workload.sock"  # never created
    env = {
        "IOTEDGE_IOTHUBHOSTNAME": "hub.azure-devices.net",
        "IOTEDGE_DEVICEID": "edge-cam",
        "IOTEDGE_MODULEID": "vigil",
        "IOTEDGE_GATEWAYHOSTNAME": "edgehub",
        "IOTEDGE_MODULEGENERATIONID": "1",
        "IOTEDGE_WORKLOADURI": f"unix://{socket}",
        "IOTEDGE_APIVERSION": "2019-01-30",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc = cli.main(["run", "--iotedge", "--state-dir", str(tmp_path / "e"), "--model-dir", str(SEED)])
    assert rc == 2
    assert f"the IoT Edge workload API 'unix://{socket}' (IOTEDGE_WORKLOADURI) did not answer" in caplog.text
    assert "Traceback" not in caplog.text + capsys.readouterr().err
