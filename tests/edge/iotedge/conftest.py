"""A fake ``azure.iot.device.IoTHubModuleClient`` (``FakeModuleClient``): the methods and
handler properties Vigil uses, with the SDK's signatures (test_fake_client_matches_the_sdk
checks them against the real class), the SDK's own exception classes, and a hub that
keeps the module twin."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from edge_component.twin_updates import merge_patch


class _FakeModuleClient:
    """Sends are recorded as ``(output_name, Message)`` in ``sent``. ``offline()`` makes
    every send raise the SDK's ``NoConnectionError`` (and calls the connection-state
    handler, as the SDK does on a drop) until ``online()``; ``attempts`` counts sends.

    The twin: ``desired`` is the hub's desired document (with ``$version``);
    ``update_desired(patch)`` acts as the hub for a back-end update: merges the patch,
    increments ``$version`` and, while connected, delivers the patch (with ``$version``)
    to the patch handler on its own thread, waiting for it. While offline the patch is
    not delivered: "IoT Hub doesn't preserve desired properties update notifications
    for disconnected devices" (learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins).
    ``reports`` lists each reported-properties patch.
    """

    # Test controls and records: not part of the SDK's surface.
    TEST_ONLY = {
        "TEST_ONLY",
        "offline",
        "online",
        "update_desired",
        "reported_config",
        "wait_attempts",
        "wait_reports",
        "on_send",
    }

    def __init__(self, desired: dict[str, Any] | None = None):
        self.desired = {**copy.deepcopy(desired or {}), "$version": 1}
        self.reported: dict[str, Any] = {"$version": 1}
        self.reports: list[dict[str, Any]] = []
        self.sent: list[tuple[str, Any]] = []
        self.attempts = 0
        self.get_twin_calls = 0
        self.shut_down = False
        self._connected = False
        self._patch_handler = None
        self._state_handler = None
        self._changed = threading.Condition()
        self.on_send: Any = None  # test hook: called with (output_name, message) after each accepted send

    @classmethod
    def create_from_edge_environment(cls, **kwargs):
        return cls()

    def connect(self):
        self._connected = True

    def disconnect(self):
        self._connected = False

    def shutdown(self):
        self._connected = False
        self.shut_down = True

    @property
    def connected(self):
        return self._connected

    def send_message_to_output(self, message, output_name):
        from azure.iot.device.exceptions import ClientError, NoConnectionError

        with self._changed:
            self.attempts += 1
            self._changed.notify_all()
        if self.shut_down:
            raise ClientError("Client has already been shut down")
        if not self._connected:
            raise NoConnectionError("Client is not connected to IoTHub")
        self.sent.append((output_name, message))
        if self.on_send:
            self.on_send(output_name, message)

    def get_twin(self):
        from azure.iot.device.exceptions import NoConnectionError

        if not self._connected:
            raise NoConnectionError("Client is not connected to IoTHub")
        self.get_twin_calls += 1
        return {"desired": copy.deepcopy(self.desired), "reported": copy.deepcopy(self.reported)}

    def patch_twin_reported_properties(self, reported_properties_patch):
        with self._changed:
            self.reports.append(copy.deepcopy(reported_properties_patch))
            version = self.reported["$version"] + 1
            self.reported = {**merge_patch(self.reported, reported_properties_patch), "$version": version}
            self._changed.notify_all()

    @property
    def on_twin_desired_properties_patch_received(self):
        return self._patch_handler

    @on_twin_desired_properties_patch_received.setter
    def on_twin_desired_properties_patch_received(self, value):
        self._patch_handler = value

    @property
    def on_connection_state_change(self):
        return self._state_handler

    @on_connection_state_change.setter
    def on_connection_state_change(self, value):
        self._state_handler = value

    # --- test controls ---

    def offline(self):
        self._connected = False
        if self._state_handler:
            self._state_handler()

    def online(self):
        self._connected = True
        if self._state_handler:
            self._state_handler()

    def update_desired(self, patch: dict[str, Any]) -> int:
        """The back end patches the desired properties; returns the new ``$version``."""
        version = self.desired["$version"] + 1
        self.desired = {**merge_patch(self.desired, patch), "$version": version}
        if self._connected and self._patch_handler:
            t = threading.Thread(target=self._patch_handler, args=({**copy.deepcopy(patch), "$version": version},))
            t.start()
            t.join(30)
        return version

    def reported_config(self) -> dict[str, Any]:
        return self.reported["vigil"]["config"]

    def wait_reports(self, n: int, timeout_s: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.reports) >= n, timeout_s)

    def wait_attempts(self, n: int, timeout_s: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.attempts >= n, timeout_s)


@pytest.fixture
def FakeModuleClient():
    """The fake IoTHubModuleClient class (see ``_FakeModuleClient``)."""
    return _FakeModuleClient


def _make_alerts(events: int, thing_name: str = "edge-cam") -> list[dict]:
    """``events`` events of start, update, end: 3 * events schema-valid alerts, in order."""
    from tests.edge.delivery.conftest import _make_alerts as make_alerts

    return make_alerts(events, thing_name)


@pytest.fixture
def make_alerts():
    """``make_alerts(events, thing_name="edge-cam")``: 3 * events schema-valid alerts, in order."""
    return _make_alerts
