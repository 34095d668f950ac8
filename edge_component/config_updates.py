"""Configuration updates while running: a configuration-only deployment does not
restart the component (the nucleus restarts it only for changes under lifecycle,
setenv, version or runWith: aws-greengrass-nucleus GenericExternalService.java), so the
component follows its configuration over IPC and applies it itself.

Two streams (``GreengrassCoreIPCClientV2``, awsiotsdk):

- ``subscribe_to_validate_configuration_updates``: the nucleus sends the whole new
  configuration before a cloud deployment applies it; a REJECTED report with
  ``send_configuration_validity_report`` fails that deployment (it then rolls back) and
  the old configuration stays. "Local deployments don't notify components".
  https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-component-configuration.html
- ``subscribe_to_configuration_update``: one event per changed leaf, naming its key
  path and no value; the events of one deployment are debounced into one
  ``get_configuration(key_path=[])``. A configuration that is invalid anyway (a local
  deployment) is refused with a log line, and the old one keeps running.

:func:`plan_update` says which cameras a new configuration stops, starts and restarts;
:func:`check_update` validates one and says what it changes (also used by the Azure IoT
Edge module twin follower, edge_component/twin_updates.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import ComponentConfig, ConfigError

log = logging.getLogger(__name__)
# Settings the running component cannot change without a restart (they build the publisher, outbox,
# handover journal and evidence uploader; evidence turned off takes effect at once: runtime.Supervisor).
COMPONENT_RESTART = (
    "publisher",
    "mqtt",
    "outbox_max_messages",
    "handover_replay_s",
    "handover_max_messages",
    "evidence",
)
# Settings every worker reads; a change restarts every camera.
SUPERVISOR_ONLY = ("cameras", "telemetry_every_s", *COMPONENT_RESTART)


@dataclass(frozen=True)
class UpdatePlan:
    stop: list[str]  # cameras the new configuration removes
    start: list[str]  # cameras it adds
    restart: list[str]  # cameras whose settings (or the shared analysis settings) changed
    needs_component_restart: list[str]  # keys that take effect only when the component restarts

    def summary(self) -> str:
        """One line for a log or a report, e.g. ``"started [d], restarted [b], stopped [c]"``."""
        text = f"started {self.start}, restarted {self.restart}, stopped {self.stop}"
        if self.needs_component_restart:
            text += f"; {', '.join(self.needs_component_restart)} change at the next component restart"
        return text


@dataclass(frozen=True)
class UpdateCheck:
    config: ComponentConfig | None  # None: refused
    message: str  # why it was refused, or what it changes


def check_update(
    validate: Callable[[Mapping[str, Any]], ComponentConfig],
    raw: Mapping[str, Any],
    current: ComponentConfig | None = None,
) -> UpdateCheck:
    """Validate ``raw`` with ``validate`` (which raises ConfigError or ValueError naming the
    problem): a refusal carries that message; an accepted configuration carries what it
    changes against ``current`` (``"valid"`` without one)."""
    try:
        config = validate(raw)
    except (ConfigError, ValueError) as exc:
        return UpdateCheck(None, str(exc))
    except Exception as exc:  # noqa: BLE001 - a validator bug refuses the update (and answers the nucleus), never kills the stream
        log.exception("configuration could not be checked")
        return UpdateCheck(None, f"the configuration could not be checked: {type(exc).__name__}: {exc}")
    return UpdateCheck(config, plan_update(current, config).summary() if current is not None else "valid")


def plan_update(old: ComponentConfig, new: ComponentConfig) -> UpdatePlan:
    """Which cameras ``new`` stops, starts and restarts; the rest keep running."""
    shared_changed = old.model_dump(exclude=set(SUPERVISOR_ONLY)) != new.model_dump(exclude=set(SUPERVISOR_ONLY))
    before = {c.name: c for c in old.cameras}
    after = {c.name: c for c in new.cameras}
    return UpdatePlan(
        stop=[n for n in before if n not in after],
        start=[n for n in after if n not in before],
        restart=[n for n in after if n in before and (shared_changed or before[n] != after[n])],
        needs_component_restart=[k for k in COMPONENT_RESTART if getattr(old, k) != getattr(new, k)],
    )


class ConfigurationFollower:
    """Follows the component's configuration over Greengrass IPC.

    ``client``: a ``GreengrassCoreIPCClientV2`` (or a fake with the same methods).
    ``validate(raw mapping) -> ComponentConfig`` raises ConfigError (or ValueError) naming
    the problem; any other exception (a bug, a model file that cannot be loaded) also
    rejects the configuration, with its type and message, and never ends the stream.
    ``apply(config)`` is called with each valid new configuration, on the SDK's callback
    thread or the debounce timer's. ``debounce_s``: how long after the
    last update event the configuration is read.
    """

    def __init__(
        self,
        client: Any,
        validate: Callable[[Mapping[str, Any]], ComponentConfig],
        apply: Callable[[ComponentConfig], None],
        *,
        debounce_s: float = 1.0,
    ):
        self._client = client
        self._validate = validate
        self._apply = apply
        self.debounce_s = debounce_s
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._changed: set[tuple[str, ...]] = set()
        self._operations: list[Any] = []
        self.applied = 0  # configurations handed to ``apply``
        self.refused = 0  # configurations refused (validation stream or update)

    def start(self) -> None:
        """Subscribe to both streams (raises what the SDK raises if the nucleus refuses)."""
        _, op = self._client.subscribe_to_validate_configuration_updates(
            on_stream_event=self._on_validate, on_stream_error=self._on_error
        )
        self._operations.append(op)
        _, op = self._client.subscribe_to_configuration_update(
            key_path=[], on_stream_event=self._on_update, on_stream_error=self._on_error
        )
        self._operations.append(op)

    def _on_error(self, error: Exception) -> bool:
        log.error("configuration stream error: %s", error)
        return False  # keep the stream open

    def _on_validate(self, event: Any) -> None:
        update = event.validate_configuration_update_event
        check = check_update(self._validate, update.configuration or {})
        status, message = ("ACCEPTED" if check.config is not None else "REJECTED"), check.message
        if check.config is None:
            self.refused += 1
            log.error("configuration of deployment %s rejected: %s", update.deployment_id, message)
        from awsiot.greengrasscoreipc.model import ConfigurationValidityReport

        report = ConfigurationValidityReport(status=status, deployment_id=update.deployment_id, message=message)
        try:
            self._client.send_configuration_validity_report(configuration_validity_report=report)
        except Exception as exc:  # the SDK raises many error types; the nucleus then waits out its timeout
            log.error("configuration validity report for deployment %s not sent: %s", update.deployment_id, exc)

    def _on_update(self, event: Any) -> None:
        update = event.configuration_update_event
        with self._lock:
            self._changed.add(tuple(update.key_path or ()))
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce_s, self._read_and_apply)
            self._timer.daemon = True
            self._timer.start()

    def _read_and_apply(self) -> None:
        with self._lock:
            changed, self._changed, self._timer = sorted(self._changed), set(), None
        keys = ", ".join(".".join(k) or "(all)" for k in changed)
        try:
            raw = self._client.get_configuration(key_path=[]).value or {}
        except Exception as exc:  # the SDK raises many error types
            log.error("configuration changed (%s) but could not be read: %s; the old one keeps running", keys, exc)
            return
        check = check_update(self._validate, raw)
        if check.config is None:
            self.refused += 1
            log.error("configuration update (%s) refused, the old one keeps running: %s", keys, check.message)
            return
        log.info("configuration update (%s) accepted", keys)
        self.applied += 1
        self._apply(check.config)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        for op in self._operations:
            try:
                op.close()
            except Exception:  # noqa: BLE001, S110 - closing at shutdown: nothing left to do with an error
                pass
