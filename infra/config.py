"""Typed, validated stage configuration.

``app.py`` reads the ``vigil:stages`` context from ``cdk.json`` once and passes it to
:func:`load_stages`; every construct receives the frozen models below and never reads
context or the environment itself.

Errors name the stage and the dotted key, e.g.::

    stage 'dev': edge.cooldown_s: Input should be greater than or equal to 0 (got -1)

Values are not coerced: a number must be a JSON number and a flag a JSON boolean. The
edge settings take their types and limits from the edge component's own configuration
models, and training hyperparameters are checked against ``training/train.py``'s
arguments, so neither can pass synth and then be refused where it runs.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge_component.config import ComponentConfig, DecisionSettings
from edge_component.contracts.topics import THING_NAME_PATTERN

STAGES_CONTEXT_KEY = "vigil:stages"
REPO_ROOT = Path(__file__).resolve().parent.parent
# The SageMaker entry point; its parse_args() is the list of hyperparameters a stage may set.
TRAIN_SCRIPT = REPO_ROOT / "training" / "train.py"

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

ThingName = Annotated[str, StringConstraints(pattern=THING_NAME_PATTERN.pattern)]
# Deliberately simple: one @, no spaces, a dot in the domain. SNS confirms the address anyway.
# No control characters either (\s covers only the whitespace ones).
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$", max_length=254)
]
# E.164: a plus, a non-zero country digit, at most 15 digits in all.
E164Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
SemVer = Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]


class ConfigError(ValueError):
    """A stage's configuration is invalid; the message names the stage and the key."""


class _Frozen(BaseModel):
    # strict: a number must be a JSON number and a flag a JSON boolean ("14", 14.0 and
    # true are not 14; "false" is not false), so a mistyped value fails naming its key.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _list_field() -> Any:
    """A tuple field that takes cdk.json's lists (strict mode would take only tuples)."""
    return Field(default=(), strict=False)


# Component configuration keys the deployment resets (JSON pointers).
THRESHOLD_POINTER = "/decision/threshold"
LEGACY_THRESHOLD_POINTER = "/threshold"


def _component_field(model: type[BaseModel], name: str) -> Any:
    """The type and limits of the edge component's own setting ``model.<name>``, without
    its default: imported from ``edge_component.config``, so synth and the device
    cannot disagree about what is valid."""
    info = model.model_fields[name]
    return Annotated[(info.annotation, *info.metadata)]


def _no_control_characters(value: str) -> str:
    """Refuse control, format and line/paragraph separator characters (a newline in a
    site name would end an e-mail subject and start another line of the body)."""
    for index, char in enumerate(value):
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            raise ValueError(f"contains a control character (U+{ord(char):04X} at position {index})")
    return value


class EdgeConfig(_Frozen):
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
    def _component_accepts_it(self) -> "EdgeConfig":
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


@lru_cache(maxsize=None)
def train_script_options(script: Path = TRAIN_SCRIPT) -> dict[str, str | None]:
    """The ``--name`` options of ``parse_args()`` in ``training/train.py``, as
    ``{name: type}`` (``"int"``, ``"float"``, another converter's name, or None for a
    plain string), read from the source without importing it (it pulls in NumPy and
    OpenCV, and the parser is local to the function), so the list cannot drift.

    Options whose default comes from the SageMaker environment (``SM_*`` paths and
    channels, ``default=env(...)``) are left out: the job sets those.
    """
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (OSError, SyntaxError) as exc:
        raise ConfigError(f"cannot read the training script's arguments from {script}: {exc}") from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "parse_args"]
    options: dict[str, str | None] = {}
    for call in ast.walk(functions[0]) if functions else ():
        is_add_argument = isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
        if not (is_add_argument and call.func.attr == "add_argument"):
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        default = keywords.get("default")
        if isinstance(default, ast.Call) and isinstance(default.func, ast.Name) and default.func.id == "env":
            continue
        kind = keywords.get("type")
        for arg in call.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
                options[arg.value[2:]] = kind.id if isinstance(kind, ast.Name) else None
    if not options:
        raise ConfigError(f"found no parse_args() options in {script}: cannot check training.hyperparameters")
    return options


