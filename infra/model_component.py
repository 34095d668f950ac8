"""The stage's model component, ``com.vigil.Model.<stage>``: the seed bundle as its first
version, and the version the stage's deployment runs (the promoted one, once the loop
has promoted a model).

Names, the bundle zip, the recipe and the versions are the shared contract's
(``edge_component/contracts/model_component.py``). The component's one artifact is the
bundle zip; Greengrass unpacks it into ``{artifacts:decompressedPath}/model-bundle/``
(component recipe reference, "Artifacts", ``Unarchive``:
https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html),
which the detector reads through a dependency recipe variable.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from edge_component.contracts.model_component import (
    ARTIFACT_PREFIX,
    BUNDLE_FILE,
    artifact_key,
    bundle_files,
    bundle_zip,
    model_component_name,
    model_recipe,
    promoted_version_parameter,
    seed_version,
)
from infra.housekeeping import Housekeeping
from infra.nag import acknowledge, wildcard_resource
from infra.packaging import Archive, build_dir_for, write_content_addressed
from infra.training import MODEL_PREFIX

SEED_DIR = Path(__file__).resolve().parent.parent / "edge_component" / "models" / "seed"


class ModelComponent(Construct):
    """The seed model component version and the custom resource that picks the version to deploy.

    Builds the deterministic bundle zip of ``seed_dir`` at synth, uploads it as an asset
    and copies it (``Housekeeping.seed_artifact``) to ``artifact_key(...)`` in ``bucket``: a
    CDK asset's object is named by its hash, and the folder Greengrass unpacks a zip
    into is named after the file. Grants ``token_exchange_role`` the objects of this
    component's versions (``components/<component>/*``, the seed's, and the bundle zips
    the loop writes under ``models/``).

    Attributes:
        component_name, seed_version: plain strings. bundle: the zip on disk and its digest.
        asset: the uploaded ``s3_assets.Asset``; artifact_key: where the recipe points.
        recipe: the seed recipe (tokens in the URI). component: the ``CfnComponentVersion``.
        version: the ``Custom::VigilPromotedModelVersion`` resource; ``deployed_version``
        its ``Version`` attribute (a token), the version the stage's deployment pins.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        bucket: s3.IBucket,
        housekeeping: Housekeeping,
        token_exchange_role: iam.IRole,
        seed_dir: Path = SEED_DIR,
    ) -> None:
        super().__init__(scope, id_)
        self.component_name = model_component_name(stage_name)
        files = bundle_files(seed_dir)
        # ValueError from the contract on a bundle without manifest.json.
        self.bundle: Archive = write_content_addressed(bundle_zip(files), build_dir_for(self), BUNDLE_FILE)
        self.seed_version = seed_version(self.bundle.sha256_hex)
        self.asset = s3_assets.Asset(self, "Bundle", path=str(self.bundle.path))
        self.artifact_key = artifact_key(stage_name, self.seed_version)
        self.artifact = housekeeping.seed_artifact(
            "ModelSeedArtifact",
            source_bucket=self.asset.s3_bucket_name,
            source_key=self.asset.s3_object_key,
            bucket=bucket,
            key=self.artifact_key,
        )
        self.recipe = model_recipe(
            stage_name,
            self.seed_version,
            self.artifact.get_att_string("Uri"),
            self.bundle.sha256_hex,
            model_sha256=_scored_model_sha256(files["manifest.json"]),
            description="The Vigil seed motion model bundle (manifest.json and its model files).",
        )
        # The artifact URI is the copy's attribute, so the version is created after the copy.
        self.component = greengrass.CfnComponentVersion(
            self, "Component", inline_recipe=cdk.Stack.of(self).to_json_string(self.recipe)
        )
        # SeedVersion as the component's attribute: the version to deploy is read after
        # the seed exists, and on the first deploy it is that seed.
        self.version = housekeeping.promoted_model_version(
            "PromotedModelVersion",
            parameter_name=promoted_version_parameter(stage_name),
            seed_version=self.component.attr_component_version,
        )
        self.deployed_version: str = self.version.get_att_string("Version")

        # The device downloads the artifact with the token exchange role's credentials;
        # the nucleus also asks the bucket's region first (see infra/edge_deployment.py).
        # The seed's key (contract artifact_key) and where the loop's component step puts a
        # candidate's zip, beside the training job's output (lambda/vigil_loop/component.py):
        # bundle zips only, never the training outputs or data.
        versions = bucket.arn_for_objects(f"{ARTIFACT_PREFIX}{self.component_name}/*")
        candidates = bucket.arn_for_objects(f"{MODEL_PREFIX}*/{BUNDLE_FILE}")
        token_exchange_role.add_to_principal_policy(
            iam.PolicyStatement(sid="ReadModelArtifacts", actions=["s3:GetObject"], resources=[versions, candidates])
        )
        acknowledge(
            token_exchange_role,
            {
                wildcard_resource(self, versions): "The bundle zips of this stage's model component versions "
                "(the loop creates new ones after the deploy); nothing else in the bucket.",
                wildcard_resource(self, candidates): "The loop's model component artifacts (one bundle zip per "
                "training job, created after the deploy); no other object of the training output.",
            },
        )
        token_exchange_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="LocateModelBucket", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]
            )
        )

    def refresh_on(self, key: str) -> None:
        """Make the version resource run again whenever ``key`` changes.

        CloudFormation sends a custom resource an Update only when its properties change,
        and otherwise keeps the ``Version`` of its last run: without a key that changes
        with the deployment, a deploy that changed the deployment (new code) would pin
        the version read at the previous deploy, not the one promoted since.
        """
        child = self.version.node.default_child
        assert isinstance(child, cdk.CfnResource)
        child.add_property_override("DeploymentKey", key)


def _scored_model_sha256(manifest: bytes) -> str | None:
    """The manifest's digest of the file the edge scores with (``files[model_file]``), if it lists one."""
    try:
        raw = json.loads(manifest)
        digest = raw["files"][raw["model_file"]]
    except (ValueError, KeyError, TypeError):
        return None
    return digest if isinstance(digest, str) else None
