"""The loop's per-stage settings, read from the Lambda's environment (set by
``infra/model_loop.py``); a missing or malformed variable is a clear error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

APPROVAL_STATUSES = ("Approved", "PendingManualApproval")


class SettingsError(ValueError):
    """An environment variable the step needs is missing or malformed."""


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value == "":
        raise SettingsError(f"environment variable {name} is not set")
    return value


def _float(env: Mapping[str, str], name: str, default: str) -> float:
    text = _get(env, name, default)
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"environment variable {name}={text!r} is not a number") from None
    if value < 0:
        raise SettingsError(f"environment variable {name}={text!r} is negative")
    return value


@dataclass(frozen=True)
class Settings:
    """One stage's loop settings.

    ``delay_tolerance_s``: how much later (s, mean delay) the candidate may alert than the
    current model; ``watch_minutes``: how long the canary runs before it is judged;
    ``approval``: the model package's status on registration (``Approved`` in dev,
    ``PendingManualApproval`` in prod).
    """

    stage: str = "dev"
    model_bucket: str = ""
    operations_topic_arn: str = ""
    model_package_group: str = ""
    approval: str = "Approved"
    approval_table: str = ""
    device_status_table: str = ""
    canary_thing_group_arn: str = ""
    stage_thing_group_arn: str = ""
    canary_things: tuple[str, ...] = ()
    watch_minutes: float = 30.0
    delay_tolerance_s: float = 0.5
    promoted_version_parameter: str = ""
    inference_image: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); SettingsError names a bad variable.
        Variables a step does not use may be absent (empty strings)."""
        env = os.environ if env is None else env
        stage = _get(env, "VIGIL_STAGE", "dev")
        approval = _get(env, "MODEL_APPROVAL", "Approved")
        if approval not in APPROVAL_STATUSES:
            raise SettingsError(f"MODEL_APPROVAL={approval!r}: expected one of {', '.join(APPROVAL_STATUSES)}")
        things = tuple(t.strip() for t in env.get("CANARY_THINGS", "").split(",") if t.strip())
        return cls(
            stage=stage,
            model_bucket=env.get("MODEL_BUCKET", ""),
            operations_topic_arn=env.get("OPERATIONS_TOPIC_ARN", ""),
            model_package_group=env.get("MODEL_PACKAGE_GROUP", f"vigil-{stage}"),
            approval=approval,
            approval_table=env.get("APPROVAL_TABLE", ""),
            device_status_table=env.get("DEVICE_STATUS_TABLE", ""),
            canary_thing_group_arn=env.get("CANARY_THING_GROUP_ARN", ""),
            stage_thing_group_arn=env.get("STAGE_THING_GROUP_ARN", ""),
            canary_things=things,
            watch_minutes=_float(env, "CANARY_WATCH_MINUTES", "30"),
            delay_tolerance_s=_float(env, "DELAY_TOLERANCE_S", "0.5"),
            promoted_version_parameter=env.get("PROMOTED_VERSION_PARAMETER", f"/vigil/{stage}/model/promoted-version"),
            inference_image=env.get("INFERENCE_IMAGE", ""),
        )
