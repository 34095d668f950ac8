"""Typed, validated stage configuration.

``app.py`` reads the ``vigil:stages`` context from ``cdk.json`` once and passes it to
:func:`load_stages`; every construct receives the frozen models below and never reads
context or the environment itself.

Errors name the stage and the dotted key, e.g.::

    stage 'dev': edge.cooldown_s: Input should be greater than or equal to 0 (got -1)

Values are not coerced: a number must be a JSON number and a flag a JSON boolean. The
edge settings (:mod:`infra.edge_settings`) take their types and limits from the edge
component's own configuration models, and training hyperparameters
(:mod:`infra.training_config`) are checked against :mod:`training.hyperparameters`, the
definition ``training/train.py``'s parser is built from, so neither can pass synth and
then be refused where it runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from infra.config_types import E164Phone, Email, Frozen, SemVer, ThingName, list_field, no_control_characters
from infra.edge_settings import EdgeConfig
from infra.health_config import HealthConfig
from infra.training_config import TrainingConfig

STAGES_CONTEXT_KEY = "vigil:stages"

# Retention periods CloudWatch Logs accepts, in days, and their aws_logs.RetentionDays names.
LOG_RETENTION_NAMES: dict[int, str] = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}

# Stage names end up in resource names (component name, job names): keep them short and plain.
STAGE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,11}$")

# What a device joining by claim may append to its stage's thing name prefix. With a
# prefix of at most 64 characters the whole name stays within IoT's 128.
PROVISIONED_THING_SUFFIX = "[a-z0-9-]{1,64}"
# Thing-name characters, at most 64 of them.
THING_NAME_PREFIX_PATTERN = re.compile(r"^[a-zA-Z0-9:_-]{1,64}$")
# Upper bound of evidence_retention_days: ten years. S3 takes far larger values, so a
# typo (1e9) would otherwise keep snapshots of people forever.
MAX_EVIDENCE_RETENTION_DAYS = 3650


def default_thing_name_prefix(stage_name: str) -> str:
    """``vigil-<stage>-``: the thing names a stage's claim certificates may register."""
    return f"vigil-{stage_name}-"


def provisioned_thing_pattern(prefix: str) -> str:
    """The regular expression (for ``re.fullmatch``) a thing name joining by claim must match:
    the literal ``prefix`` and 1-64 of ``[a-z0-9-]``."""
    return re.escape(prefix) + PROVISIONED_THING_SUFFIX


@dataclass(frozen=True)
class StageThings:
    """The things that belong to a stage: every name starting with ``prefix`` (its claim
    certificates' namespace, when fleet provisioning is on) and the listed ``names`` the
    prefix does not cover. What the stage's device policy, topic rule and alert Lambda
    accept, so that stages sharing an account never see each other's cameras."""

    prefix: str | None
    names: tuple[str, ...]

    @classmethod
    def of(cls, things: tuple[str, ...], prefix: str | None) -> StageThings:
        return cls(prefix, tuple(t for t in things if prefix is None or not t.startswith(prefix)))

    def covers(self, thing_name: str) -> bool:
        return thing_name in self.names or (self.prefix is not None and thing_name.startswith(self.prefix))


class ConfigError(ValueError):
    """A stage's configuration is invalid; the message names the stage and the key."""


class AlertsConfig(Frozen):
    throttle_max_per_window: int = Field(ge=1)
    throttle_window_s: int = Field(ge=1)
    reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Reserved concurrency of the alert Lambda; None (the default) leaves it unreserved. "
        "Lambda refuses a reservation that leaves less than the account's minimum unreserved (100 by its "
        "documentation; a new account's limit of 10 allows none): set it only once "
        "`aws lambda get-account-settings` shows UnreservedConcurrentExecutions >= 100 + N.",
    )
    max_event_age_s: int = Field(
        default=900,
        ge=60,
        le=21600,
        description="How long Lambda keeps retrying an alert (IoT invokes asynchronously) before it goes to "
        "the dead-letter queue; bounds from API_FunctionEventInvokeConfig. Default 15 min: a later "
        "notification is of no use to anyone.",
    )
    powertools_layer_version: int = Field(default=27, ge=1)
    feedback_link_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="How long the 'false alarm' / 'correct' links in a notification work (days).",
    )
    memory_mb: int = Field(default=256, ge=128, le=10240)
    timeout_s: int = Field(default=30, ge=1, le=900)


class RolloutConfig(Frozen):
    """IoT job rollout of the Greengrass deployment to the thing group."""

    base_rate_per_minute: int = Field(ge=1, le=1000)
    increment_factor: float = Field(ge=1.1, le=5.0)
    rate_increase_after_succeeded: int = Field(ge=1)
    maximum_per_minute: int = Field(ge=1, le=1000)
    abort_threshold_percentage: float = Field(gt=0.0, le=100.0)
    abort_min_executed_things: int = Field(ge=1)
    in_progress_timeout_minutes: int = Field(ge=1, le=10080)
    component_update_timeout_s: int = Field(default=60, ge=1)

    @field_validator("maximum_per_minute")
    @classmethod
    def _maximum_not_below_base(cls, value: int, info: ValidationInfo) -> int:
        base = info.data.get("base_rate_per_minute")
        if base is not None and value < base:
            raise ValueError(f"must be >= base_rate_per_minute ({base}): the rollout starts at the base rate")
        return value


