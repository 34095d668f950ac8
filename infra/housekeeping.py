"""What a second deploy and a destroy need: log groups adopted if they already exist,
and IoT policies (and listed things) cleared of the certificates the stack did not attach.
The custom resources' function is ``infra/housekeeping/handler.py``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.alerting import ARCHITECTURE, PYTHON_RUNTIME
from infra.device_policy import iot_arn
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource

HANDLER_DIR = Path(__file__).resolve().parent / "housekeeping"
LOG_GROUP_TYPE = "Custom::VigilLogGroup"
POLICY_CLEANUP_TYPE = "Custom::VigilPolicyCleanup"
PROMOTED_MODEL_VERSION_TYPE = "Custom::VigilPromotedModelVersion"
MODEL_SEED_ARTIFACT_TYPE = "Custom::VigilModelSeedArtifact"


class Housekeeping(Construct):
    """One function behind two custom resource types (see the handler's docstring).

    ``log_group(...)`` stands in for a fixed-name ``logs.LogGroup``; ``clean_up(...)``
    detaches the stage's policies and things from their certificates on stack delete,
    then deletes the policies (which CloudFormation retains, so it never races that).

    Attributes: ``function``, ``role``, ``log_groups`` (name -> ``cdk.CustomResource``),
    ``cleanup`` (the policy cleanup resource, or None).
    """

    def __init__(self, scope: Construct, id_: str, *, log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, id_)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Vigil housekeeping: adopts Greengrass log groups, clears stage policies on delete",
        )
        own_logs = logs.LogGroup(self, "Logs", retention=log_retention)
        own_logs.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Vigil redeploy/destroy housekeeping (custom resources)",
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(HANDLER_DIR), exclude=["__pycache__", "*.pyc"]),
            role=self.role,
            memory_size=128,
            # A detached policy may take five minutes to become deletable.
            timeout=cdk.Duration.minutes(10),
            log_group=own_logs,
        )
        cfn_lint_ignore(self.function, ROLE_DEPENDS_ON)
        acknowledge(
            self.function,
            {"AwsSolutions-L1": "python3.13 like the stack's other functions (one tested Python; raised together)."},
        )
        self.log_groups: dict[str, cdk.CustomResource] = {}
        self.cleanup: cdk.CustomResource | None = None

    def log_group(self, id_: str, *, name: str, retention_days: int, delete_on_destroy: bool) -> str:
        """A log group ``name`` with ``retention_days``, created if absent; returns its ARN (no ``:*``)."""
        arn = cdk.Stack.of(self).format_arn(
            service="logs", resource="log-group", resource_name=name, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:DeleteLogGroup"], resources=[arn]
            )
        )
        self.log_groups[name] = cdk.CustomResource(
            self,
            id_,
            service_token=self.function.function_arn,
            resource_type=LOG_GROUP_TYPE,
            properties={
                "LogGroupName": name,
                "RetentionInDays": retention_days,
                "DeleteOnStackDelete": "true" if delete_on_destroy else "false",
            },
        )
        return arn

    def promoted_model_version(self, id_: str, *, parameter_name: str, seed_version: str) -> cdk.CustomResource:
        """The model component version to deploy (``get_att_string("Version")``): the one in
        SSM ``parameter_name``, or ``seed_version`` written there on the first deploy.

        CloudFormation calls the function again only when a property changes: add one
        that changes whenever the deployment would (see ``infra/edge_deployment.py``).
        """
        arn = cdk.Stack.of(self).format_arn(
            service="ssm", resource="parameter", resource_name=parameter_name.lstrip("/")
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["ssm:GetParameter", "ssm:PutParameter"], resources=[arn]))
        return cdk.CustomResource(
            self,
            id_,
            service_token=self.function.function_arn,
            resource_type=PROMOTED_MODEL_VERSION_TYPE,
            properties={"ParameterName": parameter_name, "SeedVersion": seed_version},
        )

    def seed_artifact(
        self, id_: str, *, source_bucket: str, source_key: str, bucket: s3.IBucket, key: str
    ) -> cdk.CustomResource:
        """Copy the object ``source_bucket``/``source_key`` (a CDK asset) to ``bucket``/``key``;
        ``get_att_string("Uri")`` is ``s3://<bucket>/<key>``. The copy is kept on delete."""
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{source_bucket}/{source_key}"]
            )
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(key)]))
        return cdk.CustomResource(
            self,
            id_,
            service_token=self.function.function_arn,
            resource_type=MODEL_SEED_ARTIFACT_TYPE,
            properties={
                "SourceBucket": source_bucket,
                "SourceKey": source_key,
                "Bucket": bucket.bucket_name,
                "Key": key,
            },
        )

    def clean_up(self, policies: Sequence[iot.CfnPolicy], things: Sequence[iot.CfnThing]) -> cdk.CustomResource:
        """On stack delete: detach ``things`` from their certificates, ``policies`` from
        every target, and delete the policies (retained by CloudFormation from now on)."""
        for policy in policies:
            policy.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        policy_arns = [iot_arn(f"policy/{p.ref}") for p in policies]
        thing_arns = [iot_arn(f"thing/{t.ref}") for t in things]
        any_cert = iot_arn("cert/*")
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "iot:ListTargetsForPolicy",
                    "iot:ListPolicyVersions",
                    "iot:DeletePolicyVersion",
                    "iot:DeletePolicy",
                    "iot:DetachPolicy",
                ],
                resources=policy_arns,
            )
        )
        # DetachPolicy and DetachThingPrincipal are also checked against the certificate.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["iot:DetachPolicy", "iot:DetachThingPrincipal"], resources=[any_cert])
        )
        if thing_arns:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["iot:ListThingPrincipals", "iot:DetachThingPrincipal"], resources=thing_arns
                )
            )
        acknowledge(
            self.role,
            {
                wildcard_resource(self, any_cert): "Certificates attached by hand or by fleet provisioning are not "
                "known to the stack; the same calls are limited to this stage's policies and things."
            },
        )
        self.cleanup = cdk.CustomResource(
            self,
            "PolicyCleanup",
            service_token=self.function.function_arn,
            resource_type=POLICY_CLEANUP_TYPE,
            properties={"PolicyNames": [p.ref for p in policies], "ThingNames": [t.ref for t in things]},
        )
        return self.cleanup
