"""Typed, validated stage configuration.

``app.py`` reads the ``vigil:stages`` context from ``cdk.json`` once and passes it to
:func:`load_stages`; every construct receives the frozen models below and never reads
context or the environment itself.

Errors name the stage and the dotted key, e.g.::

    stage 'dev': edge.cooldown_s: Input should be greater than or equal to 0 (got -1)
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from edge_component.contracts.topics import THING_NAME_PATTERN

STAGES_CONTEXT_KEY = "vigil:stages"

# Retention periods CloudWatch Logs accepts, in days, and their aws_logs.RetentionDays names.
LOG_RETENTION_NAMES: dict[int, str] = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}

# Stage names end up in resource names (component name, job names): keep them short and plain.
STAGE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,11}$")

ThingName = Annotated[str, StringConstraints(pattern=THING_NAME_PATTERN.pattern)]
# Deliberately simple: one @, no spaces, a dot in the domain. SNS confirms the address anyway.
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s.]+$", max_length=254)]
# E.164: a plus, a non-zero country digit, at most 15 digits in all.
E164Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
SemVer = Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]


class ConfigError(ValueError):
    """A stage's configuration is invalid; the message names the stage and the key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EdgeConfig(_Frozen):
    """What the deployment merges over the recipe's DefaultConfiguration (same key names)."""

    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Score threshold override; None keeps the model bundle's."
    )
    min_consecutive_windows: int = Field(ge=1, le=1000)
    cooldown_s: float = Field(ge=0.0)
    end_after_quiet_s: float = Field(ge=0.0)
    detection_fps: float = Field(gt=0.0, le=60.0)

    def configuration_update(self) -> tuple[dict[str, Any], list[str]]:
        """The Greengrass ``configurationUpdate`` as ``(merge, reset)``.

        ``reset`` holds JSON pointers of keys this stage does not set, so a value left
        over from an earlier deployment (a threshold override) is removed.
        """
        merge: dict[str, Any] = {
            "detection_fps": self.detection_fps,
            "decision": {
                "min_consecutive_windows": self.min_consecutive_windows,
                "end_after_quiet_s": self.end_after_quiet_s,
                "cooldown_s": self.cooldown_s,
            },
        }
        reset: list[str] = []
        if self.threshold is None:
            reset.append("/threshold")
        else:
            merge["threshold"] = self.threshold
        return merge, reset


class AlertsConfig(_Frozen):
    throttle_max_per_window: int = Field(ge=1)
    throttle_window_s: int = Field(ge=1)
    reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Reserved concurrency of the alert Lambda; None leaves it unreserved "
        "(new accounts have too little concurrency to reserve any).",
    )
    powertools_layer_version: int = Field(default=27, ge=1)
    memory_mb: int = Field(default=256, ge=128, le=10240)
    timeout_s: int = Field(default=30, ge=1, le=900)


class TrainingConfig(_Frozen):
    instance_type: str = Field(pattern=r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
    instance_count: int = Field(default=1, ge=1, le=16)
    volume_gb: int = Field(default=30, ge=1, le=16384)
    epochs: int = Field(ge=1)
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    use_spot: bool = True
    max_runtime_s: int = Field(ge=60, le=28 * 24 * 3600)
    max_wait_s: int = Field(ge=60, le=28 * 24 * 3600)
    image_tag: str = Field(default="2.19.0-cpu-py312-ubuntu22.04-sagemaker", min_length=1)

    @field_validator("max_wait_s")
    @classmethod
    def _wait_covers_runtime(cls, value: int, info: ValidationInfo) -> int:
        runtime = info.data.get("max_runtime_s")
        if info.data.get("use_spot") and runtime is not None and value < runtime:
            raise ValueError(f"must be >= max_runtime_s ({runtime}) for managed spot training")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _no_reserved_hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(k for k in value if k.startswith("sagemaker_") or k == "epochs")
        if reserved:
            raise ValueError(f"reserved names {reserved}: set by the infrastructure or by 'epochs'")
        return value


class RolloutConfig(_Frozen):
    """IoT job rollout of the Greengrass deployment to the thing group."""

    base_rate_per_minute: int = Field(ge=1, le=1000)
    increment_factor: float = Field(ge=1.1, le=5.0)
    rate_increase_after_succeeded: int = Field(ge=1)
    maximum_per_minute: int = Field(ge=1, le=1000)
    abort_threshold_percentage: float = Field(gt=0.0, le=100.0)
    abort_min_executed_things: int = Field(ge=1)
    in_progress_timeout_minutes: int = Field(ge=1, le=10080)
    component_update_timeout_s: int = Field(default=60, ge=1)


class GreengrassConfig(_Frozen):
    nucleus_version: SemVer = "2.16.1"
    log_manager_version: SemVer = "2.3.11"
    log_upload_interval_s: int = Field(default=300, ge=60)
    # The system log group name has no stage in it: only one stage per account and
    # region may own it (and set its retention).
    manage_system_log_group: bool = False


class StageConfig(_Frozen):
    """One stage (dev, prod, ...), read from ``cdk.json`` context ``vigil:stages.<name>``."""

    name: str = Field(pattern=STAGE_NAME_PATTERN.pattern)
    account: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    site_name: str = Field(min_length=1, max_length=64)
    time_zone: str
    things: tuple[ThingName, ...] = ()
    fleet_provisioning: bool = True
    alert_emails: tuple[Email, ...] = ()
    alert_sms: tuple[E164Phone, ...] = ()
    ops_emails: tuple[Email, ...] = ()
    log_retention_days: int
    evidence_retention_days: int = Field(default=30, ge=1)
    retain_data: bool = True
    edge: EdgeConfig
    alerts: AlertsConfig
    training: TrainingConfig
    rollout: RolloutConfig
    greengrass: GreengrassConfig = GreengrassConfig()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("things")
    @classmethod
    def _unique_things(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({t for t in value if value.count(t) > 1})
        if duplicates:
            raise ValueError(f"duplicate thing names {duplicates}")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _cloudwatch_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_NAMES:
            raise ValueError(f"{value} is not a CloudWatch Logs retention period: one of {sorted(LOG_RETENTION_NAMES)}")
        return value


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(stage)"


def _describe(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return f"{message} (got {error['input']!r})"


def load_stage(name: str, raw: Any) -> StageConfig:
    """Validate one stage's raw context; raise :class:`ConfigError` naming stage and keys."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"stage {name!r}: must be an object, got {type(raw).__name__}")
    if "name" in raw:
        raise ConfigError(f"stage {name!r}: name: unknown key (the stage name is its key in {STAGES_CONTEXT_KEY})")
    try:
        return StageConfig.model_validate({**raw, "name": name})
    except ValidationError as exc:
        lines = [f"stage {name!r}: {_dotted(tuple(e['loc']))}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_stages(raw: Any) -> dict[str, StageConfig]:
    """All stages from the ``vigil:stages`` context value, in their order in ``cdk.json``.

    Raises :class:`ConfigError` if the context is missing, a stage is invalid, or two
    stages list the same thing (thing names are unique per account and region, and
    stages may share both).
    """
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"cdk.json context {STAGES_CONTEXT_KEY!r} must map stage names to their settings")
    stages = {name: load_stage(name, value) for name, value in raw.items()}
    seen: dict[str, str] = {}
    for stage in stages.values():
        for thing in stage.things:
            if thing in seen:
                raise ConfigError(f"stage {stage.name!r}: things: {thing!r} is already listed by stage {seen[thing]!r}")
            seen[thing] = stage.name
    return stages
