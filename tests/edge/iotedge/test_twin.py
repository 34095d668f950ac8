"""Configuration from the module twin (edge_component/twin_updates.py) against the fake
``IoTHubModuleClient``: the same validation as on Greengrass, a patch merged into the
last desired document (RFC 7396 JSON merge patch), an invalid one refused and reported
while the old configuration keeps running, and the whole twin read again after a
reconnection, because "IoT Hub doesn't preserve desired properties update notifications
for disconnected devices" (learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins
#device-reconnection-flow; MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-devguide-device-twins.md).
"""

from __future__ import annotations

import threading

import pytest

from edge_component.config import ConfigError, parse_config
from edge_component.twin_updates import TwinConfigurationFollower, merge_patch, without_metadata

WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]
HALF = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]


def _camera(name: str, polygon=WHOLE) -> dict:
    return {"name": name, "source": f"rtsp://10.0.0.1/{name}", "zones": [{"name": "z", "polygon": polygon}]}


class _Applied:
    def __init__(self):
        self.configs = []
        self._cv = threading.Condition()

    def __call__(self, config):
        with self._cv:
            self.configs.append(config)
            self._cv.notify_all()

    def wait(self, n: int) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: len(self.configs) >= n, 30)


def _started(FakeModuleClient, desired):
    client = FakeModuleClient(desired)
    client.connect()
    follower = TwinConfigurationFollower(client, parse_config)
    config = follower.start()
    applied = _Applied()
    follower.follow(applied)
    return client, follower, config, applied


def test_merge_patch_is_rfc_7396():
    # The examples of RFC 7396 appendix A (https://www.rfc-editor.org/rfc/rfc7396#appendix-A), a few.
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    assert without_metadata({"$version": 3, "a": {"$metadata": {}, "b": [{"$x": 1, "c": 2}]}}) == {
        "a": {"b": [{"c": 2}]}
    }


def test_the_desired_properties_are_the_configuration_and_a_patch_is_applied(FakeModuleClient):
    client, follower, config, applied = _started(
        FakeModuleClient, {"cameras": [_camera("a"), _camera("b")], "telemetry_every_s": 5}
    )
    assert [c.name for c in config.cameras] == ["a", "b"] and config.telemetry_every_s == 5
    assert client.reported_config() == {"status": "applied", "version": 1, "message": "initial configuration"}

    version = client.update_desired({"detection_fps": 2, "telemetry_every_s": None})  # null deletes: the default
    assert applied.wait(1)
    new = applied.configs[0]
    assert (
        new.detection_fps == 2 and new.telemetry_every_s == parse_config({"cameras": [_camera("a")]}).telemetry_every_s
    )
    report = client.reported_config()
    assert (report["status"], report["version"]) == ("applied", version)
    assert "restarted ['a', 'b']" in report["message"]  # plan_update's summary: every worker reads detection_fps
    follower.close()


def test_an_invalid_patch_is_refused_reported_and_the_old_configuration_keeps_running(FakeModuleClient, caplog):
    client, follower, _, applied = _started(FakeModuleClient, {"cameras": [_camera("a")]})
    version = client.update_desired({"detection_fps": 0})
    report = client.reported_config()
    assert (report["status"], report["version"]) == ("refused", version) and "detection_fps" in report["message"]
    assert applied.configs == [] and follower.refused == 1
    assert "refused, the old one keeps running" in caplog.text

    # The next patch merges into the hub's document, the refused value included: still refused.
    client.update_desired({"cameras": [_camera("a", HALF)]})
    assert client.reported_config()["status"] == "refused" and applied.configs == []
    version = client.update_desired({"detection_fps": 2})  # fixes it
    assert applied.wait(1)
    assert applied.configs[0].detection_fps == 2 and applied.configs[0].cameras[0].zones[0].polygon[1] == (0.5, 0)
    assert client.reported_config() | {"message": ""} == {"status": "applied", "version": version, "message": ""}
    follower.close()


def test_an_invalid_twin_at_start_is_refused_and_reported(FakeModuleClient):
    client = FakeModuleClient({"cameras": [_camera("a")], "bogus": 1})
    client.connect()
    with pytest.raises(ConfigError, match="bogus"):
        TwinConfigurationFollower(client, parse_config).start()
    assert client.reported_config()["status"] == "refused" and "bogus" in client.reported_config()["message"]


def test_a_patch_missed_while_disconnected_is_read_after_the_reconnection(FakeModuleClient):
    client, follower, _, applied = _started(FakeModuleClient, {"cameras": [_camera("a")]})
    client.offline()
    version = client.update_desired({"cameras": [_camera("a"), _camera("b")]})  # not delivered
    assert applied.configs == []
    client.online()
    assert applied.wait(1) and client.wait_reports(2)  # the start's report, then this one
    assert [c.name for c in applied.configs[0].cameras] == ["a", "b"]
    assert client.reported_config()["version"] == version and follower.version == version
    assert client.get_twin_calls == 2 and follower.rereads == 1


def test_a_stale_patch_is_ignored(FakeModuleClient):
    """A notification with ``$version`` at most the full document's may be ignored (same source)."""
    client, follower, _, applied = _started(FakeModuleClient, {"cameras": [_camera("a")]})
    client.update_desired({"detection_fps": 2})
    assert applied.wait(1)
    follower._on_patch({"detection_fps": 3, "$version": 2})  # a duplicate of version 2
    assert len(applied.configs) == 1 and applied.configs[0].detection_fps == 2


def test_a_long_refusal_is_cut_to_fit_a_twin_string(FakeModuleClient):
    """A twin string value holds at most 4 KB (iot-hub-devguide-device-twins, "Tags and properties format")."""
    cameras = [{"name": f"c{k}", "source": "x", "zones": [], f"bogus{k}": 1} for k in range(16)]  # 32 errors
    client = FakeModuleClient({"cameras": cameras})
    client.connect()
    with pytest.raises(ConfigError) as refused:
        TwinConfigurationFollower(client, parse_config).start()
    message = client.reported_config()["message"]
    assert len(str(refused.value)) > 1000 and len(message) == 1000 and message.endswith("...")
