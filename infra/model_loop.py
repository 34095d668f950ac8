"""The model loop after the training job (issue 13; docs/research/model-loop-design.md):
evaluate -> gate -> register -> approval -> component -> canary -> watch -> promote or
roll back, as states of the training state machine, each step a Lambda of
``lambda/vigil_loop`` (``vigil_loop.handlers.<step>_handler``, one bundle for all).

Approval: ``auto`` (dev) registers the package as Approved and goes on; ``manual``
(prod) registers it as PendingManualApproval and waits (``.waitForTaskToken``) until
the registry's "SageMaker Model Package State Change" event for the stage's group says
Approved or Rejected: an EventBridge rule runs the resume Lambda, which calls
SendTaskSuccess or SendTaskFailure with the stored token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from aws_cdk import custom_resources as cr
from constructs import Construct

from edge_component.contracts.model_component import BUNDLE_FILE, model_component_name, promoted_version_parameter
from infra.alerting import ARCHITECTURE, PYTHON_RUNTIME, RUNTIME_PINNED_BY_LAYER, powertools_layer_arn
from infra.config import ModelLoopConfig
from infra.lambda_bundle import LAMBDA_DIR, REPO_ROOT, local_python_code
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource
from infra.training import CURRENT_RESULT_PATH, MODEL_PREFIX, LoopStates, stack_uuid

MODEL_COMPONENT_BUILDER = REPO_ROOT / "edge_component" / "contracts" / "model_component.py"
# What a SageMaker training job writes under its output path (evaluate.output_keys).
MODEL_ARCHIVES = f"{MODEL_PREFIX}*/output/model.tar.gz"
OUTPUT_ARCHIVES = f"{MODEL_PREFIX}*/output/output.tar.gz"
BUNDLE_ZIPS = f"{MODEL_PREFIX}*/output/{BUNDLE_FILE}"
# The errors aws-cdk-lib's LambdaInvoke retries by default, named so a test can pin them.
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
)
# What a Lambda reports (the boto3 exception's class name) when Greengrass refuses a
# deployment of a component version it has not finished creating.
NOT_YET_DEPLOYABLE = ("ValidationException", "ResourceNotFoundException")
# aws-cdk-lib's AwsCustomResource provider function (a singleton per stack).
PROVIDER_ID = "AWS679f53fac002430cb0da5b7982bd2287"
REJECTED_ERROR = "ModelRejected"  # vigil_loop.registry.REJECTED_ERROR
STEPS = (
    "current",
    "evaluate",
    "gate",
    "register",
    "wait_for_approval",
    "resume",
    "component",
    "canary",
    "check",
    "promote",
    "rollback",
)


@dataclass(frozen=True)
class LoopPlace:
    """What the loop works on, from the stack's other constructs."""

    model_bucket: s3.IBucket
    operations_topic: sns.ITopic
    operations_key: kms.IKey
    stage_thing_group_arn: str
    token_exchange_role: iam.IRole
    inference_image: str


