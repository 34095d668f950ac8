"""The model bundle's manifest: the one definition that training writes
(``training/export.py``) and the edge reads (``edge_component.model.bundle``).

A bundle is a directory with :data:`MANIFEST_FILE` and the model files it lists, each
with its SHA-256. Checks here are what the manifest says on its own; the loader adds
what needs the bundle or the edge (the digests, the feature contract, the runtime).
A problem is a ``ValueError`` whose message names the key (``threshold must be a
number, got '0.5'``); :func:`manifest_problem` turns pydantic's errors into that one line.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = "1"
FLOAT32_MAX = 3.4028234663852886e38  # normalisation is applied in float32 on the device


class Normalisation(BaseModel):
    """Standardisation of the raw feature rows: ``(x - mean) / scale``, per feature."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["standard"] = "standard"
    mean: list[float]
    scale: list[float]

    @model_validator(mode="after")
    def _finite_and_positive(self) -> Normalisation:
        values = [*self.mean, *self.scale]
        if not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values) or any(s <= 0 for s in self.scale):
            raise ValueError("normalisation has non-finite values or a scale <= 0")
        return self


class DetectorRecord(BaseModel):
    """The object detector the bundle was made for: its file name, the SHA-256 of its
    bytes and of its label map (the names one a line, UTF-8, each line ending in
    ``\n``). The edge refuses to run object zones with any other detector."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,128}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    label_map_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    """``manifest.json``. Keys the edge needs are required; the rest say how the bundle
    was made (training writes them all; the edge ignores keys it does not know)."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    schema_version: str
    created_at: str | None = None
    feature_version: str
    feature_names: list[str]
    normalisation: Normalisation
    threshold: float = Field(description="probability 0..1 at or above which a window counts")
    window: dict[str, float] = Field(default_factory=dict, description="window_s and detection_fps trained with")
    model_file: str = Field(description="the file the edge runs by default (int8 TFLite)")
    files: dict[str, str] = Field(description="every file of the bundle -> its SHA-256 (hex)")
    models: dict[str, dict[str, Any]] = Field(default_factory=dict, description="file -> what the model is")
    metrics: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict, description="packages that made the models")
    checked_against: dict[str, str] = Field(default_factory=dict, description="runtimes the gates ran them in")
    detector: DetectorRecord | None = Field(None, description="the object detector the bundle goes with; absent: any")

    @field_validator("schema_version", "feature_version", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        return str(value)  # "1" and 1 are the same version

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value != MANIFEST_SCHEMA_VERSION:
            raise ValueError(f"manifest schema_version {value!r} is not {MANIFEST_SCHEMA_VERSION!r}")
        return value

    @field_validator("normalisation", mode="before")
    @classmethod
    def _standard(cls, value: Any) -> Any:
        if not isinstance(value, dict) or value.get("kind", "standard") != "standard":
            raise ValueError("normalisation must be an object of kind 'standard' ((x - mean) / scale)")
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"threshold must be a number, got {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"threshold {float(value)} is outside 0..1")
        return value

    @field_validator("files", mode="before")
    @classmethod
    def _digests(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError("files must map file names to SHA-256 hex digests")
        return value

    @field_validator("model_file", mode="before")
    @classmethod
    def _file_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"model_file must be a file name, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        n = len(self.feature_names)
        if len(self.normalisation.mean) != n or len(self.normalisation.scale) != n:
            raise ValueError(f"normalisation must have {n} values each")
        if self.model_file not in self.files:
            raise ValueError(f"model_file {self.model_file!r} is not listed in files")
        return self


def manifest_problem(exc: ValidationError) -> str:
    """The first problem pydantic found, as one line naming the key."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return f"missing key {where!r}"
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])  # our own messages name the key already
    return f"malformed value: {where}: {err['msg']}"
