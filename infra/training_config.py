"""A stage's training settings (``training`` in ``cdk.json``): the SageMaker job's
instance, limits and image, and the hyperparameters it passes to ``training/train.py``.

Hyperparameter names and types are checked against :mod:`training.hyperparameters`,
the definition train.py's parser is built from: train.py refuses an argument it does
not know (exit status 2), so a misspelt key would otherwise pass synth and fail the job.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from infra.config_types import Frozen
from training.hyperparameters import BY_NAME, hidden_layers


def _check_hyperparameter(name: str, value: Any) -> str | None:
    """Why ``name: value`` is not a hyperparameter ``train.py`` takes, or None if it is."""
    if name == "epochs":
        return "'epochs' is set by training.epochs"
    if name.startswith("sagemaker_"):
        return f"{name!r} is reserved: set by the infrastructure"
    if name not in BY_NAME:
        # SageMaker passes each key as --<key>: --learning_rate is not --learning-rate.
        others = [n for n in BY_NAME if n != "epochs"]
        close = difflib.get_close_matches(name.replace("_", "-"), others, n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        return f"{name!r} is not an argument of training/train.py{suggestion} (it takes: {', '.join(sorted(others))})"
    h = BY_NAME[name]
    kind = h.type
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}: {value!r} is not a finite number"
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{name}: train.py reads an integer, got {value!r}"
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{name}: train.py reads a number, got {value!r}"
    if h.limit is not None and kind in (int, float) and not h.limit.ok(value):
        return f"{name}: must be {h.limit.text}, got {value!r}"
    if name == "hidden":
        try:
            hidden_layers(value)
        except ValueError as exc:
            return f"hidden: {exc}"
    return None


class TrainingConfig(Frozen):
    """The stage's SageMaker training job (``training`` in ``cdk.json``)."""

    instance_type: str = Field(pattern=r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
    instance_count: int = Field(default=1, ge=1)
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

    @field_validator("instance_count")
    @classmethod
    def _one_instance(cls, value: int) -> int:
        # train.py trains on one host (no distribution strategy); more hosts would only
        # repeat the work, and SageMaker merges every host's /opt/ml/model into one archive.
        if value != 1:
            raise ValueError(f"must be 1: training/train.py trains on a single instance, got {value}")
        return value

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
        problems = [p for name in value if (p := _check_hyperparameter(name, value[name]))]
        if problems:
            raise ValueError("; ".join(problems))
        return value
