"""Training: data and model buckets, the code archive asset, the SageMaker execution
role and the state machine that runs the job (:mod:`infra.training_job`: what it runs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from edge_component.contracts.model_component import ARTIFACT_PREFIX, BUNDLE_FILE, model_component_name
from infra.edge_deployment import EDGE_PACKAGE_DIR
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource
from infra.operations import alarm_on_any
from infra.packaging import build_dir_for
from infra.storage import secure_bucket
from infra.training_config import TrainingConfig
from infra.training_job import DLC_ACCOUNTS, DLC_REPOSITORY, SpotTrainingJob, TaskUri, build_sourcedir, hyperparameters

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAINING_DIR = REPO_ROOT / "training"
TRAIN_PREFIX = "train/"
# Optional channel "test" (TrainingConfig.test_channel): clips of other scenes that the
# shipped model is scored on and never trained on (train.py's SM_CHANNEL_TEST).
TEST_PREFIX = "test/"
MODEL_PREFIX = "models/"
# Where the loop's first step (infra/model_loop.py, vigil_loop.current) puts the current
# model's location; the training task reads ``current_model_uri`` from it for channel
# "current" (train.py's SM_CHANNEL_CURRENT, scored beside the candidate for the gate).
CURRENT_RESULT_PATH = "$.current"
CURRENT_MODEL_URI = f"{CURRENT_RESULT_PATH}.current_model_uri"


class LoopStates:
    """What ``then(training)`` returns: ``before`` (the state that runs first and writes
    :data:`CURRENT_RESULT_PATH`, or None), ``after`` (the states after the training task)
    and ``after_s`` (how long those may take, s)."""

    def __init__(self, before: sfn.IChainable | None, after: sfn.IChainable, after_s: int) -> None:
        self.before, self.after, self.after_s = before, after, after_s


def stack_uuid(scope: Construct) -> str:
    """The last part of the stack's ARN: a UUID CloudFormation draws each time the stack is created."""
    return cdk.Fn.select(2, cdk.Fn.split("/", cdk.Stack.of(scope).stack_id))


