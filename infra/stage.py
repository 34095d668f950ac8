"""The stack of one stage, the Stage that holds it, and the app with every stage."""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from edge_component.contracts.model_component import model_component_name
from edge_component.contracts.topics import ALERT_CHANNEL, TELEMETRY_CHANNEL, topic_template
from infra.alerting import ARCHITECTURE, PYTHON_RUNTIME, Alerting
from infra.config import LOG_RETENTION_NAMES, StageConfig
from infra.devices import Devices
from infra.edge_deployment import EdgeDeployment, component_name
from infra.feedback import Feedback
from infra.greengrass_versions import FLEET_PROVISIONING_PLUGIN_VERSION, fleet_provisioning_plugin_url
from infra.health import Health
from infra.housekeeping import Housekeeping
from infra.model_component import ModelComponent
from infra.model_loop import LoopPlace, ModelLoop
from infra.operations import Operations
from infra.storage import Storage
from infra.training import LoopStates, Training

STACK_ID = "Vigil"


class VigilStack(cdk.Stack):
    """Everything one stage runs: creates the capability constructs and wires them.

    Attributes: ``config``, ``storage``, ``operations``, ``housekeeping``, ``devices``,
    ``training``, ``model``, ``model_loop``, ``edge``, ``alerting``, ``health``.
    """

    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)
        self.config = config
        retention = _retention(config.log_retention_days)
        removal = cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY
        component = component_name(config.name)

        self.storage = Storage(
            self, "Storage", evidence_retention_days=config.evidence_retention_days, removal_policy=removal
        )
        self.operations = Operations(self, "Operations", emails=config.ops_emails, removal_policy=removal)
        alarm_action = self.operations.alarm_action()

        self.housekeeping = Housekeeping(self, "Housekeeping", log_retention=retention)
        self.devices = Devices(
            self,
            "Devices",
            thing_names=config.things,
            component_names=[component, model_component_name(config.name)],
            evidence_bucket=self.storage.evidence,
            fleet_provisioning=config.fleet_provisioning,
            upload_snapshots=config.evidence.upload_snapshots,
            thing_name_prefix=config.thing_name_prefix,
            denied_thing_names=config.denied_thing_names,
            # The loop's (infra/model_loop.py): admitted, but a claim must not put them in the stage group.
            canary_thing_names=config.model_loop.canary_things,
            log_retention=retention,
        )
        self.training = Training(
            self,
            "Training",
            stage_name=config.name,
            training=config.training,
            access_logs=self.storage.access_logs,
            log_retention=retention,
            removal_policy=removal,
            alarm_action=alarm_action,
            then=self._model_loop,
        )
        # The model's seed artifact lives beside the loop's bundles, in the model bucket.
        self.model = ModelComponent(
            self,
            "Model",
            stage_name=config.name,
            bucket=self.training.model_bucket,
            housekeeping=self.housekeeping,
            token_exchange_role=self.devices.token_exchange_role,
        )
        self.edge = EdgeDeployment(
            self,
            "Edge",
            stage_name=config.name,
            thing_group_arn=self.devices.thing_group_arn,
            token_exchange_role=self.devices.token_exchange_role,
            edge=config.edge,
            rollout=config.rollout,
            greengrass_config=config.greengrass,
            log_retention=retention,
            removal_policy=removal,
            housekeeping=self.housekeeping,
            model=self.model,
            evidence_bucket=self.storage.evidence if config.evidence.upload_snapshots else None,
        )
        self.alerting = Alerting(
            self,
            "Alerting",
            stage_name=config.name,
            site_name=config.site_name,
            time_zone=config.time_zone,
            alert_emails=config.alert_emails,
            alert_sms=config.alert_sms,
            alerts=config.alerts,
            stage_things=self.devices.stage_things,
            evidence_bucket=self.storage.evidence,
            log_retention=retention,
            removal_policy=removal,
            alarm_action=alarm_action,
        )
        self.feedback = Feedback(
            self,
            "Feedback",
            stage_name=config.name,
            site_name=config.site_name,
            link_days=config.alerts.feedback_link_days,
            alert_function=self.alerting.function,
            training_bucket=self.training.data_bucket,
            code=self.alerting.code,
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            log_retention=retention,
            removal_policy=removal,
        )
        self.health = self._health(config, retention, removal, alarm_action)
        self.model_loop.bind(self.training.state_machine)
        # After the loop: its canary things are detached from their certificates too.
        policies = [p for p in (self.devices.policy, self.devices.claim_policy) if p is not None]
        things = [*self.devices.things.values(), *self.model_loop.canary_things.values()]
        self.housekeeping.clean_up(policies, things)
        cdk.Tags.of(self).add("project", "vigil")
        cdk.Tags.of(self).add("stage", config.name)
        self._outputs()

    def _health(
        self,
        config: StageConfig,
        retention: logs.RetentionDays,
        removal: cdk.RemovalPolicy,
        alarm_action: cloudwatch.IAlarmAction,
    ) -> Health:
        topics = [self.operations.topic.topic_arn]
        if config.health.notify_alert_recipients:
            topics.append(self.alerting.topic.topic_arn)
            self.alerting.allow_alarms()
        return Health(
            self,
            "Health",
            stage_name=config.name,
            stage_things=self.devices.stage_things,
            health=config.health,
            device_status=self.model_loop.device_status,
            code=self.alerting.code,
            layer=self.alerting.layer,
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            alarm_topic_arns=topics,
            operations_action=alarm_action,
            log_retention=retention,
            removal_policy=removal,
        )

    def _model_loop(self, training: Training) -> LoopStates:
        """The loop around the training task (infra/model_loop.py), on this stage's buckets and groups."""
        config = self.config
        self.model_loop = ModelLoop(
            self,
            "ModelLoop",
            stage_name=config.name,
            loop=config.model_loop,
            place=LoopPlace(
                model_bucket=training.model_bucket,
                operations_topic=self.operations.topic,
                operations_key=self.operations.key,
                stage_thing_group_arn=self.devices.thing_group_arn,
                token_exchange_role=self.devices.token_exchange_role,
                inference_image=training.image_uri,
            ),
            powertools_layer_version=config.alerts.powertools_layer_version,
            log_retention=_retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY,
        )
        return self.model_loop.states

    def _outputs(self) -> None:
        devices = self.devices
        nucleus = self.config.greengrass.nucleus_version
        outputs = {
            "ThingGroupName": (devices.thing_group_name, "Thing group every camera of the stage joins"),
            "DevicePolicyName": (devices.policy_name, "IoT policy for camera certificates"),
            "TokenExchangeRoleName": (devices.token_exchange_role.role_name, "Greengrass token exchange role"),
            "RoleAliasName": (devices.role_alias_name, "Greengrass token exchange role alias"),
            "ComponentName": (self.edge.component_name, "Vigil Greengrass component"),
            "ComponentVersion": (self.edge.component_version, "Deployed component version (from its content)"),
            "ModelComponentName": (self.model.component_name, "Vigil model component (the detector's model bundle)"),
            "ModelComponentVersion": (
                self.model.deployed_version,
                "Model version the stage deploys (SSM promoted-version; the seed until a promotion)",
            ),
            "AlertTopicPattern": (topic_template("<thing>", ALERT_CHANNEL), "MQTT topic a camera publishes alerts on"),
            "TelemetryTopicPattern": (topic_template("<thing>", TELEMETRY_CHANNEL), "MQTT topic for telemetry"),
            "AlertTopicArn": (self.alerting.topic.topic_arn, "SNS topic of alert notifications"),
            "FeedbackUrl": (self.feedback.url.url, "Function URL of the signed false alarm / correct links"),
            "OperationsTopicArn": (self.operations.topic.topic_arn, "SNS topic of alarms"),
            "EvidenceBucketName": (self.storage.evidence.bucket_name, "Alert snapshots (snapshots/<thing>/)"),
            "TrainingDataBucketName": (self.training.data_bucket.bucket_name, "Labelled training data (train/)"),
            "ModelBucketName": (self.training.model_bucket.bucket_name, "Trained model bundles (models/)"),
            "TrainingStateMachineArn": (self.training.state_machine.state_machine_arn, "Starts a training run"),
            "ModelPackageGroupName": (self.model_loop.group_name, "SageMaker model registry group of the stage"),
            "CanaryThingGroupName": (self.model_loop.canary_thing_group.ref, "Thing group new models run on first"),
            # A versioned installer: one newer than the deployment's nucleus pin would be
            # moved back to the pin (and restarted) by the first deployment.
            "InstallerUrl": (
                installer_url(nucleus),
                f"Greengrass installer matching the deployment's nucleus {nucleus}",
            ),
            "InitConfig": (
                cdk.Stack.of(self).to_json_string(init_config(self.region, nucleus, devices.role_alias_name)),
                "Save as config.yaml (JSON is YAML); fill in the thing name and the two endpoints",
            ),
            # --provision false: the stack owns the thing, group, policy and roles; the
            # installer's provisioning would attach its own IAM policy to the role and
            # block the stack's delete.
            "InstallerCommand": (
                "sudo -E java -Droot=/greengrass/v2 -Dlog.store=FILE "
                "-jar ./GreengrassInstaller/lib/Greengrass.jar --provision false --init-config ./config.yaml "
                "--component-default-user ggc_user:ggc_group --setup-system-service true",
                "Install Greengrass on a camera whose certificate is in place (README: Deploying a stage)",
            ),
        }
        if devices.provisioning_template is not None and devices.claim_policy is not None:
            outputs["ProvisioningTemplateName"] = (
                devices.provisioning_template.ref,
                "Fleet provisioning template: cameras with a claim certificate join the thing group by themselves",
            )
            outputs["ClaimPolicyName"] = (devices.claim_policy.ref, "Attach to the claim certificate")
            outputs["ThingNamePrefix"] = (
                self.config.provisioning_thing_name_prefix,
                "A claim registers only <prefix>[a-z0-9-]{1,64} (templateParameters.ThingName)",
            )
            outputs["FleetProvisioningPluginUrl"] = (
                fleet_provisioning_plugin_url(),
                f"Fleet provisioning plugin {FLEET_PROVISIONING_PLUGIN_VERSION} (--trusted-plugin)",
            )
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)


