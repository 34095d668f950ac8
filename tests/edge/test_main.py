"""The command line (edge_component/__main__.py): runs on the clip, and fails with a
message naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_component.__main__ import main as edge_main

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"


class FakeIpcClient:
    """Has the methods of GreengrassCoreIPCClientV2 that the component uses."""

    def __init__(self, configuration):
        self.configuration = configuration
        self.published = []

    def get_configuration(self, key_path=None):
        return type("Response", (), {"value": self.configuration})()

    def publish_to_iot_core(self, *, topic_name, qos, payload):
        self.published.append((topic_name, str(qos), json.loads(payload)))

    def close(self):
        pass


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


def test_greengrass_mode_reads_its_configuration_and_publishes_through_ipc(monkeypatch, tmp_path):
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
