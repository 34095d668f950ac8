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

    {"vigil": {"config": {"status": "applied" | "pending_restart" | "refused" | "error",
                          "version": <desired $version>,
                          "message": "<what changed, or why refused>",
                          "pending_restart": ["<key>", ...]}}}  # only with pending_restart

``pending_restart``: the configuration runs, but the keys listed (config_updates.py
COMPONENT_RESTART: outbox, handover, evidence settings) differ from those the module
started with and take effect only when it restarts. ``error``: a patch could not be
handled at all (a bug; logged with its traceback); the old configuration keeps running.

``$version`` is expected to be an integer. One that is not (a string, or missing) is
"unknown": the document is applied, and staleness checks keep comparing against the last
integer version seen. Patches that arrive while :meth:`start` reads the whole twin are
held and applied afterwards if their ``$version`` is newer than the document read (or
unknown: a merge patch applied twice gives the same document). A whole-twin read after a
reconnection that fails is retried with backoff until it succeeds or the follower closes.

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

from .backoff import Backoff
from .config import ComponentConfig, ConfigError
from .config_updates import check_update, plan_update

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


def known_version(value: Any) -> int | None:
    """A twin ``$version`` as an int, or None if it is missing or not an integer (unknown)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    (or ValueError) naming the problem. ``reread_backoff_s``: (first, longest) wait in
    seconds between attempts to read the twin again after a reconnection.

    :meth:`start` installs the handlers, reads the twin and returns its configuration (a
    ConfigError if it is invalid, reported as refused first). :meth:`follow` hands each
    later valid configuration to ``apply`` (a valid patch that arrived in between is
    applied then). Handlers run on the SDK's threads; one lock orders them; no exception
    leaves a handler (it is logged and reported as ``error``).
    """

    def __init__(
        self,
        client: Any,
        validate: Callable[[Mapping[str, Any]], ComponentConfig],
        *,
        reread_backoff_s: tuple[float, float] = (1.0, 60.0),
    ):
        self._client = client
        self._validate = validate
        self._reread_backoff_s = reread_backoff_s
        self._lock = threading.RLock()
        self._desired: dict[str, Any] = {}  # the hub's desired document, as last known, without "$" keys
        self._version: int | None = None  # the last integer $version seen (staleness checks)
        self._shown_version: Any = None  # the $version of the document last evaluated, as the hub sent it
        self._initial: ComponentConfig | None = None  # the configuration the module started with
        self._current: ComponentConfig | None = None  # the configuration running (or handed to apply)
        self._apply: Callable[[ComponentConfig], None] | None = None
        self._pending: ComponentConfig | None = None  # valid, arrived before follow()
        self._started = False  # the whole twin has been read; until then patches are held in _early
        self._early: list[dict[str, Any]] = []
        self._was_connected = True
        self._rereading = False  # a re-read thread is running
        self._reread_again = False  # a reconnection happened while it ran
        self._closed = threading.Event()
        self.applied = 0  # configurations accepted after start (patches and re-reads)
        self.refused = 0  # configurations refused, start included
        self.rereads = 0  # whole-twin reads after a reconnection
        self.reread_failures = 0  # failed attempts at them (each retried)
        self.errors = 0  # patches that could not be handled (reported as "error")

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
            self._set_document(desired)
            # Patches notified while the twin was being read: newer ones are not in the document.
            early, self._early, self._started = self._early, [], True
            for patch in early:
                self._merge(patch)
            check = check_update(self._validate, self._desired)
            if check.config is None:
                self.refused += 1
                self._report("refused", check.message)
                raise ConfigError(f"module twin desired properties (version {self._shown_version}): {check.message}")
            self._initial = self._current = check.config
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
        """The last integer ``$version`` of the desired document seen."""
        return self._version

    def _set_document(self, desired: Mapping[str, Any]) -> None:
        """Take a whole desired document (lock held)."""
        version = desired.get("$version")
        if known_version(version) is None:
            log.warning(
                "module twin: desired $version %r is not an integer; staleness checks keep %s", version, self._version
            )
        else:
            self._version = known_version(version)
        self._shown_version = version if known_version(version) is not None else self._version
        self._desired = without_metadata(desired)

    def _is_stale(self, version: Any) -> bool:
        known = known_version(version)
        return known is not None and self._version is not None and known <= self._version

    def _merge(self, patch: Mapping[str, Any]) -> bool:
        """Merge a patch into the document unless it is stale; whether it was (lock held)."""
        version = patch.get("$version")
        if self._is_stale(version):
            log.info("module twin patch version %s ignored: already have version %s", version, self._version)
            return False
        if known_version(version) is None:
            log.warning("module twin patch with $version %r (not an integer): applied as unknown", version)
        else:
            self._version = known_version(version)
        self._shown_version = self._version
        self._desired = merge_patch(self._desired, without_metadata(patch))
        return True

    def _on_patch(self, patch: dict[str, Any]) -> None:
        try:
            with self._lock:
                if self._closed.is_set():
                    return
                if not self._started:  # start() is reading the twin: held until it has
                    self._early.append(copy.deepcopy(patch))
                    return
                if self._merge(patch):
                    self._evaluate(f"patch (version {patch.get('$version')!r})")
        except Exception as exc:  # noqa: BLE001 - never kill the SDK's handler thread; the old configuration runs
            self.errors += 1
            log.exception("module twin patch could not be handled; the old configuration keeps running")
            self._report("error", f"the patch could not be handled: {type(exc).__name__}: {exc}")

    def _on_connection_state_change(self) -> None:
        connected = bool(self._client.connected)
        with self._lock:
            reconnected = connected and not self._was_connected
            self._was_connected = connected
            if not reconnected or self._closed.is_set():
                return
            if self._rereading:  # the running re-read reads once more when it is done
                self._reread_again = True
                return
            self._rereading = True
        # Not on the SDK's handler thread: get_twin waits for the hub's answer.
        threading.Thread(target=self._reread_loop, name="vigil-twin-reread", daemon=True).start()

    def _reread_loop(self) -> None:
        while True:
            try:
                self.reread()
            except Exception:  # noqa: BLE001 - a bug must not end re-reading silently
                self.errors += 1
                log.exception("module twin re-read failed; the configuration may be behind")
            with self._lock:
                if not self._reread_again or self._closed.is_set():
                    self._rereading = False
                    return
                self._reread_again = False

    def reread(self) -> None:
        """Read the whole twin and apply it if the hub has a newer desired document (after a
        reconnection, patches may have been missed). A failed read is retried with backoff
        until one succeeds or :meth:`close` is called."""
        backoff = Backoff(*self._reread_backoff_s, jitter_base=0.8, jitter_spread=0.4)
        while True:
            if self._closed.is_set():
                return
            try:
                desired = self._client.get_twin()["desired"]
                break
            except Exception as exc:  # the SDK raises many error types
                self.reread_failures += 1
                wait = backoff.failed()
                log.error("module twin not read after reconnecting: %s; retrying in %.1fs", exc, wait)
                if self._closed.wait(wait):
                    return
        with self._lock:
            if self._closed.is_set():
                return
            self.rereads += 1
            version = desired.get("$version")
            if self._is_stale(version):
                return
            log.info("module twin: desired version %r after reconnecting (had %s)", version, self._version)
            self._set_document(desired)
            self._evaluate(f"twin read after reconnecting (version {version!r})")

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
        if self._apply is None:
            self._pending = check.config
        else:
            self._apply(check.config)
        self.applied += 1
        self._current = check.config
        # Against what the module started with: those keys wait for its restart however many patches pass.
        later = plan_update(self._initial, check.config).needs_component_restart if self._initial else []
        if later:
            self._report("pending_restart", check.message, pending_restart=later)
        else:
            self._report("applied", check.message)

    def _report(self, status: str, message: str, *, pending_restart: list[str] | None = None) -> None:
        if len(message) > REPORT_MESSAGE_MAX:  # a twin string value holds at most 4 KB (same devguide page)
            message = message[: REPORT_MESSAGE_MAX - 3] + "..."
        config: dict[str, Any] = {"status": status, "version": self._shown_version, "message": message}
        # Always sent (null when none): reported properties merge, so a stale list would otherwise stay.
        config["pending_restart"] = pending_restart
        report = {"vigil": {"config": config}}
        try:
            self._client.patch_twin_reported_properties(report)
        except Exception as exc:  # the SDK raises many error types; the configuration stands either way
            log.error("module twin reported properties not updated (%s %s): %s", status, self._version, exc)

    def close(self) -> None:
        """Stop following (later patches are ignored, a re-read stops retrying); the client is
        closed by its owner."""
        with self._lock:
            self._closed.set()