GREENGRASS_ROOT = "/greengrass/v2"


def installer_url(nucleus_version: str) -> str:
    """The Greengrass Core software release of exactly ``nucleus_version``
    (https://docs.aws.amazon.com/greengrass/v2/developerguide/manual-installation.html)."""
    return f"https://d2s8p88vqu9w66.cloudfront.net/releases/greengrass-{nucleus_version}.zip"


def init_config(region: str, nucleus_version: str, role_alias_name: str) -> dict:
    """The installer's ``--init-config`` for a device whose certificate, key and Amazon
    root CA are in the Greengrass root (manual-installation.html, "Install the AWS IoT
    Greengrass Core software"); ``<THING_NAME>``, ``<DATA_ENDPOINT>`` and
    ``<CRED_ENDPOINT>`` are left for the installer to fill in."""
    return {
        "system": {
            "certificateFilePath": f"{GREENGRASS_ROOT}/device.pem.crt",
            "privateKeyPath": f"{GREENGRASS_ROOT}/private.pem.key",
            "rootCaPath": f"{GREENGRASS_ROOT}/AmazonRootCA1.pem",
            "rootpath": GREENGRASS_ROOT,
            "thingName": "<THING_NAME>",
        },
        "services": {
            "aws.greengrass.Nucleus": {
                "componentType": "NUCLEUS",
                "version": nucleus_version,
                "configuration": {
                    "awsRegion": region,
                    "iotRoleAlias": role_alias_name,
                    "iotDataEndpoint": "<DATA_ENDPOINT>",
                    "iotCredEndpoint": "<CRED_ENDPOINT>",
                },
            }
        },
    }


