"""The command line (edge_component/__main__.py): runs on the clip, and fails with a
message naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_component.__main__ import main as edge_main

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
SEED = REPO / "edge_component" / "models" / "seed"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def test_cli_runs_on_the_clip_and_writes_json_lines(trained_bundle, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                "cameras": [
                    {
                        "name": "lab",
                        "source": str(CLIP),
                        "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                    }
                ]
            }
        )
    )
    out = tmp_path / "alerts.jsonl"
    rc = edge_main(
        [
            "run",
            "--config",
            str(cfg),
            "--model-dir",
            str(trained_bundle),
            "--thing-name",
            "cam-1",
            "--alerts-out",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ]
    )
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    alerts = [line["message"] for line in lines if line["topic"] == "vigil/cam-1/alerts"]
    assert sum(1 for m in alerts if m["event_type"] == "start") == 6
    referenced = {m["snapshot"]["file"] for m in alerts if "snapshot" in m}
    assert referenced == {p.name for p in (tmp_path / "state" / "snapshots").glob("*.jpg")}
    assert all("snapshot" in m for m in alerts if m["event_type"] == "start")
    telemetry = [line["message"] for line in lines if line["topic"] == "vigil/cam-1/telemetry"]
    final = telemetry[-1]["cameras"]["lab"]
    assert final["state"] == "done" and final["crashes"] == 0
    assert abs(final["frames_in"] - 1394) <= 2 and final["events"] == 6


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            '{"cameras": [{"name": "c", "source": "x.mp4", '
            '"zones": [{"name": "z", "polygon": [[0,0],[1,0],[1,1]]}]}], "fps": 3}',
            "fps",
        ),
        (
            '{"cameras": [{"name": "c", "source": "missing.mp4", '
            '"zones": [{"name": "z", "polygon": [[0,0],[1,0],[1,1]]}]}]}',
            "not found",
        ),
        ("{oops", "not valid JSON"),
    ],
)
def test_cli_fails_with_a_message_naming_the_problem(trained_bundle, tmp_path, caplog, cfg, message):
    rc = edge_main(
        [
            "run",
            "--config-json",
            cfg,
            "--model-dir",
            str(trained_bundle),
            "--thing-name",
            "cam-1",
            "--alerts-out",
            str(tmp_path / "a.jsonl"),
            "--state-dir",
            str(tmp_path),
        ]
    )
    assert rc == 2
    assert message in caplog.text


def test_cli_rejects_a_bad_thing_name(trained_bundle, tmp_path, caplog):
    rc = edge_main(
        [
            "run",
            "--config-json",
            json.dumps(
                {
                    "cameras": [
                        {
                            "name": "c",
                            "source": str(CLIP),
                            "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                        }
                    ]
                }
            ),
            "--model-dir",
            str(trained_bundle),
            "--thing-name",
            "bad name/with#",
            "--state-dir",
            str(tmp_path),
        ]
    )
    assert rc == 2 and "invalid thing name" in caplog.text


def test_greengrass_mode_reads_its_configuration_and_publishes_through_ipc(monkeypatch, tmp_path, FakeIpcClient):
    import yaml

    import edge_component.__main__ as cli

    recipe = yaml.safe_load((REPO / "edge_component" / "recipe.yaml").read_text())
    configuration = recipe["ComponentConfiguration"]["DefaultConfiguration"]  # accessControl included, as on a device
    configuration["cameras"][0]["source"] = str(CLIP)
    fake = FakeIpcClient(configuration)
    monkeypatch.setattr(cli, "_greengrass_client", lambda: fake)
    rc = cli.main(
        [
            "run",
            "--greengrass",
            "--thing-name",
            "gg-cam",
            "--state-dir",
            str(tmp_path),
            "--model-dir",
            str(REPO / "edge_component" / "models" / "seed"),
        ]
    )
    assert rc == 0
    starts = [m for topic, qos, m in fake.published if m.get("event_type") == "start"]
    assert len(starts) == 6
    assert {topic for topic, _, _ in fake.published} == {"vigil/gg-cam/alerts", "vigil/gg-cam/telemetry"}
    assert {qos for _, qos, _ in fake.published} in ({"1"}, {"QOS.AT_LEAST_ONCE"}, {"AT_LEAST_ONCE"})


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--greengrass"], "not running as a Greengrass component"),
        (["--state-dir", "/proc/vigil-cannot-be-here"], "--state-dir /proc/vigil-cannot-be-here cannot be created"),
        (["--alerts-out", "/"], "--alerts-out /: cannot open for writing"),
    ],
)
def test_cli_environment_problems_are_clear_errors_not_tracebacks(
    trained_bundle, tmp_path, caplog, monkeypatch, extra, message
):
    monkeypatch.delenv("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT", raising=False)
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "cameras": [
                    {"name": "c", "source": str(CLIP), "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}]}
                ]
            }
        )
    )
    args = ["run", "--config", str(cfg), "--model-dir", str(trained_bundle), "--thing-name", "cam-1"]
    if "--state-dir" not in extra:
        args += ["--state-dir", str(tmp_path / "state")]
    rc = edge_main(args + extra)
    assert rc == 2 and message in caplog.text


def test_sigterm_to_the_component_is_a_stop_not_a_crash_and_the_exit_says_the_replay_did_not_finish(
    trained_bundle, tmp_path
):
    """The nucleus stops a component by sending SIGTERM to its processes (the whole tree,
    workers included); the run must log a stop, not crashes, and exit 1 (not finished)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps({"cameras": [{"name": "lab", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]}]})
    )
    out = tmp_path / "alerts.jsonl"
    cmd = [sys.executable, "-m", "edge_component", "run", "--config", str(cfg), "--model-dir", str(trained_bundle)]
    cmd += ["--thing-name", "cam-1", "--alerts-out", str(out), "--state-dir", str(tmp_path / "state")]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and '"event_type":"start"' in out.read_text()):
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        os.killpg(proc.pid, signal.SIGTERM)  # every process of the component, as the nucleus does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err
    assert "crashed" not in err and "stopped (SIGTERM)" in err, err
    telemetry = [json.loads(line)["message"] for line in out.read_text().splitlines() if "/telemetry" in line]
    final = telemetry[-1]["cameras"]["lab"]
    assert final["state"] == "stopped" and final["crashes"] == 0 and final["frames_in"] > 0


