"""Configuration updates over IPC (edge_component/config_updates.py), against the fake
IPC client (the SDK's method signatures and model classes)."""

from __future__ import annotations

import threading

from edge_component.config import parse_config
from edge_component.config_updates import ConfigurationFollower, plan_update

WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]
HALF = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]


def _config(zones: dict[str, list], **settings) -> dict:
    cams = [
        {"name": n, "source": f"rtsp://10.0.0.1/{n}", "zones": [{"name": "z", "polygon": p}]} for n, p in zones.items()
    ]
    return {"cameras": cams, **settings}


def test_plan_restarts_only_changed_cameras_and_all_on_a_shared_setting():
    old = parse_config(_config({"a": WHOLE, "b": WHOLE, "c": WHOLE}))
    plan = plan_update(old, parse_config(_config({"a": WHOLE, "b": HALF, "d": WHOLE}, telemetry_every_s=5)))
    assert (plan.stop, plan.start, plan.restart, plan.needs_component_restart) == (["c"], ["d"], ["b"], [])
    plan = plan_update(old, parse_config(_config({"a": WHOLE, "b": WHOLE, "c": WHOLE}, detection_fps=2)))
    assert plan.restart == ["a", "b", "c"]  # every worker reads detection_fps
    plan = plan_update(old, parse_config(_config({"a": WHOLE, "b": WHOLE, "c": WHOLE}, publisher="greengrass")))
    assert plan.restart == [] and plan.needs_component_restart == ["publisher"]


def _follower(fake, applied):
    done = threading.Event()

    def apply(config):
        applied.append(config)
        done.set()

    follower = ConfigurationFollower(fake, parse_config, apply, debounce_s=0.3)
    follower.start()
    return follower, done


def test_one_read_per_deployment_however_many_keys_changed(FakeIpcClient):
    fake = FakeIpcClient(_config({"a": WHOLE}))
    applied = []
    follower, done = _follower(fake, applied)
    assert fake.deploy(_config({"a": HALF, "b": WHOLE}, detection_fps=2, telemetry_every_s=5), deployment_id="d1")
    assert done.wait(10)
    follower.close()
    assert fake.get_calls == 1 and len(applied) == 1  # three changed leaves, debounced into one read
    assert [c.name for c in applied[0].cameras] == ["a", "b"] and applied[0].detection_fps == 2
    assert (fake.reports[-1].status, fake.reports[-1].deployment_id) == ("ACCEPTED", "d1")


def test_an_invalid_configuration_is_rejected_before_it_is_applied(FakeIpcClient, caplog):
    fake = FakeIpcClient(_config({"a": WHOLE}))
    applied = []
    follower, _ = _follower(fake, applied)
    assert not fake.deploy(_config({"a": WHOLE}, detection_fps=0), deployment_id="d2")
    report = fake.reports[-1]
    assert (report.status, report.deployment_id) == ("REJECTED", "d2") and "detection_fps" in report.message
    assert fake.configuration == _config({"a": WHOLE})  # the nucleus kept the old one
    assert fake.deploy(_config({"a": WHOLE}, bogus=1), local=True)  # a local deployment is not validated
    threading.Event().wait(1.0)
    follower.close()
    assert applied == [] and follower.refused == 2
    assert "refused, the old one keeps running" in caplog.text and "bogus" in caplog.text


def test_the_journals_settings_wait_for_a_component_restart_and_restart_no_camera():
    """The handover journal is opened once, at start (edge_component/__main__.py): a change
    to its settings takes effect at the next component restart and is no reason to stop
    a camera."""
    old = parse_config(_config({"a": WHOLE, "b": WHOLE}))
    for key, value in (("handover_replay_s", 0), ("handover_max_messages", 20)):
        plan = plan_update(old, parse_config(_config({"a": WHOLE, "b": WHOLE}, **{key: value})))
        assert (plan.stop, plan.start, plan.restart, plan.needs_component_restart) == ([], [], [], [key])


def test_a_validator_that_raises_anything_rejects_the_deployment_and_the_stream_lives_on(FakeIpcClient, caplog):
    """A bug in validation (here a RuntimeError, as pathlib raises for a symlink loop) is a
    REJECTED report with the reason, not a dead callback thread the nucleus waits out."""
    calls = []

    def validate(raw):
        calls.append(raw)
        if len(calls) == 1:
            raise RuntimeError("Symlink loop from 'model.tflite'")
        return parse_config(raw)

    fake = FakeIpcClient(_config({"a": WHOLE}))
    applied = []
    follower = ConfigurationFollower(fake, validate, applied.append, debounce_s=0.2)
    follower.start()
    assert not fake.deploy(_config({"a": HALF}), deployment_id="d1", timeout_s=5)
    report = fake.reports[-1]
    assert (report.status, report.deployment_id) == ("REJECTED", "d1")
    assert "RuntimeError: Symlink loop from 'model.tflite'" in report.message
    assert fake.deploy(_config({"a": HALF}), deployment_id="d2", timeout_s=5)  # the next deployment is checked
    assert fake.reports[-1].status == "ACCEPTED"
    follower.close()