def _retention(days: int) -> logs.RetentionDays:
    return getattr(logs.RetentionDays, LOG_RETENTION_NAMES[days])


class VigilStage(cdk.Stage):
    """One deployment stage: holds the stage's single stack, ``stack``."""

    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, env: cdk.Environment | None = None) -> None:
        super().__init__(scope, id_, env=env)
        self.config = config
        self.stack = VigilStack(
            self,
            STACK_ID,
            config=config,
            stack_name=f"vigil-{config.name}",
            description=f"Vigil smart security cameras, stage {config.name}",
        )


def build_app(
    app: cdk.App,
    stages: Mapping[str, StageConfig],
    *,
    default_env: cdk.Environment | None = None,
    nag: bool = True,
) -> dict[str, VigilStage]:
    """Add one :class:`VigilStage` per stage to ``app`` and, with ``nag``, the cdk-nag checks.

    Account and region come from the stage's config, else from ``default_env`` (the CDK
    CLI's default environment); neither is looked up.
    """
    built: dict[str, VigilStage] = {}
    for name, config in stages.items():
        env = cdk.Environment(
            account=config.account or (default_env.account if default_env else None),
            region=config.region or (default_env.region if default_env else None),
        )
        built[name] = VigilStage(app, name, config=config, env=env)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return built