def _gg_config(*cameras, telemetry_every_s=1.0):
    return {
        "accessControl": {"aws.greengrass.ipc.mqttproxy": {}},  # as the nucleus hands it over
        "publisher": "greengrass",
        "telemetry_every_s": telemetry_every_s,
        "cameras": [
            {"name": name, "source": str(source), "mode": "live", "zones": [{"name": "room", "polygon": zone}]}
            for name, source, zone in cameras
        ],
    }


def test_greengrass_configuration_updates_apply_without_a_restart_and_bad_ones_are_refused(
    monkeypatch, tmp_path, caplog, FakeIpcClient, live_clip
):
    """Configuration-only deployments do not restart a component (aws-greengrass-nucleus
    GenericExternalService.java: only lifecycle/setenv/version/runWith changes do); the
    component follows them over IPC:
    https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-component-configuration.html"""
    import os
    import signal
    import threading
    import time

    import edge_component.__main__ as cli

    fake = FakeIpcClient(_gg_config(("cam0", live_clip, WHOLE)))
    monkeypatch.setattr(cli, "_greengrass_client", lambda: fake)
    failures = []

    def latest():
        tele = [m for topic, _, m in fake.published if topic.endswith("/telemetry")]
        return tele[-1]["cameras"] if tele else {}

    def wait(predicate, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.2)
        failures.append(f"timed out waiting for {what}; telemetry {latest()}")
        return False

    def operator():
        try:
            if not wait(lambda: latest().get("cam0", {}).get("state") == "running", "cam0 running"):
                return
            started = latest()["cam0"]["worker_started_at"]
            bad = _gg_config(("cam0", live_clip, WHOLE), ("cam1", live_clip, [[0, 0], [2, 0], [2, 1]]))
            if fake.deploy(bad, deployment_id="d-bad"):
                failures.append("an invalid configuration was not rejected")
            report = fake.reports[-1]
            if (report.status, report.deployment_id) != ("REJECTED", "d-bad") or "outside 0..1" not in report.message:
                failures.append(f"bad report {report.status} {report.deployment_id} {report.message}")
            fake.deploy(bad, local=True)  # a local deployment skips validation: refused on update
            if not wait(lambda: fake.get_calls == 2, "the refused update to be read"):
                return
            good = _gg_config(("cam0", live_clip, WHOLE), ("cam1", live_clip, WHOLE), telemetry_every_s=2.0)
            if not fake.deploy(good, deployment_id="d-good"):
                failures.append(f"a valid configuration was rejected: {fake.reports[-1].message}")
            wait(lambda: latest().get("cam1", {}).get("state") == "running", "cam1 running")
            if latest()["cam0"]["worker_started_at"] != started:
                failures.append("cam0 was restarted although its settings did not change")
            if fake.get_calls != 3:  # two changed keys, one read
                failures.append(f"get_configuration called {fake.get_calls} times")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the nucleus stops the component

    helper = threading.Thread(target=operator, daemon=True)
    helper.start()
    rc = cli.main(
        ["run", "--greengrass", "--thing-name", "gg-cam", "--state-dir", str(tmp_path), "--model-dir", str(SEED)]
    )
    helper.join(timeout=10)
    assert failures == []
    assert rc == 0  # live cameras stopped on request: finished
    assert "configuration of deployment d-bad rejected" in caplog.text
    assert "refused, the old one keeps running" in caplog.text
    assert set(latest()) == {"cam0", "cam1"}
