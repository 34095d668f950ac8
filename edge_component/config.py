"""Component configuration: the recipe's ``DefaultConfiguration`` merged with the
deployment's ``configurationUpdate``, validated before the first frame.

Every model is ``extra="forbid"`` and frozen, so a misspelt key is an error that names
the key (``cameras.0.zones.0.polygon: ...``) rather than a silently ignored setting.
Coordinates of zones and masks are normalised to the frame (0..1, origin top-left),
so one configuration fits any camera resolution.

Like Frigate's ``frigate/config/``, these models import nothing from the code that
uses them: capture, analysis and events import the config, never the reverse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .events.schedule import ArmedSchedule
from .objects.settings import RegionSettings, TrackingSettings, ZoneObjects

Point = Annotated[tuple[float, float], Field(description="(x, y), each 0..1 of frame width/height")]
Name = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")]


# "scheme://" then the userinfo up to the last "@" before the path: RFC 3986 section 3.2.1
# ("user:password" there is deprecated and must not be rendered in clear text).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*(?:@[^/\s@]*)*@")


def redact_source(text: str) -> str:
    """``text`` (a camera source, or a message naming one) with every URL's userinfo shown
    as ``***``: ``rtsp://user:pass@host/x`` -> ``rtsp://***@host/x``. For what is logged or
    reported (telemetry, twin reports); the configuration itself keeps the credentials."""
    return _USERINFO.sub(r"\1***@", text)


def is_live(source: str) -> bool:
    """True for cameras and network streams; False for files (replayed in order)."""
    return source.isdigit() or "://" in source


class ConfigError(ValueError):
    """The component configuration is invalid; the message names every bad key."""


class _Model(BaseModel):
    # allow_inf_nan=False: a NaN or inf (YAML .nan, .inf) is "not a finite number", not "should be <= max".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        # YAML reads yes/no/on/off as booleans, and pydantic would take True as 1.0.
        if isinstance(data, Mapping):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, bool) and field.annotation in (int, float, int | None, float | None):
                    raise ValueError(f"{name}: expected a number, got {str(value).lower()}")
        return data


class Polygon(_Model):
    name: Name
    polygon: list[Point] = Field(min_length=3, max_length=64)

    @field_validator("polygon")
    @classmethod
    def _inside_unit_square(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for x, y in pts:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point ({x}, {y}) is outside 0..1; zone coordinates are fractions of the frame")
        return pts


class Zone(Polygon, ZoneObjects):
    """A zone: its polygon and what counts in it (:class:`~.objects.settings.ZoneObjects`:
    ``objects``, default ``[person]``; per-label ``filters`` of ``min_score`` and
    ``threshold``; object ``masks``; or ``motion_only: true`` for events from motion and
    the trained model alone)."""


class ObjectDetectionSettings(_Model):
    """The detection stage of every camera: regions around motion, tracks, and the gate
    by which the trained model decides which frames are worth the detector."""

    regions: RegionSettings = Field(default_factory=RegionSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    gate_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the detector looks at a zone's motion only in windows the trained model scores at least "
        "this; default the decision threshold (0: whenever there is motion); tracked objects are always looked at",
    )


class MotionSettings(_Model):
    """Background model. Units: pixels of the analysis frame, per-analysis rates."""

    analysis_width: int = Field(
        320, ge=64, le=1920, description="frames are resized to this width (px) before analysis"
    )
    blur_kernel: int = Field(5, ge=1, le=31)
    diff_threshold: int = Field(25, ge=1, le=255, description="grey-level difference (0..255) that counts as change")
    background_alpha: float = Field(
        0.05, gt=0, le=1, description="learning rate of the background where the scene is still"
    )
    foreground_alpha: float = Field(
        0.001, ge=0, le=1, description="learning rate under foreground: how fast a parked object is absorbed"
    )
    min_blob_fraction: float = Field(
        0.0005, ge=0, le=1, description="blobs smaller than this fraction of the zone are noise"
    )
    recalibrate_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a change over more than this fraction of the whole frame that matching brightness and contrast"
        " explains (lights, IR switch) resets the background",
    )
    scene_change_s: float = Field(
        10.0, gt=0, le=3600, description="most of the frame different for this long (camera moved): learn the new scene"
    )


class CameraConfig(_Model):
    name: Name
    source: str = Field(min_length=1, description="file path, rtsp:// or http(s):// URL, or a camera index such as '0'")
    zones: list[Zone] = Field(min_length=1)
    masks: list[Polygon] = Field(default_factory=list, description="areas ignored for motion (trees, clocks, road)")
    privacy_masks: list[Polygon] = Field(
        default_factory=list,
        max_length=32,
        description="areas blacked out on every snapshot before it is written or uploaded (neighbours' windows)",
    )
    armed: ArmedSchedule | None = Field(None, description="when this camera raises alerts; absent: always")
    mode: Literal["auto", "live", "replay"] = Field(
        "auto", description="auto: live for cameras and URLs, replay (every frame, in order) for files"
    )
    read_timeout_s: float = Field(
        10.0, gt=0, le=600, description="live: no frame for this long means the stream stalled"
    )
    backoff_max_s: float = Field(60.0, ge=0.1, le=3600, description="live: longest wait between reconnect attempts")

    @model_validator(mode="after")
    def _unique_zone_names(self) -> CameraConfig:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError(f"zone names must be unique per camera, got {names}")
        return self

    @model_validator(mode="after")
    def _replay_takes_files(self) -> CameraConfig:
        if self.mode == "replay" and is_live(self.source):
            raise ValueError(
                f"mode 'replay' reads files; {redact_source(self.source)!r} is a live source"
                " (use mode 'live' or 'auto')"
            )
        return self

    @model_validator(mode="after")
    def _zones_not_masked_out(self) -> CameraConfig:
        from .geometry import polygon_mask  # OpenCV, only for configurations with masks

        if self.masks:
            masked = polygon_mask(self.masks, 320, 180)
            for zone in self.zones:
                if not (polygon_mask([zone], 320, 180) & (1 - masked)).any():
                    raise ValueError(f"zone {zone.name!r} is entirely covered by masks: it could never raise an alert")
        return self


class DecisionSettings(_Model):
    threshold: float | None = Field(None, ge=0, le=1, description="overrides the model bundle's threshold when set")
    min_consecutive_windows: int = Field(2, ge=1, le=100)
    end_after_quiet_s: float = Field(2.0, ge=0, le=3600, description="an event ends after this long below threshold")
    cooldown_s: float = Field(1.0, ge=0, le=86400, description="after an event ends, no new event starts for this long")
    update_every_s: float = Field(60.0, gt=0, le=86400, description="an ongoing event sends an 'update' this often")


class MqttSettings(_Model):
    """A direct MQTT connection with mutual TLS (AWS IoT Core's data endpoint, or any broker)."""

    host: str = Field(min_length=1, description="e.g. xxxxxxxx-ats.iot.eu-west-1.amazonaws.com")
    port: int = Field(8883, ge=1, le=65535)
    ca_file: str = Field(min_length=1, description="CA certificate (PEM) that signed the broker's certificate")
    cert_file: str = Field(min_length=1, description="this device's certificate (PEM)")
    key_file: str = Field(min_length=1, description="this device's private key (PEM)")


class EvidenceSettings(_Model):
    """Snapshots to the stage's evidence bucket (``snapshots/<thing>/<event_id>/<file>``)."""

    upload_snapshots: bool = Field(
        False, description="upload each event's (masked) snapshot; off by default: pictures are personal data"
    )
    bucket: str | None = Field(None, min_length=3, max_length=63, description="required when upload_snapshots is on")
    region: str | None = Field(None, min_length=1, description="the bucket's region; default the device's")

    @model_validator(mode="after")
    def _bucket_present(self) -> EvidenceSettings:
        if self.upload_snapshots and not self.bucket:
            raise ValueError("evidence.upload_snapshots needs evidence.bucket")
        return self


class ComponentConfig(_Model):
    publisher: Literal["greengrass", "mqtt", "jsonl"] = "jsonl"
    model_file: str | None = Field(
        None,
        pattern=r"^[a-zA-Z0-9_.-]{1,128}$",
        description="which of the bundle's files to run, e.g. model.onnx for ONNX Runtime;"
        " default the manifest's int8 TFLite model",
    )
    mqtt: MqttSettings | None = Field(None, description="required when publisher is mqtt")
    outbox_max_messages: int = Field(
        10_000, ge=10, le=10_000_000, description="alerts kept while offline; the oldest go first"
    )
    # At most 7 days: the alert Lambda deduplicates a start for 7 days (IDEMPOTENCY_TTL_S,
    # lambda/vigil_alerts/delivery.py); a longer replay could notify twice.
    handover_replay_s: float = Field(
        86_400.0,
        ge=0,
        le=7 * 86_400,
        description="after a restart, alerts handed to Greengrass this recently (s) are sent again, since its"
        " spooler is in memory; 0: off (edge_component/delivery/handover.py)",
    )
    handover_max_messages: int = Field(
        10_000, ge=10, le=10_000_000, description="alerts the handover journal keeps for that; the oldest go first"
    )
    cameras: list[CameraConfig] = Field(min_length=1, max_length=16)
    detection_fps: float = Field(
        5.0, gt=0, le=30, description="analyses per second; other frames are grabbed, not decoded"
    )
    window_s: float = Field(1.0, gt=0, le=10, description="length of the feature window (s)")
    motion: MotionSettings = Field(default_factory=MotionSettings)
    decision: DecisionSettings = Field(default_factory=DecisionSettings)
    object_detection: ObjectDetectionSettings = Field(default_factory=ObjectDetectionSettings)
    telemetry_every_s: float = Field(60.0, ge=1, le=86400, description="heartbeat and stats on vigil/<thing>/telemetry")
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    snapshot_max_files: int = Field(200, ge=1, le=100000, description="snapshots kept on disk; the oldest go first")

    @model_validator(mode="after")
    def _mqtt_settings_present(self) -> ComponentConfig:
        if self.publisher == "mqtt" and self.mqtt is None:
            raise ValueError("publisher 'mqtt' needs the 'mqtt' settings (host, ca_file, cert_file, key_file)")
        return self

    @model_validator(mode="after")
    def _unique_camera_names(self) -> ComponentConfig:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        return self


# Keys Greengrass adds to the component configuration that are not ours to validate.
_GREENGRASS_KEYS = ("accessControl",)


def parse_config(raw: Mapping[str, Any]) -> ComponentConfig:
    """Validate a configuration mapping; ConfigError names each bad key and why."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the configuration must be a mapping of keys to values, not {type(raw).__name__}")
    data = {k: v for k, v in dict(raw).items() if k not in _GREENGRASS_KEYS}
    try:
        return ComponentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(config)"
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid component configuration: " + "; ".join(problems)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (the last would win silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"key {k!r} given twice")
    return dict(pairs)


def parse_json(text: str, what: str = "configuration") -> Any:
    """``json.loads`` that refuses duplicate keys; ConfigError naming ``what`` otherwise."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None


def load_config(path: str | Path) -> ComponentConfig:
    """Read a YAML or JSON configuration file (UTF-8) and validate it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    if path.suffix == ".json":
        raw = parse_json(text, f"configuration {path}")
    else:
        try:
            raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"configuration {path} must be a mapping at the top level")
    return parse_config(raw)
