"""Edge deployment: the Vigil Greengrass component version and its deployment to the thing group."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
import yaml
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from edge_component.contracts.model_component import bundle_dir_variable, model_dependency
from infra.config import LOG_RETENTION_NAMES, GreengrassConfig, RolloutConfig
from infra.edge_settings import EdgeConfig
from infra.housekeeping import Housekeeping
from infra.nag import acknowledge, wildcard_resource
from infra.packaging import (
    ARTIFACT_FILE,
    EDGE_PACKAGE,
    Archive,
    artifact_bytes,
    build_dir_for,
    write_content_addressed,
)

if TYPE_CHECKING:  # infra.model_component imports infra.training, which imports this module
    from infra.model_component import ModelComponent

REPO_ROOT = Path(__file__).resolve().parent.parent
EDGE_PACKAGE_DIR = REPO_ROOT / EDGE_PACKAGE
RECIPE_PATH = EDGE_PACKAGE_DIR / "recipe.yaml"
COMPONENT_BASE_NAME = "com.vigil.EdgeDetector"
# Greengrass unpacks an artifact into a folder named after its file: the recipe (and a
# GDK build) use vigil-edge.zip, so it runs from {artifacts:decompressedPath}/vigil-edge.
# A CDK asset's S3 object is named by its hash instead; the recipe's paths are rewritten to match.
ARTIFACT_FOLDER = "vigil-edge"
RECIPE_ARTIFACT_DIR = "{artifacts:decompressedPath}/" + ARTIFACT_FOLDER + "/"
# The run step's environment variable naming the model bundle directory the detector loads.
MODEL_DIR_ENV = "VIGIL_MODEL_DIR"
NUCLEUS = "aws.greengrass.Nucleus"
LOG_MANAGER = "aws.greengrass.LogManager"


def component_name(stage_name: str) -> str:
    """``com.vigil.EdgeDetector.<stage>``: component versions are account-wide and stages may share an account."""
    return f"{COMPONENT_BASE_NAME}.{stage_name}"


def content_version(recipe: dict[str, Any], artifact_digests: list[str]) -> str:
    """``1.0.<n>``, ``n`` from the first 7 hex digits of SHA-256 over the recipe and digests.

    Same content, same version (nothing is replaced on redeploy); any change to the
    recipe or an artifact gives another version. 7 hex digits stay below 2**31.
    """
    material = json.dumps(recipe, sort_keys=True, separators=(",", ":")) + "\n" + "\n".join(artifact_digests)
    return f"1.0.{int(hashlib.sha256(material.encode()).hexdigest()[:7], 16)}"


def log_group_arn(scope: Construct, name: str) -> str:
    """``arn:<partition>:logs:<region>:<account>:log-group:<name>`` (no ``:*``)."""
    return cdk.Stack.of(scope).format_arn(
        service="logs", resource="log-group", resource_name=name, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
    )


def build_artifact(package_dir: Path, build_dir: Path) -> Archive:
    """Write the component zip into ``build_dir`` (content-addressed)."""
    return write_content_addressed(artifact_bytes(package_dir), build_dir, ARTIFACT_FILE)


class EdgeDeployment(Construct):
    """The Vigil component version and the Greengrass deployment of it to the thing group.

    Reads ``recipe.yaml`` at synth, packs the edge package as a deterministic zip
    asset, writes the asset's S3 URI and SHA-256 digest into the recipe, and derives
    the component version from the content. Deploys the component with the Nucleus
    and LogManager to ``thing_group_arn``: rollback on failure, an IoT job rollout with
    abort criteria and a timeout, and the stage's edge settings merged over the
    recipe's defaults. Adopts the component's log group (with retention, through
    ``housekeeping``) and grants
    the token exchange role the artifact and log access the device needs.

    With ``model`` (the stage's :class:`ModelComponent`), the recipe gains a HARD
    dependency on the model component and its run step's ``VIGIL_MODEL_DIR`` names the
    dependency's unpacked bundle; the deployment pins the model at the version
    ``model.deployed_version`` returns (the promoted one), re-read whenever the
    deployment changes. Without it the detector loads the seed inside its own artifact.

    Attributes:
        component_name, component_version: the concrete name and version (plain strings).
        artifact: the zip on disk and its digest; ``asset``: the uploaded ``s3_assets.Asset``.
        recipe: the final recipe dict (with CDK tokens in the artifact URI).
        component: the ``greengrassv2.CfnComponentVersion``; ``deployment``: the ``CfnDeployment``.
        log_group_names: the Greengrass log groups the device writes (component, system).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        thing_group_arn: str,
        token_exchange_role: iam.IRole,
        edge: EdgeConfig,
        rollout: RolloutConfig,
        greengrass_config: GreengrassConfig,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        housekeeping: Housekeeping,
        package_dir: Path = EDGE_PACKAGE_DIR,
        recipe_path: Path = RECIPE_PATH,
        model: ModelComponent | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.component_name = component_name(stage_name)
        self.model = model
        self.artifact = build_artifact(package_dir, build_dir_for(self))
        self.asset = s3_assets.Asset(self, "Artifact", path=str(self.artifact.path))

        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
        recipe["ComponentName"] = self.component_name
        manifests = recipe.get("Manifests") or []
        artifacts = [a for m in manifests for a in m.get("Artifacts", [])]
        if len(artifacts) != 1:
            raise ValueError(
                f"{recipe_path}: expected exactly one artifact (the {ARTIFACT_FILE}), found {len(artifacts)}"
            )
        if model is not None:
            self._use_model_component(recipe, recipe_path, stage_name)
        # Version from everything that reaches the device: the recipe as the stage
        # sees it, the zip's digest and the asset hash that names its S3 object.
        versioned = copy.deepcopy(recipe)
        versioned.pop("ComponentVersion", None)
        for artifact in (a for m in versioned["Manifests"] for a in m.get("Artifacts", [])):
            artifact.pop("URI", None)
        self.component_version = content_version(versioned, [self.artifact.sha256_hex, self.asset.asset_hash])
        recipe["ComponentVersion"] = self.component_version
        artifacts[0].update(
            {"URI": self.asset.s3_object_url, "Digest": self.artifact.sha256_b64, "Algorithm": "SHA-256"}
        )
        object_key = self.asset.s3_object_key
        if cdk.Token.is_unresolved(object_key):
            raise ValueError("the component artifact's S3 object key must be known at synth (DefaultStackSynthesizer)")
        unpacked_dir = "{artifacts:decompressedPath}/" + Path(object_key).stem + "/"
        for manifest in manifests:
            for phase in (manifest.get("Lifecycle") or {}).values():
                if isinstance(phase, dict) and "Script" in phase:
                    phase["Script"] = phase["Script"].replace(RECIPE_ARTIFACT_DIR, unpacked_dir)
                    for name, value in (phase.get("Setenv") or {}).items():
                        phase["Setenv"][name] = value.replace(RECIPE_ARTIFACT_DIR, unpacked_dir)
                elif isinstance(phase, str):
                    raise ValueError(f"{recipe_path}: write lifecycle steps as {{Script: ...}} mappings")
        self.artifact_dir = unpacked_dir
        self.recipe = recipe

        self.component = greengrass.CfnComponentVersion(
            self, "Component", inline_recipe=cdk.Stack.of(self).to_json_string(recipe)
        )

        self._grant_device_access(token_exchange_role, log_retention, removal_policy, greengrass_config, housekeeping)
        self.deployment = self._deployment(
            stage_name=stage_name,
            thing_group_arn=thing_group_arn,
            edge=edge,
            rollout=rollout,
            greengrass_config=greengrass_config,
        )

    def _use_model_component(self, recipe: dict[str, Any], recipe_path: Path, stage_name: str) -> None:
        """Depend on the stage's model component and load the bundle it unpacks.

        A dependency's ``{<name>:artifacts:decompressedPath}`` resolves only for a direct
        dependency (recipe reference, "Recipe variables":
        https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html).
        """
        recipe["ComponentDependencies"] = {
            **(recipe.get("ComponentDependencies") or {}),
            **model_dependency(stage_name),
        }
        runs = [
            m["Lifecycle"]["run"]
            for m in recipe["Manifests"]
            if isinstance((m.get("Lifecycle") or {}).get("run"), dict)
        ]
        if not runs or any(MODEL_DIR_ENV not in (run.get("Setenv") or {}) for run in runs):
            raise ValueError(f"{recipe_path}: the run step must set {MODEL_DIR_ENV} (Setenv) for the model to override")
        for run in runs:
            run["Setenv"][MODEL_DIR_ENV] = bundle_dir_variable(stage_name)

    def _grant_device_access(
        self,
        role: iam.IRole,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        greengrass_config: GreengrassConfig,
        housekeeping: Housekeeping,
    ) -> None:
        # Exactly the artifact object: no bucket-wide read.
        bucket_arn = f"arn:{cdk.Aws.PARTITION}:s3:::{self.asset.s3_bucket_name}"
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadComponentArtifact",
                actions=["s3:GetObject"],
                resources=[f"{bucket_arn}/{self.asset.s3_object_key}"],
            )
        )
        # The nucleus's S3Downloader asks the bucket's region before every download and
        # fails the deployment on a 403 (S3_GET_BUCKET_LOCATION_ACCESS_DENIED).
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="LocateArtifactBucket", actions=["s3:GetBucketLocation"], resources=[bucket_arn])
        )
        # LogManager writes to /aws/greengrass/<type>/<region>/<name>. The stack adopts the
        # groups rather than owning them: a retained group, or one a device created first,
        # would fail an AWS::Logs::LogGroup with "already exists" (infra/housekeeping.py).
        region = cdk.Stack.of(self).region
        retention_days = {name: days for days, name in LOG_RETENTION_NAMES.items()}[log_retention.name]
        delete = removal_policy == cdk.RemovalPolicy.DESTROY
        group_names = [f"/aws/greengrass/UserComponent/{region}/{self.component_name}"]
        housekeeping.log_group(
            "ComponentLogs", name=group_names[0], retention_days=retention_days, delete_on_destroy=delete
        )
        system_log_group_name = f"/aws/greengrass/GreengrassSystemComponent/{region}/System"
        group_names.append(system_log_group_name)
        if greengrass_config.manage_system_log_group:
            housekeeping.log_group(
                "SystemLogs", name=system_log_group_name, retention_days=retention_days, delete_on_destroy=delete
            )
        self.log_group_names = group_names
        # CreateLogGroup is checked against ...:log-group:<name>, the stream actions against
        # ...:log-group:<name>:*; LogManager creates the group before each day's new stream
        # and gives up on any error but "already exists" (aws-greengrass-log-manager
        # CloudWatchLogsUploader.java), so both forms are needed.
        resources = []
        for name in group_names:
            group_arn = log_group_arn(self, name)
            resources += [group_arn, f"{group_arn}:*"]
            acknowledge(
                role,
                {
                    wildcard_resource(
                        self, f"{group_arn}:*"
                    ): "The :* covers the log streams of one Greengrass log group."
                },
            )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteGreengrassLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=resources,
            )
        )

    def _deployment(
        self,
        *,
        stage_name: str,
        thing_group_arn: str,
        edge: EdgeConfig,
        rollout: RolloutConfig,
        greengrass_config: GreengrassConfig,
    ) -> greengrass.CfnDeployment:
        # In the component configuration's shape (edge_component/config.py); reset runs first.
        merge, reset = edge.configuration_update()
        Spec = greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty
        Update = greengrass.CfnDeployment.ComponentConfigurationUpdateProperty
        log_manager_config = {
            "logsUploaderConfiguration": {
                "systemLogsConfiguration": {"uploadToCloudWatch": "true", "minimumLogLevel": "INFO"},
                "componentLogsConfigurationMap": {self.component_name: {"minimumLogLevel": "INFO"}},
            },
            "periodicUploadIntervalSec": greengrass_config.log_upload_interval_s,
        }
        components: dict[str, Any] = {}
        if self.model is not None:
            # Pinned (never a range left to the cloud to resolve), at the version the
            # custom resource read from SSM: the promoted model, or the seed before any.
            components[self.model.component_name] = Spec(component_version=self.model.deployed_version)
        deployment = greengrass.CfnDeployment(
            self,
            "Deployment",
            target_arn=thing_group_arn,
            deployment_name=f"vigil-{stage_name}",
            components={
                **components,
                # Referencing the component's attribute orders the deployment after it.
                self.component_name: Spec(
                    component_version=self.component.attr_component_version,
                    configuration_update=Update(
                        merge=json.dumps(merge, sort_keys=True, allow_nan=False), reset=reset or None
                    ),
                ),
                # The recipe's access control names {iot:thingName}: the nucleus must
                # interpolate component configuration for that to resolve.
                NUCLEUS: Spec(
                    component_version=greengrass_config.nucleus_version,
                    configuration_update=Update(merge=json.dumps({"interpolateComponentConfiguration": True})),
                ),
                LOG_MANAGER: Spec(
                    component_version=greengrass_config.log_manager_version,
                    configuration_update=Update(merge=json.dumps(log_manager_config, sort_keys=True)),
                ),
            },
            deployment_policies=greengrass.CfnDeployment.DeploymentPoliciesProperty(
                failure_handling_policy="ROLLBACK",
                component_update_policy=greengrass.CfnDeployment.DeploymentComponentUpdatePolicyProperty(
                    action="NOTIFY_COMPONENTS", timeout_in_seconds=rollout.component_update_timeout_s
                ),
                configuration_validation_policy=greengrass.CfnDeployment.DeploymentConfigurationValidationPolicyProperty(
                    timeout_in_seconds=rollout.component_update_timeout_s
                ),
            ),
            iot_job_configuration=greengrass.CfnDeployment.DeploymentIoTJobConfigurationProperty(
                job_executions_rollout_config=greengrass.CfnDeployment.IoTJobExecutionsRolloutConfigProperty(
                    exponential_rate=greengrass.CfnDeployment.IoTJobExponentialRolloutRateProperty(
                        base_rate_per_minute=rollout.base_rate_per_minute,
                        increment_factor=rollout.increment_factor,
                        rate_increase_criteria={"NumberOfSucceededThings": rollout.rate_increase_after_succeeded},
                    ),
                    maximum_per_minute=rollout.maximum_per_minute,
                ),
                abort_config=greengrass.CfnDeployment.IoTJobAbortConfigProperty(
                    criteria_list=[
                        greengrass.CfnDeployment.IoTJobAbortCriteriaProperty(
                            action="CANCEL",
                            failure_type=failure_type,
                            min_number_of_executed_things=rollout.abort_min_executed_things,
                            threshold_percentage=rollout.abort_threshold_percentage,
                        )
                        for failure_type in ("FAILED", "TIMED_OUT")
                    ]
                ),
                timeout_config=greengrass.CfnDeployment.IoTJobTimeoutConfigProperty(
                    in_progress_timeout_in_minutes=rollout.in_progress_timeout_minutes
                ),
            ),
        )
        if self.model is not None:
            # Everything the deployment says (the model's version only as the reference to
            # the custom resource), and the code version its GetAtt resolves to: when any
            # of it changes, CloudFormation updates the deployment and, with this key
            # changed, re-reads the promoted version first.
            properties = cdk.Stack.of(self).resolve(deployment._cfn_properties)
            material = json.dumps(
                {"deployment": properties, "codeVersion": self.component_version},
                sort_keys=True,
                separators=(",", ":"),
            )
            self.model.refresh_on(hashlib.sha256(material.encode()).hexdigest())
        return deployment
