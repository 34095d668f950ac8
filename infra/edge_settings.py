"""A stage's edge settings (``edge`` in ``cdk.json``) and the Greengrass configuration
update that merges them over the component recipe's ``DefaultConfiguration``.

Types and limits come from the edge component's own configuration models
(``edge_component.config``), so a value cannot pass synth and then be refused on a device.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from edge_component.config import ComponentConfig, DecisionSettings
from infra.config_types import Frozen

# Component configuration keys the deployment resets (JSON pointers).
THRESHOLD_POINTER = "/decision/threshold"
LEGACY_THRESHOLD_POINTER = "/threshold"


def _component_field(model: type[BaseModel], name: str) -> Any:
    """The type and limits of the edge component's own setting ``model.<name>``, without
    its default: imported from ``edge_component.config``, so synth and the device
    cannot disagree about what is valid."""
    info = model.model_fields[name]
    return Annotated[(info.annotation, *info.metadata)]


class EdgeConfig(Frozen):
    """The stage's edge settings, merged over the recipe's DefaultConfiguration.

    Types and limits are the component's own (``edge_component.config``:
    ``DecisionSettings`` for the decision settings, ``ComponentConfig.detection_fps``),
    and the merged decision settings are validated with ``DecisionSettings`` itself, so
    what passes synth is what every device accepts.
    """

    threshold: _component_field(DecisionSettings, "threshold") = Field(
        default=None, description="Score threshold override; None keeps the model bundle's."
    )
    min_consecutive_windows: _component_field(DecisionSettings, "min_consecutive_windows")
    cooldown_s: _component_field(DecisionSettings, "cooldown_s")
    end_after_quiet_s: _component_field(DecisionSettings, "end_after_quiet_s")
    detection_fps: _component_field(ComponentConfig, "detection_fps")

    @model_validator(mode="after")
    def _component_accepts_it(self) -> EdgeConfig:
        # The field types above carry the component's limits; this also runs whatever
        # validators DecisionSettings has or gains.
        merge, _ = self.configuration_update()
        try:
            DecisionSettings.model_validate(merge["decision"])
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"the edge component refuses these settings: {problems}") from None
        return self

    def configuration_update(self) -> tuple[dict[str, Any], list[str]]:
        """The Greengrass ``configurationUpdate`` as ``(merge, reset)``, in the
        component configuration's shape: ``{"detection_fps": .., "decision": {..}}``.

        Greengrass applies ``reset`` (JSON pointers) before ``merge``. ``/decision/threshold``
        is reset when the stage has no override, so one left by an earlier deployment is
        removed. ``/threshold`` is always reset: earlier versions of this app merged the
        override there, a key the component refuses, and a device keeps it until reset.
        """
        decision: dict[str, Any] = {
            "min_consecutive_windows": self.min_consecutive_windows,
            "end_after_quiet_s": self.end_after_quiet_s,
            "cooldown_s": self.cooldown_s,
        }
        reset = [LEGACY_THRESHOLD_POINTER]
        if self.threshold is None:
            reset.append(THRESHOLD_POINTER)
        else:
            decision["threshold"] = self.threshold
        return {"detection_fps": self.detection_fps, "decision": decision}, reset