class GreengrassConfig(Frozen):
    nucleus_version: SemVer = "2.16.1"
    log_manager_version: SemVer = "2.3.11"
    log_upload_interval_s: int = Field(default=300, ge=60)
    # The system log group name has no stage in it: only one stage per account and
    # region may own it (and set its retention).
    manage_system_log_group: bool = False


class EvidenceConfig(Frozen):
    """Snapshot uploads to the evidence bucket (issue 14). Off by default: a snapshot is a
    picture of whoever the camera saw, personal data that should leave the device only
    where the stage chooses so."""

    upload_snapshots: bool = Field(
        default=False,
        description="Devices upload each event's snapshot to snapshots/<thing>/<event_id>/ with the token "
        "exchange role's credentials, and the alert e-mail links it. On: the component configuration gets "
        "evidence.upload_snapshots and evidence.bucket, the recipe a dependency on the token exchange "
        "service, the role s3:PutObject on its own prefix. Off: none of them.",
    )


class ModelLoopConfig(Frozen):
    """The model loop after training (infra/model_loop.py): approval and the canary."""

    approval: Literal["auto", "manual"] = Field(
        default="manual",
        description="auto: registered as Approved (dev); manual: PendingManualApproval, the run waits for a "
        "person to approve it in the model registry (prod).",
    )
    approval_timeout_hours: int = Field(default=168, ge=1, le=8760)  # a Standard execution lasts <= 1 year
    canary_things: tuple[ThingName, ...] = Field(
        strict=False,
        min_length=1,
        description="Things of the canary thing group (never also in the stage's things: a device in both "
        "groups gets two pinned model versions and its deployment fails).",
    )
    canary_watch_minutes: int = Field(default=30, ge=1, le=1440)
    canary_poll_interval_s: int = Field(default=300, ge=30, le=3600)
    delay_tolerance_s: float = Field(default=0.5, ge=0.0, le=60.0)

    @field_validator("canary_things")
    @classmethod
    def _unique_canaries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({t for t in value if value.count(t) > 1})
        if duplicates:
            raise ValueError(f"duplicate thing names {duplicates}")
        return value

    @model_validator(mode="after")
    def _poll_within_watch(self) -> ModelLoopConfig:
        if self.canary_poll_interval_s > self.canary_watch_minutes * 60:
            raise ValueError(
                "canary_poll_interval_s, canary_watch_minutes: the poll interval is longer than the watch: "
                "the canary would be judged only once, after the watch"
            )
        return self

    @property
    def max_canary_polls(self) -> int:
        """How many checks the loop makes at most: one per interval over the watch, plus two
        (the check says WAITING until the watch has passed, then HEALTHY or FAILED)."""
        return -(-self.canary_watch_minutes * 60 // self.canary_poll_interval_s) + 2


class StageConfig(Frozen):
    """One stage (dev, prod, ...), read from ``cdk.json`` context ``vigil:stages.<name>``."""

    name: str = Field(pattern=STAGE_NAME_PATTERN.pattern)
    account: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    site_name: Annotated[str, AfterValidator(no_control_characters)] = Field(
        min_length=1, max_length=64, description="shown in notification subjects and bodies"
    )
    time_zone: str
    things: tuple[ThingName, ...] = list_field()
    fleet_provisioning: bool = True
    thing_name_prefix: str | None = Field(
        default=None,
        pattern=THING_NAME_PREFIX_PATTERN.pattern,
        description="Devices joining by claim must be named <prefix>[a-z0-9-]{1,64}; None: vigil-<stage>-.",
    )
    denied_thing_names: tuple[ThingName, ...] = Field(
        default=(),
        strict=False,
        description="Thing names a claim certificate may never register (e.g. a retired or stolen camera's).",
    )
    alert_emails: tuple[Email, ...] = list_field()
    alert_sms: tuple[E164Phone, ...] = list_field()
    ops_emails: tuple[Email, ...] = list_field()
    log_retention_days: int
    evidence_retention_days: int = Field(default=30, ge=1, le=MAX_EVIDENCE_RETENTION_DAYS)
    evidence: EvidenceConfig = EvidenceConfig()
    retain_data: bool = True
    edge: EdgeConfig
    alerts: AlertsConfig
    training: TrainingConfig
    rollout: RolloutConfig
    greengrass: GreengrassConfig = GreengrassConfig()
    health: HealthConfig = HealthConfig()
    model_loop: ModelLoopConfig

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

    # Checks across keys: the message starts with the keys it is about (it has no location).
    @model_validator(mode="after")
    def _someone_is_notified(self) -> StageConfig:
        if not self.alert_emails and not self.alert_sms:
            raise ValueError(
                "alert_emails, alert_sms: both empty: nobody would ever be notified of an alert; "
                "list at least one e-mail address or phone number"
            )
        return self

    @model_validator(mode="after")
    def _a_device_can_join(self) -> StageConfig:
        if not self.things and not self.fleet_provisioning:
            raise ValueError(
                "things, fleet_provisioning: no listed things and fleet provisioning off: no device "
                "could ever join this stage; list things or set fleet_provisioning to true"
            )
        return self

    @model_validator(mode="after")
    def _canaries_outside_the_stage_group(self) -> StageConfig:
        listed = sorted(set(self.model_loop.canary_things) & set(self.things))
        if listed:
            raise ValueError(
                f"model_loop.canary_things, things: {listed} in both: a canary must be in the canary thing group "
                "only (a device in both groups gets two pinned model versions and its deployment fails)"
            )
        return self

    @property
    def provisioning_thing_name_prefix(self) -> str:
        """``thing_name_prefix``, or ``vigil-<stage>-`` when it is not set."""
        return self.thing_name_prefix or default_thing_name_prefix(self.name)

    @property
    def stage_things(self) -> StageThings:
        """The stage's things: the listed ones, the canaries and, with fleet provisioning, ``<prefix>*``."""
        return StageThings.of(
            (*self.things, *self.model_loop.canary_things),
            self.provisioning_thing_name_prefix if self.fleet_provisioning else None,
        )

    def may_provision(self, thing_name: str) -> bool:
        """Whether this stage's claim certificates could register ``thing_name`` (fleet
        provisioning on, name matching the pattern, not denied)."""
        return (
            self.fleet_provisioning
            and thing_name not in self.denied_thing_names
            and thing_name not in self.model_loop.canary_things
            and re.fullmatch(provisioned_thing_pattern(self.provisioning_thing_name_prefix), thing_name) is not None
        )


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
    if not error["loc"]:
        return message  # a check across keys: it names them, and its input is the whole stage
    return f"{message} (got {error['input']!r})"


def _line(stage: str, error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    return f"stage {stage!r}: {_dotted(loc)}: {_describe(error)}" if loc else f"stage {stage!r}: {_describe(error)}"


def load_stage(name: str, raw: Any) -> StageConfig:
    """Validate one stage's raw context; raise :class:`ConfigError` naming stage and keys."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"stage {name!r}: must be an object, got {type(raw).__name__}")
    if "name" in raw:
        raise ConfigError(f"stage {name!r}: name: unknown key (the stage name is its key in {STAGES_CONTEXT_KEY})")
    try:
        return StageConfig.model_validate({**raw, "name": name})
    except ValidationError as exc:
        lines = [_line(name, e) for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_stages(raw: Any) -> dict[str, StageConfig]:
    """All stages from the ``vigil:stages`` context value, in their order in ``cdk.json``.

    Raises :class:`ConfigError` if the context is missing, a stage is invalid, two
    stages list the same thing (thing names are unique per account and region, and
    stages may share both), or a stage's claim certificates could register a thing
    another stage lists (the claim would take that camera over).
    """
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"cdk.json context {STAGES_CONTEXT_KEY!r} must map stage names to their settings")
    stages = {name: load_stage(name, value) for name, value in raw.items()}
    seen: dict[str, str] = {}
    for stage in stages.values():
        for thing in (*stage.things, *stage.model_loop.canary_things):
            if thing in seen:
                raise ConfigError(f"stage {stage.name!r}: things: {thing!r} is already listed by stage {seen[thing]!r}")
            seen[thing] = stage.name
    for stage in stages.values():
        # Listed things only: another stage's canaries fall under the prefix check below.
        for thing, owner in seen.items():
            if owner != stage.name and thing in stages[owner].things and stage.may_provision(thing):
                raise ConfigError(
                    f"stage {stage.name!r}: thing_name_prefix: its claim certificates could register {thing!r}, "
                    f"which stage {owner!r} lists; choose prefixes that do not overlap, or add it to denied_thing_names"
                )
    # Each stage's rule and device policy select <prefix>*: no other stage's thing may fall in it.
    for stage in stages.values():
        prefix = stage.stage_things.prefix
        for other in stages.values():
            if prefix is None or other is stage:
                continue
            theirs = [other.stage_things.prefix or "", *other.things, *other.model_loop.canary_things]
            overlap = [t for t in theirs if t.startswith(prefix)]
            if overlap:
                raise ConfigError(
                    f"stage {stage.name!r}: thing_name_prefix: {prefix!r} overlaps stage {other.name!r}'s things "
                    f"{sorted(set(overlap))}: its topic rule and device policy would take their alerts; "
                    "choose prefixes neither of which starts with the other"
                )
    return stages
