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


def test_a_patch_notified_while_start_reads_the_twin_is_applied(FakeModuleClient):
    """The follower subscribes before it reads the twin (device-reconnection-flow, same
    source); a patch notified between the hub's answer and the follower taking it in is
    newer than the document read and must not be lost."""
    client = FakeModuleClient({"cameras": [_camera("a")]})
    client.connect()
    read = client.get_twin

    def get_twin_then_a_patch():
        doc = read()  # version 1
        client.update_desired({"detection_fps": 2})  # version 2, notified before start() has the document
        return doc

    client.get_twin = get_twin_then_a_patch
    follower = TwinConfigurationFollower(client, parse_config)
    config = follower.start()
    assert config.detection_fps == 2 and follower.version == 2
    assert client.reported_config() == {"status": "applied", "version": 2, "message": "initial configuration"}


def test_a_held_patch_older_than_the_document_read_is_dropped(FakeModuleClient):
    client = FakeModuleClient({"cameras": [_camera("a")], "detection_fps": 3})
    client.connect()
    read = client.get_twin

    def an_old_patch_then_the_twin():
        client._patch_handler({"detection_fps": 1, "$version": 1})  # already in the document (version 1)
        return read()

    client.get_twin = an_old_patch_then_the_twin
    assert TwinConfigurationFollower(client, parse_config).start().detection_fps == 3


def test_a_failed_reread_after_a_reconnection_is_retried_until_it_succeeds(FakeModuleClient):
    """A patch missed while offline is only in the whole twin: a read that fails (here the
    first two) must be tried again, not wait for the next reconnection."""
    from azure.iot.device.exceptions import OperationTimeout

    client, follower, _, applied = _started(FakeModuleClient, {"cameras": [_camera("a")]})
    follower._reread_backoff_s = (0.01, 0.02)
    read, failures = client.get_twin, [OperationTimeout("no answer"), OperationTimeout("no answer")]

    def flaky_get_twin():
        if failures:
            raise failures.pop()
        return read()

    client.get_twin = flaky_get_twin
    client.offline()
    version = client.update_desired({"cameras": [_camera("a"), _camera("b")]})  # not delivered
    client.online()
    assert applied.wait(1)
    assert [c.name for c in applied.configs[0].cameras] == ["a", "b"] and follower.version == version
    assert follower.reread_failures == 2 and follower.rereads == 1
    follower.close()


def test_a_reread_stops_retrying_once_closed(FakeModuleClient):
    client, follower, _, _ = _started(FakeModuleClient, {"cameras": [_camera("a")]})
    follower._reread_backoff_s = (0.01, 0.02)
    client.disconnect()  # every get_twin fails
    done = threading.Thread(target=follower.reread)
    done.start()
    follower.close()
    done.join(30)
    assert not done.is_alive()


def test_settings_that_wait_for_a_restart_are_reported_pending_restart(FakeModuleClient):
    """outbox_max_messages builds the outbox at start (config_updates.COMPONENT_RESTART):
    the patch runs, but says which keys wait for the module's restart; a later patch still
    says so, and putting the key back clears it."""
    client, follower, _, applied = _started(FakeModuleClient, {"cameras": [_camera("a")]})
    client.update_desired({"outbox_max_messages": 5000})
    assert applied.wait(1)
    report = client.reported_config()
    assert report["status"] == "pending_restart" and report["pending_restart"] == ["outbox_max_messages"]
    assert "outbox_max_messages change at the next component restart" in report["message"]
    client.update_desired({"detection_fps": 2})
    assert applied.wait(2) and client.reported_config()["pending_restart"] == ["outbox_max_messages"]
    client.update_desired({"outbox_max_messages": None})  # back to the default it started with
    assert applied.wait(3)
    assert client.reported_config()["status"] == "applied" and "pending_restart" not in client.reported_config()


@pytest.mark.parametrize("odd", ["7", None, 2.5, True])
def test_a_patch_whose_version_is_not_an_integer_is_applied_and_staleness_keeps_the_last_int(FakeModuleClient, odd):
    client, follower, _, applied = _started(FakeModuleClient, {"cameras": [_camera("a")]})
    patch = {"detection_fps": 2} if odd is None else {"detection_fps": 2, "$version": odd}
    follower._on_patch(patch)
    assert applied.wait(1) and applied.configs[0].detection_fps == 2
    assert follower.version == 1  # the last integer version
    assert client.reported_config()["status"] == "applied" and client.reported_config()["version"] == 1
    follower._on_patch({"detection_fps": 3, "$version": 1})  # stale against that
    follower._on_patch({"detection_fps": 4, "$version": 2})
    assert applied.wait(2) and [c.detection_fps for c in applied.configs] == [2, 4]


def test_a_twin_whose_version_is_a_string_starts(FakeModuleClient):
    client = FakeModuleClient({"cameras": [_camera("a")]})
    client.desired["$version"] = "1"
    client.connect()
    follower = TwinConfigurationFollower(client, parse_config)
    assert follower.start().cameras[0].name == "a" and follower.version is None
    follower._on_patch({"detection_fps": 2, "$version": 2})
    assert follower.version == 2


def test_a_handler_error_is_logged_and_reported_and_the_handler_survives(FakeModuleClient, caplog):
    client, follower, _, _ = _started(FakeModuleClient, {"cameras": [_camera("a")]})

    def broken(config):
        raise RuntimeError("apply broke")

    follower.follow(broken)
    follower._on_patch({"detection_fps": 2, "$version": 2})  # returns: nothing escapes to the SDK's thread
    report = client.reported_config()
    assert report["status"] == "error" and "RuntimeError: apply broke" in report["message"]
    assert "could not be handled" in caplog.text and follower.errors == 1
    applied = []
    follower.follow(applied.append)
    follower._on_patch({"detection_fps": 3, "$version": 3})
    assert [c.detection_fps for c in applied] == [3]
