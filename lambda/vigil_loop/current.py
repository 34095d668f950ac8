"""Step 0, current: where the stage's current model bundle lives, for the training job's
``current`` channel (train.py's ``SM_CHANNEL_CURRENT``, scored beside the candidate so the
gate can judge "no worse than the current model").

The promoted version is the SSM parameter ``/vigil/<stage>/model/promoted-version``
(written by the stack's ``Custom::VigilPromotedModelVersion`` at deploy, the seed on the
first one, and by the promote step); that version's recipe (GetComponent,
``recipeOutputFormat`` JSON: the recipe as bytes) names the bundle zip as its one
artifact URI (``Manifests[].Artifacts[].URI``).
"""

from __future__ import annotations

import json
from typing import Any

BUNDLE_SUFFIX = "/model-bundle.zip"  # the contract's BUNDLE_FILE


class CurrentModelError(ValueError):
    """The stage's current model cannot be located (no promoted version, or a recipe
    without one ``s3://.../model-bundle.zip`` artifact)."""


def promoted_version(ssm: Any, parameter: str) -> str:
    """The version in SSM ``parameter``; CurrentModelError when it does not exist."""
    try:
        value = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        raise CurrentModelError(
            f"SSM parameter {parameter} does not exist: no model has been deployed to this stage yet "
            "(the stack's Custom::VigilPromotedModelVersion writes it at deploy; deploy the stack first)"
        ) from None
    if not isinstance(value, str) or not value.strip():
        raise CurrentModelError(f"SSM parameter {parameter} is empty")
    return value.strip()


def bundle_uri(recipe: dict[str, Any], version_arn: str) -> str:
    """The one ``s3://`` artifact URI ending in ``/model-bundle.zip`` of ``recipe``'s manifests."""
    uris = {
        artifact.get("URI") or artifact.get("Uri")
        for manifest in recipe.get("Manifests") or []
        for artifact in manifest.get("Artifacts") or []
    }
    bundles = sorted(u for u in uris if isinstance(u, str) and u.startswith("s3://") and u.endswith(BUNDLE_SUFFIX))
    if len(bundles) != 1:
        raise CurrentModelError(
            f"{version_arn}: expected one s3://...{BUNDLE_SUFFIX} artifact in the recipe, "
            f"found {sorted(map(str, uris))}"
        )
    return bundles[0]


def current_model(ssm: Any, greengrass: Any, parameter: str, component_arn: str) -> dict[str, str]:
    """``{"current_model_uri": "s3://<bucket>/<key>/model-bundle.zip", "current_version"}``.

    ``component_arn``: ``arn:aws:greengrass:<region>:<account>:components:<name>``.
    CurrentModelError: no parameter, a version Greengrass does not know, or a recipe
    without the bundle artifact."""
    version = promoted_version(ssm, parameter)
    version_arn = f"{component_arn}:versions:{version}"
    try:
        response = greengrass.get_component(arn=version_arn, recipeOutputFormat="JSON")
    except greengrass.exceptions.ResourceNotFoundException:
        raise CurrentModelError(
            f"{parameter} names version {version}, which Greengrass does not have ({version_arn})"
        ) from None
    raw = response["recipe"]
    try:
        recipe = json.loads(raw.read() if hasattr(raw, "read") else raw)
    except (ValueError, TypeError) as exc:
        raise CurrentModelError(f"{version_arn}: the recipe is not JSON: {exc}") from None
    return {"current_model_uri": bundle_uri(recipe, version_arn), "current_version": version}