def _check_hyperparameter(name: str, value: Any, options: Mapping[str, str | None]) -> str | None:
    """Why ``name: value`` is not a hyperparameter ``train.py`` takes, or None if it is."""
    if name == "epochs":
        return "'epochs' is set by training.epochs"
    if name.startswith("sagemaker_"):
        return f"{name!r} is reserved: set by the infrastructure"
    if name not in options:
        # SageMaker passes each key as --<key>, and train.py ignores arguments it does
        # not know: --learning_rate would silently leave --learning-rate at its default.
        close = difflib.get_close_matches(name.replace("_", "-"), [n for n in options if n != "epochs"], n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(n for n in options if n != "epochs"))
        return f"{name!r} is not an argument of training/train.py{suggestion} (it takes: {known})"
    kind = options[name]
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}: {value!r} is not a finite number"
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{name}: train.py reads an integer, got {value!r}"
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{name}: train.py reads a number, got {value!r}"
    return None


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
    test_channel: bool = Field(
        default=False,
        description="Add channel 'test' (s3://<data>/test/, clips never trained on). Opt-in: a training job "
        "fails to start when a channel's S3 prefix holds no object.",
    )

    @field_validator("max_wait_s")
    @classmethod
    def _wait_covers_runtime(cls, value: int, info: ValidationInfo) -> int:
        runtime = info.data.get("max_runtime_s")
        if info.data.get("use_spot") and runtime is not None and value < runtime:
            raise ValueError(f"must be >= max_runtime_s ({runtime}) for managed spot training")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _train_script_takes_them(cls, value: dict[str, Any]) -> dict[str, Any]:
        options = train_script_options()
        problems = [p for name in value if (p := _check_hyperparameter(name, value[name], options))]
        if problems:
            raise ValueError("; ".join(problems))
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

    @field_validator("maximum_per_minute")
    @classmethod
    def _maximum_not_below_base(cls, value: int, info: ValidationInfo) -> int:
        base = info.data.get("base_rate_per_minute")
        if base is not None and value < base:
            raise ValueError(f"must be >= base_rate_per_minute ({base}): the rollout starts at the base rate")
        return value


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
    site_name: Annotated[str, AfterValidator(_no_control_characters)] = Field(
        min_length=1, max_length=64, description="shown in notification subjects and bodies"
    )
    time_zone: str
    things: tuple[ThingName, ...] = _list_field()
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
    alert_emails: tuple[Email, ...] = _list_field()
    alert_sms: tuple[E164Phone, ...] = _list_field()
    ops_emails: tuple[Email, ...] = _list_field()
    log_retention_days: int
    evidence_retention_days: int = Field(default=30, ge=1, le=MAX_EVIDENCE_RETENTION_DAYS)
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

    # Checks across keys: the message starts with the keys it is about (it has no location).
    @model_validator(mode="after")
    def _someone_is_notified(self) -> "StageConfig":
        if not self.alert_emails and not self.alert_sms:
            raise ValueError("alert_emails, alert_sms: both empty: nobody would ever be notified of an alert; "
                             "list at least one e-mail address or phone number")
        return self

    @model_validator(mode="after")
    def _a_device_can_join(self) -> "StageConfig":
        if not self.things and not self.fleet_provisioning:
            raise ValueError("things, fleet_provisioning: no listed things and fleet provisioning off: no device "
                             "could ever join this stage; list things or set fleet_provisioning to true")
        return self

    @property
    def provisioning_thing_name_prefix(self) -> str:
        """``thing_name_prefix``, or ``vigil-<stage>-`` when it is not set."""
        return self.thing_name_prefix or default_thing_name_prefix(self.name)

    def may_provision(self, thing_name: str) -> bool:
        """Whether this stage's claim certificates could register ``thing_name`` (fleet
        provisioning on, name matching the pattern, not denied)."""
        return (
            self.fleet_provisioning
            and thing_name not in self.denied_thing_names
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
        for thing in stage.things:
            if thing in seen:
                raise ConfigError(f"stage {stage.name!r}: things: {thing!r} is already listed by stage {seen[thing]!r}")
            seen[thing] = stage.name
    for stage in stages.values():
        for thing, owner in seen.items():
            if owner != stage.name and stage.may_provision(thing):
                raise ConfigError(
                    f"stage {stage.name!r}: thing_name_prefix: its claim certificates could register {thing!r}, "
                    f"which stage {owner!r} lists; choose prefixes that do not overlap, or add it to denied_thing_names"
                )
    return stages
