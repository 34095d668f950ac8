"""Configuration from the Azure IoT Edge module twin, followed while running.

The twin's desired properties (less ``$version`` and every other ``$`` key) are the
component configuration, validated as on Greengrass (``__main__._device_config``:
``parse_config``, the video files, the model bundle). A desired-properties patch is
merged into the last desired document (JSON merge patch, RFC 7396: ``null`` deletes a
key, an object merges, anything else replaces), the result is validated, and a valid one
is applied through ``Supervisor.update_config``; an invalid one is refused and the old
configuration keeps running. The local copy of the document always follows the hub's
(the next patch merges into what the hub holds, valid or not); only the running
configuration waits for a valid one.

Each outcome is reported in the reported properties::

    {"vigil": {"config": {"status": "applied" | "refused", "version": <desired $version>,
                          "message": "<what changed, or why refused>"}}}

"IoT Hub doesn't preserve desired properties update notifications for disconnected
devices. It follows that a device that is connecting must retrieve the full desired
properties document, in addition to subscribing for update notifications", and a
notification whose ``$version`` is at most the full document's may be ignored
(https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins#device-reconnection-flow;
MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-devguide-device-twins.md). So the
follower subscribes before it reads the twin, and reads the whole twin again after every
reconnection (``on_connection_state_change``). The same page: twin values may be arrays
(the cameras, zones and polygons are), keys exclude ``.``, ``$`` and space, a string
holds at most 4 KB, the desired document at most 32 KB, nested at most 10 deep.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .config import ComponentConfig, ConfigError
from .config_updates import check_update

log = logging.getLogger(__name__)
REPORT_MESSAGE_MAX = 1000  # characters of the reported message; pydantic can explain at length


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: ``patch`` applied to ``target`` (neither is modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def without_metadata(doc: Any) -> Any:
    """``doc`` without the twin's own keys (``$version``, ``$metadata``, any ``$...``), at any depth."""
    if isinstance(doc, Mapping):
        return {k: without_metadata(v) for k, v in doc.items() if not str(k).startswith("$")}
    if isinstance(doc, list):
        return [without_metadata(v) for v in doc]
    return doc


class TwinConfigurationFollower:
    """Follows the component configuration in the module twin's desired properties.

    ``client``: an ``azure.iot.device.IoTHubModuleClient`` (or a fake with its methods and
    handler properties). ``validate(raw mapping) -> ComponentConfig`` raises ConfigError
    (or ValueError) naming the problem.

    :meth:`start` installs the handlers, reads the twin and returns its configuration (a
    ConfigError if it is invalid, reported as refused first). :meth:`follow` hands each
    later valid configuration to ``apply`` (a valid patch that arrived in between is
    applied then). Handlers run on the SDK's threads; one lock orders them.
    """

    def __init__(self, client: Any, validate: Callable[[Mapping[str, Any]], ComponentConfig]):
        self._client = client
        self._validate = validate
        self._lock = threading.RLock()
        self._desired: dict[str, Any] = {}  # the hub's desired document, as last known, without "$" keys
        self._version: int | None = None  # its $version
        self._current: ComponentConfig | None = None  # the configuration running (or handed to apply)
        self._apply: Callable[[ComponentConfig], None] | None = None
        self._pending: ComponentConfig | None = None  # valid, arrived before follow()
        self._was_connected = True
        self._closed = False
        self.applied = 0  # configurations accepted after start (patches and re-reads)
        self.refused = 0  # configurations refused, start included
        self.rereads = 0  # whole-twin reads after a reconnection

    def start(self) -> ComponentConfig:
        """Subscribe, then read the whole twin; its configuration, or ConfigError naming the problem
        (an invalid configuration, or the SDK's error if the twin cannot be read)."""
        self._client.on_twin_desired_properties_patch_received = self._on_patch
        self._client.on_connection_state_change = self._on_connection_state_change
        try:
            desired = self._client.get_twin()["desired"]
        except Exception as exc:  # the SDK raises many error types
            raise ConfigError(f"the module twin cannot be read: {type(exc).__name__}: {exc}") from None
        with self._lock:
            self._version = desired.get("$version")
            self._desired = without_metadata(desired)
            check = check_update(self._validate, self._desired)
            if check.config is None:
                self.refused += 1
                self._report("refused", check.message)
                raise ConfigError(f"module twin desired properties (version {self._version}): {check.message}")
            self._current = check.config
            self._report("applied", "initial configuration")
            return check.config

    def follow(self, apply: Callable[[ComponentConfig], None]) -> None:
        """From now on hand each valid new configuration to ``apply``."""
        with self._lock:
            self._apply = apply
            pending, self._pending = self._pending, None
            if pending is not None:
                apply(pending)

    @property
    def version(self) -> int | None:
        """``$version`` of the desired document last seen."""
        return self._version

    def _on_patch(self, patch: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            version = patch.get("$version")
            if version is not None and self._version is not None and version <= self._version:
                log.info("module twin patch version %s ignored: already have version %s", version, self._version)
                return
            self._desired = merge_patch(self._desired, without_metadata(patch))
            self._version = version
            self._evaluate(f"patch (version {version})")

    def _on_connection_state_change(self) -> None:
        connected = bool(self._client.connected)
        with self._lock:
            reconnected = connected and not self._was_connected
            self._was_connected = connected
        if reconnected:
            # Not on the SDK's handler thread: get_twin waits for the hub's answer.
            threading.Thread(target=self.reread, name="vigil-twin-reread", daemon=True).start()

    def reread(self) -> None:
        """Read the whole twin and apply it if the hub has a newer desired document (after a
        reconnection, patches may have been missed)."""
        try:
            desired = self._client.get_twin()["desired"]
        except Exception as exc:  # the SDK raises many error types; the next reconnection reads again
            log.error("module twin not read after reconnecting: %s; the configuration may be behind", exc)
            return
        with self._lock:
            if self._closed:
                return
            self.rereads += 1
            version = desired.get("$version")
            if version is not None and self._version is not None and version <= self._version:
                return
            log.info("module twin: desired version %s after reconnecting (had %s)", version, self._version)
            self._desired, self._version = without_metadata(desired), version
            self._evaluate(f"twin read after reconnecting (version {version})")

    def _evaluate(self, what: str) -> None:
        """Validate the desired document; apply and report it, or refuse and report (lock held)."""
        check = check_update(self._validate, self._desired, self._current)
        if check.config is None:
            self.refused += 1
            log.error(
                "configuration from the module twin %s refused, the old one keeps running: %s", what, check.message
            )
            self._report("refused", check.message)
            return
        log.info("configuration from the module twin %s accepted: %s", what, check.message)
        self.applied += 1
        self._current = check.config
        if self._apply is None:
            self._pending = check.config
        else:
            self._apply(check.config)
        self._report("applied", check.message)

    def _report(self, status: str, message: str) -> None:
        if len(message) > REPORT_MESSAGE_MAX:  # a twin string value holds at most 4 KB (same devguide page)
            message = message[: REPORT_MESSAGE_MAX - 3] + "..."
        report = {"vigil": {"config": {"status": status, "version": self._version, "message": message}}}
        try:
            self._client.patch_twin_reported_properties(report)
        except Exception as exc:  # the SDK raises many error types; the configuration stands either way
            log.error("module twin reported properties not updated (%s %s): %s", status, self._version, exc)

    def close(self) -> None:
        """Stop following (later patches are ignored); the client is closed by its owner."""
        with self._lock:
            self._closed = True