class Training(Construct):
    """Retraining the model on SageMaker, started through Step Functions.

    Creates: the training-data and model buckets (via :func:`secure_bucket`); the
    ``sourcedir.tar.gz`` asset (see :func:`infra.training_job.build_sourcedir`); a
    least-privilege SageMaker execution role; a state machine whose one task runs the
    TensorFlow DLC training job (RUN_JOB), reading channel ``train`` from
    ``s3://<data>/train/`` (and, when ``test_channel``, channel ``test`` from
    ``s3://<data>/test/``) and writing to ``s3://<models>/models/``, with managed spot
    training (no checkpoints) when ``use_spot``; its log group; an alarm on failed runs.
    ``then(training)``, when given, returns the model loop's states (:class:`LoopStates`,
    :mod:`infra.model_loop`): the state before the training task, which locates the
    stage's current model bundle, the states after it, and how long those may take (s,
    added to the machine's timeout). With a ``before`` state the job also reads channel
    ``current``: the one object ``$.current.current_model_uri`` (S3Prefix: "SageMaker
    uses all objects that match the specified key name prefix", and a key is a prefix
    of itself; S3DataSource,
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html), so
    File mode puts ``model-bundle.zip`` in ``SM_CHANNEL_CURRENT``.

    The test channel is opt-in: CreateTrainingJob refuses a channel whose S3 prefix holds
    no object ("No S3 objects found under S3 URL"), so an always-on channel would fail
    every run of a stage that has no test clips.

    Attributes:
        data_bucket, model_bucket, sourcedir (asset), role, image_uri, task, state_machine, alarm.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        training: TrainingConfig,
        access_logs: s3.IBucket,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        alarm_action: cloudwatch.IAlarmAction,
        training_dir: Path = TRAINING_DIR,
        edge_package_dir: Path = EDGE_PACKAGE_DIR,
        then: Callable[[Training], LoopStates] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self.data_bucket = secure_bucket(self, "Data", access_logs=access_logs, removal_policy=removal_policy)
        self.model_bucket = secure_bucket(self, "Models", access_logs=access_logs, removal_policy=removal_policy)
        archive = build_sourcedir(training_dir, edge_package_dir, build_dir_for(self))
        self.sourcedir = s3_assets.Asset(self, "SourceDir", path=str(archive.path))

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Vigil SageMaker training jobs",
        )
        # Channel name -> data bucket prefix; SageMaker sets SM_CHANNEL_<NAME> for each.
        self.channels = {"train": TRAIN_PREFIX, **({"test": TEST_PREFIX} if training.test_channel else {})}
        self.image_uri = self._image_uri(stack, training.image_tag)
        loop = then(self) if then is not None else None
        self.component_name = model_component_name(stage_name)
        self._grant_training(stack, current=loop is not None and loop.before is not None)
        current_channel = (
            [
                tasks.Channel(
                    channel_name="current",
                    data_source=tasks.DataSource(
                        s3_data_source=tasks.S3DataSource(
                            # TaskUri, not S3Location.from_json_expression: that one grants
                            # s3:GetObject on "*"; the role's grants are explicit (ReadCurrentModel).
                            s3_location=TaskUri(sfn.JsonPath.string_at(CURRENT_MODEL_URI)),
                            s3_data_type=tasks.S3DataType.S3_PREFIX,
                        )
                    ),
                    input_mode=tasks.InputMode.FILE,
                )
            ]
            if loop is not None and loop.before is not None
            else []
        )
        image = tasks.DockerImage.from_registry(self.image_uri)
        self.task = SpotTrainingJob(
            self,
            "Train",
            spot={"max_wait_s": training.max_wait_s} if training.use_spot else None,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.format(f"vigil-{stage_name}-{{}}", sfn.JsonPath.uuid()),
            role=self.role,
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=image, training_input_mode=tasks.InputMode.FILE
            ),
            hyperparameters=hyperparameters(
                training=training,
                submit_directory=self.sourcedir.s3_object_url,
                region=stack.region,
            ),
            input_data_config=[
                tasks.Channel(
                    channel_name=name,
                    data_source=tasks.DataSource(
                        s3_data_source=tasks.S3DataSource(
                            s3_location=TaskUri(self.data_bucket.s3_url_for_object(prefix)),
                            s3_data_type=tasks.S3DataType.S3_PREFIX,
                        )
                    ),
                )
                for name, prefix in self.channels.items()
            ]
            + current_channel,
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=TaskUri(self.model_bucket.s3_url_for_object(MODEL_PREFIX))
            ),
            resource_config=tasks.ResourceConfig(
                instance_count=training.instance_count,
                instance_type=ec2.InstanceType(training.instance_type.removeprefix("ml.")),
                volume_size=cdk.Size.gibibytes(training.volume_gb),
            ),
            stopping_condition=tasks.StoppingCondition(max_runtime=cdk.Duration.seconds(training.max_runtime_s)),
        )

        after, after_s = (loop.after, loop.after_s) if loop is not None else (None, 0)
        job: sfn.IChainable = self.task if after is None else self.task.next(after)
        before = loop.before if loop is not None else None
        start = job if before is None else sfn.Chain.start(before).next(job)
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            # The vendedlogs prefix keeps CloudWatch's resource policy small; the stack's
            # id (new on every create) keeps a retained group from blocking a redeploy.
            log_group_name=f"/aws/vendedlogs/states/vigil-{stage_name}-training-{stack_uuid(self)}",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="Runs the Vigil training job; its model bundle lands in the model bucket"
            + ("; then evaluates, registers, canaries and promotes it" if after is not None else ""),
            definition_body=sfn.DefinitionBody.from_chainable(start),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
            timeout=cdk.Duration.seconds(max(training.max_runtime_s, training.max_wait_s) + 3600 + after_s),
        )
        self._acknowledge_state_machine()
        cfn_lint_ignore(self.state_machine, ROLE_DEPENDS_ON)
        self.alarm = alarm_on_any(
            self,
            "FailedAlarm",
            self.state_machine.metric_failed(period=cdk.Duration.minutes(5), statistic="Sum"),
            description="Vigil training: a training run failed",
            action=alarm_action,
        )

    def _image_uri(self, stack: cdk.Stack, tag: str) -> str:
        mapping = cdk.CfnMapping(
            self,
            "DlcAccounts",
            mapping={region: {"account": account} for region, account in DLC_ACCOUNTS.items()},
            lazy=True,
        )
        account = mapping.find_in_map(stack.region, "account")
        return f"{account}.dkr.ecr.{stack.region}.{stack.url_suffix}/{DLC_REPOSITORY}:{tag}"

    def _grant_training(self, stack: cdk.Stack, *, current: bool) -> None:
        data, models = self.data_bucket, self.model_bucket
        data_objects = [data.arn_for_objects(f"{prefix}*") for prefix in self.channels.values()]
        model_objects = models.arn_for_objects(f"{MODEL_PREFIX}*")
        job_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/TrainingJobs:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # The DLC registry account differs by region (DLC_ACCOUNTS).
        dlc_repository = stack.format_arn(
            service="ecr", account="*", resource="repository", resource_name=DLC_REPOSITORY
        )
        statements = [
            iam.PolicyStatement(sid="ReadTrainingData", actions=["s3:GetObject"], resources=data_objects),
            iam.PolicyStatement(
                sid="ListTrainingData",
                actions=["s3:ListBucket"],
                resources=[data.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in self.channels.values()]}},
            ),
            iam.PolicyStatement(
                sid="ReadCode",
                actions=["s3:GetObject"],
                resources=[
                    f"arn:{cdk.Aws.PARTITION}:s3:::{self.sourcedir.s3_bucket_name}/{self.sourcedir.s3_object_key}"
                ],
            ),
            iam.PolicyStatement(
                sid="WriteModels",
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[model_objects],
            ),
            iam.PolicyStatement(
                sid="ListModels",
                actions=["s3:ListBucket"],
                resources=[models.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{MODEL_PREFIX}*"]}},
            ),
            iam.PolicyStatement(
                sid="TrainingJobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[job_logs],
            ),
            iam.PolicyStatement(
                sid="TrainingMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                sid="PullTrainingImage",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[dlc_repository],
            ),
        ]
        # The current channel's one object: a version's bundle zip, the seed's (contract
        # artifact_key) or one the loop's component step wrote beside a job's output.
        bundle_keys = [f"{ARTIFACT_PREFIX}{self.component_name}/*/{BUNDLE_FILE}", f"{MODEL_PREFIX}*/{BUNDLE_FILE}"]
        bundles = [models.arn_for_objects(key) for key in bundle_keys]
        if current:
            statements += [
                iam.PolicyStatement(sid="ReadCurrentModel", actions=["s3:GetObject"], resources=bundles),
                # An S3Prefix channel is listed first (the S3Uri as the prefix).
                iam.PolicyStatement(
                    sid="ListCurrentModel",
                    actions=["s3:ListBucket"],
                    resources=[models.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": bundle_keys}},
                ),
            ]
        for statement in statements:
            self.role.add_to_policy(statement)
        current_findings = (
            {
                wildcard_resource(self, bundles[0]): "The current channel reads the bundle zip of this stage's "
                "promoted model component version; the version is only known at run time.",
                wildcard_resource(self, bundles[1]): "The current channel reads a promoted version's bundle zip "
                "that the loop wrote beside its training job's output; only bundle zips.",
            }
            if current
            else {}
        )
        acknowledge(
            self.role,
            {
                **{
                    wildcard_resource(self, objects): f"Training reads every object of the {prefix} channel prefix."
                    for prefix, objects in zip(self.channels.values(), data_objects, strict=True)
                },
                wildcard_resource(
                    self, model_objects
                ): "Each job writes its model under a job-named key below models/.",
                wildcard_resource(self, job_logs): "SageMaker writes one log stream per job in its fixed log group.",
                "AwsSolutions-IAM5[Resource::*]": "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no "
                "resource-level permissions (metrics are limited to the /aws/sagemaker/ namespace).",
                wildcard_resource(self, dlc_repository): "AWS Deep Learning Containers live in a per-region AWS "
                "account (DLC_ACCOUNTS); only this repository.",
                **current_findings,
            },
        )

    def _acknowledge_state_machine(self) -> None:
        # The task's own policy (added by aws-cdk-lib) names every training job.
        jobs = cdk.Stack.of(self).format_arn(service="sagemaker", resource="training-job", resource_name="*")
        acknowledge(
            self.state_machine,
            {
                "AwsSolutions-IAM5[Resource::*]": "Step Functions log delivery and X-Ray actions have no "
                "resource-level permissions.",
                wildcard_resource(self, jobs): "Training job names are generated per execution (States.UUID).",
            },
        )