class ModelLoop(Construct):
    """The loop's functions, tables, groups and rule, and its states (``definition``, to
    follow the training task).

    Creates: one Lambda per step (own role, own log group); the model package group
    ``vigil-<stage>-<stack uuid>`` (``AWS::SageMaker::ModelPackageGroup``); the canary
    thing group (``AWS::IoT::ThingGroup``, the configured canary things added to it);
    the Approvals (``model_package_arn``) and DeviceStatus (``thing_name``) tables; in
    ``manual`` approval the EventBridge rule that resumes a waiting run.

    Attributes:
        functions (step -> Function), roles (step -> Role), model_package_group, group_name,
        canary_thing_group, canary_things (name -> CfnThing), approvals, device_status,
        approval_rule (None in ``auto``),
        current_step (the state before training: the current model's location at
        ``$.current``), definition (the first loop state after training, chained),
        max_duration_s (how long the loop may take after training, for the state
        machine's timeout), states (the three as :class:`infra.training.LoopStates`).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        loop: ModelLoopConfig,
        place: LoopPlace,
        powertools_layer_version: int,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        lambda_dir: Path = LAMBDA_DIR,
    ) -> None:
        super().__init__(scope, id_)
        self._stage, self._loop, self._place = stage_name, loop, place
        self._log_retention, self._removal = log_retention, removal_policy
        stack = cdk.Stack.of(self)

        # The stack's id keeps a retained group (prod) from blocking a redeploy after destroy.
        self.group_name = cdk.Fn.join("-", [f"vigil-{stage_name}", stack_uuid(self)])
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.group_name,
            model_package_group_description=f"Vigil edge models of stage {stage_name}",
        )
        # Always retained: CloudFormation cannot delete a group that holds model versions
        # (every run of the loop adds one), so a dev stack's delete would fail on it.
        self.model_package_group.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        self.canary_thing_group = iot.CfnThingGroup(
            self,
            "CanaryThingGroup",
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description=f"Vigil canary cameras of stage {stage_name}: new models run here first"
            ),
        )
        self.canary_thing_group_arn: str = self.canary_thing_group.attr_arn
        self.canary_things: dict[str, iot.CfnThing] = {}
        self._canary_membership(loop.canary_things)
        self.approvals = self._table("Approvals", "model_package_arn")
        self.device_status = self._table("DeviceStatus", "thing_name")

        self._code = local_python_code(lambda_dir, extra_file=MODEL_COMPONENT_BUILDER)
        self._layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", powertools_layer_arn(powertools_layer_version)
        )
        self.parameter_name = promoted_version_parameter(stage_name)
        self.parameter_arn = stack.format_arn(
            service="ssm", resource="parameter", resource_name=self.parameter_name.lstrip("/")
        )
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        for step in STEPS:
            # Only a manual approval waits for, and resumes on, the registry's event.
            if step in ("wait_for_approval", "resume") and loop.approval == "auto":
                continue
            self._function(step)
        self._grant(stack)
        self.approval_rule = self._approval_rule() if loop.approval == "manual" else None
        self.definition, self.max_duration_s = self._states()
        self.states = LoopStates(self.current_step, self.definition, self.max_duration_s)

    # Resources -----------------------------------------------------------------------

    def _table(self, id_: str, key: str) -> dynamodb.TableV2:
        return dynamodb.TableV2(
            self,
            id_,
            partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=self._removal,
        )

    def _canary_membership(self, things: tuple[str, ...]) -> None:
        """Each canary thing, created here, into the canary group (CloudFormation has no
        membership resource). The stage's claim certificates may not register them
        (infra/stage.py denies their names), so they never join the stage group."""
        group = self.canary_thing_group.ref
        # AwsCustomResource's function is a stack-wide singleton that keeps the role of the
        # first resource that made it (the Devices construct's, when it lists things):
        # grant on that role, or make one when this is the first.
        stack = cdk.Stack.of(self)
        provider = stack.node.try_find_child(PROVIDER_ID)
        role: iam.IRole
        if isinstance(provider, lambda_.Function) and provider.role is not None:
            role = provider.role
        else:
            role = iam.Role(
                self,
                "CanaryMembershipRole",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description="Adds Vigil's listed and canary things to their thing groups",
            )
            role.add_managed_policy(
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaBasicExecutionRole")
            )
            acknowledge(
                role,
                {
                    (
                        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        "AWSLambdaBasicExecutionRole]"
                    ): "Lets the CDK-provided AwsCustomResource function write its own logs; nothing else.",
                },
            )
        membership_logs = logs.LogGroup(self, "CanaryMembershipLogs", retention=self._log_retention)
        for name in things:
            call = cr.AwsSdkCall(
                service="IoT",
                action="AddThingToThingGroup",
                parameters={"thingName": name, "thingGroupName": group},
                physical_resource_id=cr.PhysicalResourceId.of(f"{name}@canary"),
            )
            thing = iot.CfnThing(self, f"CanaryThing-{name}", thing_name=name)
            self.canary_things[name] = thing
            membership = cr.AwsCustomResource(
                self,
                f"CanaryMembership-{name}",
                on_create=call,
                on_update=call,
                on_delete=cr.AwsSdkCall(
                    service="IoT",
                    action="RemoveThingFromThingGroup",
                    parameters={"thingName": name, "thingGroupName": group},
                ),
                role=role,
                log_group=membership_logs,
                install_latest_aws_sdk=False,
            )
            membership.node.add_dependency(thing)
        thing_arns = [cdk.Stack.of(self).format_arn(service="iot", resource="thing", resource_name=t) for t in things]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iot:AddThingToThingGroup", "iot:RemoveThingFromThingGroup"],
                resources=[self.canary_thing_group_arn, *thing_arns],
            )
        )
        provider = stack.node.try_find_child(PROVIDER_ID)
        if provider is not None:
            acknowledge(
                provider,
                {"AwsSolutions-L1": "The AwsCustomResource provider's runtime is chosen and updated by aws-cdk-lib."},
            )
            cfn_lint_ignore(provider, ROLE_DEPENDS_ON)

    def _environment(self) -> dict[str, str]:
        place, loop = self._place, self._loop
        return {
            "VIGIL_STAGE": self._stage,
            "POWERTOOLS_SERVICE_NAME": "vigil-model-loop",
            "MODEL_BUCKET": place.model_bucket.bucket_name,
            "OPERATIONS_TOPIC_ARN": place.operations_topic.topic_arn,
            "MODEL_PACKAGE_GROUP": self.group_name,
            "MODEL_APPROVAL": "Approved" if loop.approval == "auto" else "PendingManualApproval",
            "APPROVAL_TABLE": self.approvals.table_name,
            "DEVICE_STATUS_TABLE": self.device_status.table_name,
            "CANARY_THING_GROUP_ARN": self.canary_thing_group_arn,
            "STAGE_THING_GROUP_ARN": place.stage_thing_group_arn,
            "CANARY_THINGS": ",".join(loop.canary_things),
            "CANARY_WATCH_MINUTES": str(loop.canary_watch_minutes),
            "DELAY_TOLERANCE_S": str(loop.delay_tolerance_s),
            "PROMOTED_VERSION_PARAMETER": self.parameter_name,
            "INFERENCE_IMAGE": place.inference_image,
        }

    def _function(self, step: str) -> None:
        id_ = "".join(part.capitalize() for part in step.split("_"))
        log_group = logs.LogGroup(self, f"{id_}Logs", retention=self._log_retention, removal_policy=self._removal)
        role = iam.Role(
            self,
            f"{id_}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Vigil model loop: {step}",
        )
        log_group.grant_write(role)
        # The component step reads and repackages a model archive in memory.
        big = step == "component"
        function = lambda_.Function(
            self,
            f"{id_}Function",
            description=f"Vigil model loop ({self._stage}): {step}",
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            handler=f"vigil_loop.handlers.{step}_handler",
            code=self._code,
            layers=[self._layer],
            role=role,
            memory_size=1024 if big else 256,
            timeout=cdk.Duration.minutes(5 if big else 1),
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=self._environment(),
        )
        cfn_lint_ignore(function, ROLE_DEPENDS_ON)
        acknowledge(function, RUNTIME_PINNED_BY_LAYER)
        self.functions[step], self.roles[step] = function, role

    def _grant(self, stack: cdk.Stack) -> None:
        place = self._place
        bucket = place.model_bucket

        def arn(service: str, resource: str, name: str, fmt: cdk.ArnFormat = cdk.ArnFormat.SLASH_RESOURCE_NAME) -> str:
            return stack.format_arn(service=service, resource=resource, resource_name=name, arn_format=fmt)

        colon = cdk.ArnFormat.COLON_RESOURCE_NAME
        component = model_component_name(self._stage)
        component_arn = arn("greengrass", "components", component, colon)
        component_versions = arn("greengrass", "components", f"{component}:versions:*", colon)
        deployments = arn("greengrass", "deployments", "*", colon)
        core_devices = [arn("greengrass", "coreDevices", t, colon) for t in self._loop.canary_things]
        # The group's name ends in the stack's id, which cdk-nag cannot render in an
        # acknowledgement: the versions are named by the stage's group-name prefix.
        packages = arn("sagemaker", "model-package", f"vigil-{self._stage}-*/*")
        group = arn("sagemaker", "model-package-group", self.group_name)
        jobs = arn("iot", "job", "*")
        groups = [place.stage_thing_group_arn, self.canary_thing_group_arn]
        output_archives = bucket.arn_for_objects(OUTPUT_ARCHIVES)
        model_archives = bucket.arn_for_objects(MODEL_ARCHIVES)
        bundle_zips = bucket.arn_for_objects(BUNDLE_ZIPS)

        def allow(step: str, sid: str, actions: list[str], resources: list[str]) -> None:
            if step in self.roles:
                self.roles[step].add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))

        allow("current", "ReadPromotedVersion", ["ssm:GetParameter"], [self.parameter_arn])
        allow("current", "ReadCurrentRecipe", ["greengrass:GetComponent"], [component_versions])
        allow("evaluate", "ReadJobOutput", ["s3:GetObject"], [output_archives])
        for step in ("gate", "rollback"):
            allow(step, "NotifyOperations", ["sns:Publish"], [place.operations_topic.topic_arn])
            allow(step, "EncryptForTopic", ["kms:GenerateDataKey", "kms:Decrypt"], [place.operations_key.key_arn])
        allow("register", "ReadGroup", ["sagemaker:DescribeModelPackageGroup"], [group])
        allow("register", "CreateGroupIfMissing", ["sagemaker:CreateModelPackageGroup"], [group])
        allow("register", "RegisterModel", ["sagemaker:CreateModelPackage"], [group, packages])
        allow("wait_for_approval", "StoreToken", ["dynamodb:PutItem"], [self.approvals.table_arn])
        allow("wait_for_approval", "ReadApproval", ["sagemaker:DescribeModelPackage"], [packages])
        allow("resume", "TakeToken", ["dynamodb:GetItem", "dynamodb:DeleteItem"], [self.approvals.table_arn])
        allow("component", "ReadModel", ["s3:GetObject"], [model_archives])
        allow("component", "WriteBundle", ["s3:PutObject"], [bundle_zips])
        allow("component", "ListVersions", ["greengrass:ListComponentVersions"], [component_arn])
        allow("component", "CreateVersion", ["greengrass:CreateComponentVersion"], [component_arn, component_versions])
        for step in ("canary", "promote", "rollback"):
            # ListDeployments has no resource-level permissions (Service Authorization Reference).
            allow(step, "ListDeployments", ["greengrass:ListDeployments"], ["*"])
            allow(step, "ReadDeployment", ["greengrass:GetDeployment"], [deployments])
            allow(step, "Deploy", ["greengrass:CreateDeployment"], groups if step != "promote" else groups[:1])
            # CreateDeployment runs as an IoT job the caller creates and manages: the job and
            # thing-group actions of the "DeployDevTools" statement in awsdocs/aws-iot-greengrass-v2-
            # developer-guide doc_source/provision-minimal-iam-policy.md (its shadow and DescribeThing
            # actions serve a single-thing target; the loop targets thing groups only).
            allow(
                step,
                "DeploymentJob",
                ["iot:CreateJob", "iot:DescribeJob", "iot:UpdateJob", "iot:CancelJob"],
                [jobs, *(groups if step != "promote" else groups[:1])],
            )
            allow(step, "DescribeTargets", ["iot:DescribeThingGroup"], groups if step != "promote" else groups[:1])
        allow("promote", "RecordPromotedVersion", ["ssm:PutParameter"], [self.parameter_arn])
        allow("check", "EffectiveDeployments", ["greengrass:ListEffectiveDeployments"], core_devices)
        allow("check", "CoreDeviceHealth", ["greengrass:GetCoreDevice"], core_devices)
        allow("check", "ReadTelemetry", ["dynamodb:GetItem"], [self.device_status.table_arn])
        # The cameras read a candidate's zip with the token exchange role: infra/model_component.py grants it.

        findings = {
            "AwsSolutions-IAM5[Resource::*]": "X-Ray PutTraceSegments/PutTelemetryRecords and greengrass:"
            "ListDeployments have no resource-level permissions.",
            wildcard_resource(self, output_archives): "Each training job writes its output archive under its own "
            "job-named key below models/.",
            wildcard_resource(self, model_archives): "Each training job writes its model archive under its own "
            "job-named key below models/.",
            wildcard_resource(self, bundle_zips): "The component step writes each bundle beside its job's model "
            "archive, below models/.",
            wildcard_resource(self, packages): "Model package versions are numbered by SageMaker within this "
            "stage's group (named vigil-<stage>-<stack id>).",
            wildcard_resource(self, deployments): "Deployment ids are generated by Greengrass when the loop deploys.",
            wildcard_resource(self, jobs): "Greengrass names the IoT job of each deployment itself.",
            wildcard_resource(self, component_versions): "Versions of this stage's one model component; the "
            "loop numbers them itself.",
        }
        for role in self.roles.values():
            acknowledge(role, findings)

    def _approval_rule(self) -> events.Rule:
        """The registry's approval event for this stage's group -> the resume Lambda.

        Event shape (source ``aws.sagemaker``, detail-type "SageMaker Model Package State
        Change", ``detail.ModelPackageGroupName``, ``detail.ModelApprovalStatus``):
        https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-model-package
        """
        return events.Rule(
            self,
            "ApprovalRule",
            description=f"Vigil {self._stage}: a model package of the stage's group approved or rejected",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={
                    "ModelPackageGroupName": [self.group_name],
                    "ModelApprovalStatus": ["Approved", "Rejected"],
                },
            ),
            targets=[targets.LambdaFunction(self.functions["resume"], retry_attempts=4)],
        )

    def bind(self, state_machine: sfn.StateMachine) -> None:
        """Grants that name the state machine: its SNS publishes to the encrypted
        operations topic, and SendTask* for the approval steps. In policies of their own,
        so the functions (which the machine depends on) do not depend on the machine."""
        self._place.operations_key.grant(state_machine, "kms:GenerateDataKey", "kms:Decrypt")
        # LambdaInvoke grants each function's ARN and its versions (<arn>:*).
        acknowledge(
            state_machine,
            {
                wildcard_resource(self, f"{function.function_arn}:*"): "aws-cdk-lib's LambdaInvoke grants the "
                "step's function and its versions; nothing else."
                for function in self.functions.values()
            },
        )
        for step in ("wait_for_approval", "resume"):
            if step in self.roles:
                iam.Policy(
                    self,
                    f"{step.title().replace('_', '')}SendTask",
                    roles=[self.roles[step]],
                    statements=[
                        iam.PolicyStatement(
                            actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                            resources=[state_machine.state_machine_arn],
                        )
                    ],
                )

    # States --------------------------------------------------------------------------

    def _invoke(
        self, id_: str, step: str, payload: dict | str, result: dict[str, str], result_path: str
    ) -> tasks.LambdaInvoke:
        """A step's task: ``payload`` an object, or a JSONPath whose value is the event
        (handlers.py says which); ``result`` picks keys of the handler's return value."""
        task = tasks.LambdaInvoke(
            self,
            id_,
            lambda_function=self.functions[step],
            payload=sfn.TaskInput.from_json_path_at(payload)
            if isinstance(payload, str)
            else sfn.TaskInput.from_object(payload),
            result_selector={f"{key}.$": f"$.Payload.{value}" for key, value in result.items()},
            result_path=result_path,
            retry_on_service_exceptions=True,
        )
        return task

    def _states(self) -> tuple[sfn.IChainable, int]:
        loop, topic = self._loop, self._place.operations_topic
        notify = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=topic,
            subject=f"Vigil {self._stage}: the model loop failed",
            message=sfn.TaskInput.from_text(
                sfn.JsonPath.format(
                    "{}: {}", sfn.JsonPath.string_at("$.error.Error"), sfn.JsonPath.string_at("$.error.Cause")
                )
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        failed = notify.next(sfn.Fail(self, "LoopFailed", error="LoopFailed", cause_path="$.error.Cause"))

        def guarded(task: sfn.TaskStateBase) -> sfn.TaskStateBase:
            task.add_catch(failed, errors=["States.ALL"], result_path="$.error")
            return task

        # Before training: the promoted version's bundle, for the job's "current" channel.
        self.current_step = guarded(
            self._invoke(
                "CurrentModel",
                "current",
                {},
                {"current_model_uri": "current_model_uri", "current_version": "current_version"},
                CURRENT_RESULT_PATH,
            )
        )
        evaluate = guarded(
            tasks.LambdaInvoke(
                self,
                "Evaluate",
                lambda_function=self.functions["evaluate"],
                payload=sfn.TaskInput.from_object({"job_name": sfn.JsonPath.string_at("$.TrainingJobName")}),
                result_selector={"comparison.$": "$.Payload"},
                result_path="$",
                retry_on_service_exceptions=True,
            )
        )
        gate = guarded(
            self._invoke(
                "Gate",
                "gate",
                "$.comparison",  # the handler's event is the comparison itself
                {"passed": "passed", "reasons": "reasons"},
                "$.gate",
            )
        )
        # The gate Lambda has published the reasons to the operations topic already.
        gate_failed = sfn.Fail(self, "GateFailed", error="GateFailed", cause_path="States.JsonToString($.gate.reasons)")
        register = guarded(
            self._invoke(
                "Register",
                "register",
                "$.comparison",  # the handler's event is the comparison itself
                {"model_package_arn": "model_package_arn", "approval": "approval"},
                "$.registered",
            )
        )
        approval = self._approval_state(failed)
        component = guarded(
            self._invoke(
                "Component",
                "component",
                {"model_data_url": sfn.JsonPath.string_at("$.comparison.model_data_url")},
                {
                    "component_name": "component_name",
                    "component_version": "component_version",
                    "sha256": "sha256",
                    "model_sha256": "model_sha256",
                },
                "$.component",
            )
        )
        canary = guarded(
            self._invoke(
                "Canary",
                "canary",
                {"component_version": sfn.JsonPath.string_at("$.component.component_version")},
                {
                    "deployment_id": "deployment_id",
                    "started_at": "started_at",
                    "previous_model_version": "previous_model_version",
                },
                "$.canary",
            )
        )
        # CreateComponentVersion returns before the version is DEPLOYABLE (creation is
        # asynchronous; docs/research/model-loop-design.md section 2): a deployment naming it
        # too early is refused, so the canary step tries again for about 7 minutes.
        canary.add_retry(
            errors=list(NOT_YET_DEPLOYABLE),
            interval=cdk.Duration.seconds(30),
            max_attempts=4,
            backoff_rate=2,
        )
        start_watch = sfn.Pass(self, "StartWatch", result=sfn.Result.from_object({"polls": 0}), result_path="$.watch")
        wait = sfn.Wait(self, "Watch", time=sfn.WaitTime.duration(cdk.Duration.seconds(loop.canary_poll_interval_s)))
        count = sfn.Pass(
            self,
            "CountPoll",
            parameters={"polls": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.watch.polls"), 1)},
            result_path="$.watch",
        )
        # Devices report the model file's digest (telemetry model.sha256), not the zip's.
        check = guarded(
            self._invoke(
                "Check",
                "check",
                {
                    "deployment_id": sfn.JsonPath.string_at("$.canary.deployment_id"),
                    "model_sha256": sfn.JsonPath.string_at("$.component.model_sha256"),
                    "started_at": sfn.JsonPath.string_at("$.canary.started_at"),
                },
                {"state": "state", "reasons": "reasons"},
                "$.check",
            )
        )
        promote = guarded(
            self._invoke(
                "Promote",
                "promote",
                {"component_version": sfn.JsonPath.string_at("$.component.component_version")},
                {"deployment_id": "deployment_id", "promoted_version": "promoted_version"},
                "$.promoted",
            )
        )
        rollback = guarded(
            self._invoke(
                "Rollback",
                "rollback",
                {"reasons": sfn.JsonPath.list_at("$.check.reasons")},
                {"deployment_id": "deployment_id"},
                "$.rollback",
            )
        )
        out_of_polls = sfn.Pass(
            self,
            "OutOfPolls",
            parameters={
                "state": "FAILED",
                "reasons": sfn.JsonPath.array(
                    sfn.JsonPath.format(
                        "the canary was still not judged after {} checks", sfn.JsonPath.string_at("$.watch.polls")
                    )
                ),
            },
            result_path="$.check",
        )
        rollback.next(
            sfn.Fail(self, "CanaryFailed", error="CanaryFailed", cause_path="States.JsonToString($.check.reasons)")
        )
        promote.next(sfn.Succeed(self, "Promoted"))
        judge = (
            sfn.Choice(self, "CanaryHealthy?")
            .when(sfn.Condition.string_equals("$.check.state", "HEALTHY"), promote)
            .when(sfn.Condition.string_equals("$.check.state", "FAILED"), rollback)
            .when(sfn.Condition.number_less_than("$.watch.polls", loop.max_canary_polls), wait)
            .otherwise(out_of_polls.next(rollback))
        )
        start_watch.next(wait)
        wait.next(count).next(check).next(judge)
        chain = evaluate.next(gate).next(
            sfn.Choice(self, "GatePassed?")
            .when(sfn.Condition.boolean_equals("$.gate.passed", True), register)
            .otherwise(gate_failed)
        )
        register.next(approval).next(component).next(canary).next(start_watch)
        approval_s = loop.approval_timeout_hours * 3600 if loop.approval == "manual" else 0
        watch_s = loop.max_canary_polls * (loop.canary_poll_interval_s + 60)
        # Nine Lambda steps of at most 5 minutes each (with retries) on top.
        return chain, approval_s + watch_s + 9 * 900

    def _approval_state(self, failed: sfn.IChainable) -> sfn.IChainable:
        if self._loop.approval == "auto":
            return sfn.Pass(
                self,
                "AutoApproved",
                comment="This stage registers models as Approved: no one is asked",
                parameters={"approval": sfn.JsonPath.string_at("$.registered.approval")},
                result_path="$.approved",
            )
        wait = tasks.LambdaInvoke(
            self,
            "WaitForApproval",
            lambda_function=self.functions["wait_for_approval"],
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "model_package_arn": sfn.JsonPath.string_at("$.registered.model_package_arn"),
                    "task_token": sfn.JsonPath.task_token,
                }
            ),
            task_timeout=sfn.Timeout.duration(cdk.Duration.hours(self._loop.approval_timeout_hours)),
            result_path="$.approved",
            retry_on_service_exceptions=True,
        )
        rejected = tasks.SnsPublish(
            self,
            "NotifyRejected",
            topic=self._place.operations_topic,
            subject=f"Vigil {self._stage}: model rejected in the registry",
            message=sfn.TaskInput.from_json_path_at("$.registered.model_package_arn"),
            result_path=sfn.JsonPath.DISCARD,
        ).next(sfn.Fail(self, "Rejected", error=REJECTED_ERROR, cause_path="$.error.Cause"))
        wait.add_catch(rejected, errors=[REJECTED_ERROR], result_path="$.error")
        wait.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        return wait
