"""Devices: things, their group, their IoT policy, the token exchange role and fleet provisioning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

from edge_component.contracts.topics import ALERT_CHANNEL, TELEMETRY_CHANNEL, topic_template
from infra.alerting import ARCHITECTURE, PYTHON_RUNTIME, local_python_code
from infra.config import default_thing_name_prefix, provisioned_thing_pattern
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource
from infra.packaging import build_dir_for, write_content_addressed
from infra.provisioning_hook.hook import RULES_FILE_NAME, THING_NAME_PARAMETER
from infra.storage import EVIDENCE_SNAPSHOT_PREFIX

HOOK_DIR = Path(__file__).resolve().parent / "provisioning_hook"
HOOK_PAYLOAD_VERSION = "2020-04-01"

# IoT policy variable: the thing the connecting certificate belongs to. CDK renders
# ARNs with Fn::Join, never Fn::Sub, so this stays literal in the template.
THING = "${iot:Connection.Thing.ThingName}"
# The same thing name as the IoT credentials provider passes it to IAM.
CREDENTIALS_THING = "${credentials-iot:ThingName}"


def iot_arn(resource: str) -> str:
    """``arn:<partition>:iot:<region>:<account>:<resource>``."""
    return f"arn:{cdk.Aws.PARTITION}:iot:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:{resource}"


def greengrass_arn(resource: str, account: str = cdk.Aws.ACCOUNT_ID) -> str:
    return f"arn:{cdk.Aws.PARTITION}:greengrass:{cdk.Aws.REGION}:{account}:{resource}"


def device_policy_document(*, role_alias_arn: str, component_names: Sequence[str]) -> dict[str, Any]:
    """The IoT policy of every camera: only its own identity, topics, shadows and jobs.

    Follows AWS's minimal Greengrass core device policy, with the thing name replaced by
    the policy variable so one policy serves the whole fleet. Greengrass connects as
    ``<thing>`` and, past 50 subscriptions, ``<thing>#<n>``; nothing else may connect.
    """
    own_things = f"$aws/things/{THING}"
    greengrass_topics = [
        f"{own_things}/greengrass/health/json",
        f"{own_things}/greengrassv2/health/json",
        f"{own_things}/jobs/*",
        f"{own_things}/shadow/*",
    ]
    vigil_topics = [topic_template(THING, ALERT_CHANNEL), topic_template(THING, TELEMETRY_CHANNEL)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectAsOwnThing",
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": [iot_arn(f"client/{THING}"), iot_arn(f"client/{THING}#*")],
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Sid": "PublishOwnTopics",
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": [iot_arn(f"topic/{t}") for t in vigil_topics + greengrass_topics],
            },
            {
                "Sid": "ReceiveGreengrassTopics",
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": [iot_arn(f"topic/{t}") for t in greengrass_topics],
            },
            {
                "Sid": "SubscribeGreengrassTopics",
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [iot_arn(f"topicfilter/{own_things}/jobs/*"), iot_arn(f"topicfilter/{own_things}/shadow/*")],
            },
            {
                "Sid": "OwnShadow",
                "Effect": "Allow",
                "Action": ["iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"],
                "Resource": iot_arn(f"thing/{THING}"),
            },
            {
                "Sid": "TokenExchange",
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": role_alias_arn,
            },
            {
                "Sid": "ComponentArtifacts",
                "Effect": "Allow",
                "Action": "greengrass:GetComponentVersionArtifact",
                "Resource": [greengrass_arn(f"components:{name}:versions:*") for name in component_names]
                + [greengrass_arn("components:aws.greengrass.*:versions:*", account="aws")],
            },
            {
                "Sid": "ResolveComponents",
                "Effect": "Allow",
                # No resource-level permissions exist for this action.
                "Action": "greengrass:ResolveComponentCandidates",
                "Resource": "*",
            },
            {
                "Sid": "Deployments",
                "Effect": "Allow",
                "Action": "greengrass:GetDeploymentConfiguration",
                "Resource": greengrass_arn("deployments:*"),
            },
            {
                "Sid": "OwnCoreDevice",
                "Effect": "Allow",
                "Action": "greengrass:ListThingGroupsForCoreDevice",
                "Resource": greengrass_arn(f"coreDevices:{THING}"),
            },
        ],
    }


class Devices(Construct):
    """IoT identity and permissions of the stage's cameras.

    Creates: a thing group; one thing per listed name and its group membership; the
    device IoT policy; the Greengrass token exchange role and its role alias; and, when
    ``fleet_provisioning`` is on, a fleet-provisioning-by-claim template, its
    provisioning role, the claim certificates' IoT policy and the template's
    pre-provisioning hook. Devices that join by claim add nothing to the template,
    whatever the fleet's size.

    The hook lets a claim register only a thing name matching
    ``<thing_name_prefix>[a-z0-9-]{1,64}`` (prefix default ``vigil-<stage>-``) that is
    neither in ``denied_thing_names`` nor one of the listed things (a claim must never
    take over a camera the stack created).

    Attributes:
        thing_group: the ``iot.CfnThingGroup``; ``thing_group_name``/``thing_group_arn``.
        things: the listed ``iot.CfnThing``s, by name.
        policy: the device ``iot.CfnPolicy``; ``policy_name``.
        token_exchange_role: what components get through the token exchange service.
        role_alias: the ``iot.CfnRoleAlias``; ``role_alias_name``.
        provisioning_template / claim_policy: fleet provisioning, or None.
        hook_function / hook_permission: the pre-provisioning hook and IoT's permission
            to invoke it, or None; ``hook_rules``: what the hook enforces
            (``{"thing_name_pattern": str, "denied_thing_names": [str]}``), or None.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        thing_names: Sequence[str],
        component_names: Sequence[str],
        evidence_bucket: s3.IBucket,
        fleet_provisioning: bool,
        log_retention: logs.RetentionDays,
        thing_name_prefix: str | None = None,
        denied_thing_names: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id_)
        stage_name = cdk.Stage.of(self).stage_name or "vigil"

        self.thing_group = iot.CfnThingGroup(
            self,
            "ThingGroup",
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description=f"Vigil cameras of stage {stage_name}"
            ),
        )
        self.thing_group_name: str = self.thing_group.ref
        self.thing_group_arn: str = self.thing_group.attr_arn

        # Components may read their artifacts, write their logs (granted by the edge
        # deployment, which owns both) and put snapshots under their own thing's prefix.
        self.token_exchange_role = iam.Role(
            self,
            "TokenExchangeRole",
            assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
            description="Greengrass token exchange role of Vigil cameras",
        )
        snapshots = evidence_bucket.arn_for_objects(f"{EVIDENCE_SNAPSHOT_PREFIX}/{CREDENTIALS_THING}/*")
        self.token_exchange_role.add_to_policy(
            iam.PolicyStatement(sid="PutOwnSnapshots", actions=["s3:PutObject"], resources=[snapshots])
        )
        acknowledge(
            self.token_exchange_role,
            {
                wildcard_resource(self, snapshots): "Snapshots have per-event keys; the prefix is pinned to the "
                "calling device's own thing name.",
            },
        )
        self.role_alias = iot.CfnRoleAlias(
            self, "RoleAlias", role_arn=self.token_exchange_role.role_arn, credential_duration_seconds=3600
        )
        self.role_alias_name: str = self.role_alias.ref

        self.policy = iot.CfnPolicy(
            self,
            "DevicePolicy",
            policy_document=device_policy_document(
                role_alias_arn=self.role_alias.attr_role_alias_arn, component_names=component_names
            ),
        )
        self.policy_name: str = self.policy.ref

        self.things: dict[str, iot.CfnThing] = {}
        if thing_names:
            self._listed_things(thing_names, log_retention)

        self.provisioning_template: iot.CfnProvisioningTemplate | None = None
        self.claim_policy: iot.CfnPolicy | None = None
        self.hook_function: lambda_.Function | None = None
        self.hook_permission: lambda_.CfnPermission | None = None
        self.hook_rules: dict[str, Any] | None = None
        if fleet_provisioning:
            self.hook_rules = {
                "thing_name_pattern": provisioned_thing_pattern(
                    thing_name_prefix or default_thing_name_prefix(stage_name)
                ),
                "denied_thing_names": sorted({*denied_thing_names, *thing_names}),
            }
            self.hook_function = self._provisioning_hook(
                self.hook_rules, log_retention, thing_name_prefix or default_thing_name_prefix(stage_name)
            )
            self._fleet_provisioning(self.hook_function)

    def _provisioning_hook(
        self, rules: dict[str, Any], log_retention: logs.RetentionDays, thing_name_prefix: str
    ) -> lambda_.Function:
        """The pre-provisioning hook (``provisioning_hook/hook.py``), its rules bundled beside it."""
        # The rules travel in the bundle, not in environment variables (4 KB in all):
        # a deny list may be long. The bundle is hashed, so new rules make new code.
        rules_file = write_content_addressed(
            json.dumps(rules, indent=2, sort_keys=True).encode(), build_dir_for(self), RULES_FILE_NAME
        )
        log_group = logs.LogGroup(self, "ProvisioningHookLogs", retention=log_retention)
        # Its own role: its logs, and whether a thing of the stage's names already exists
        # (a claim must not take over a registered thing).
        role = iam.Role(
            self,
            "ProvisioningHookRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Vigil fleet provisioning hook: its own logs, and DescribeThing on this stage's names",
        )
        log_group.grant_write(role)
        stage_things = cdk.Stack.of(self).format_arn(
            service="iot", resource="thing", resource_name=f"{thing_name_prefix}*"
        )
        role.add_to_policy(iam.PolicyStatement(actions=["iot:DescribeThing"], resources=[stage_things]))
        function = lambda_.Function(
            self,
            "ProvisioningHook",
            description="Allows a claim to register only this stage's thing names",
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            handler="hook.handler",
            code=local_python_code(HOOK_DIR, rules_file.path),
            role=role,
            memory_size=128,
            # The decision takes milliseconds; a stuck call should fail (a refusal) fast.
            timeout=cdk.Duration.seconds(5),
            log_group=log_group,
        )
        cfn_lint_ignore(function, ROLE_DEPENDS_ON)
        acknowledge(
            function,
            {"AwsSolutions-L1": "python3.13 like the alert Lambda, whose Powertools layer pins it: the stack's "
             "functions share one tested Python; raise them together."},
        )
        acknowledge(
            role,
            {wildcard_resource(self, stage_things): "DescribeThing (read-only) on the things this stage's claims may "
             "register: the hook checks the requested name is not already a registered thing."},
        )
        return function

    def _listed_things(self, thing_names: Sequence[str], log_retention: logs.RetentionDays) -> None:
        membership_logs = logs.LogGroup(self, "MembershipLogs", retention=log_retention)
        membership_role = iam.Role(
            self,
            "MembershipRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Adds Vigil's listed things to their thing group",
        )
        for name in thing_names:
            thing = iot.CfnThing(self, f"Thing-{name}", thing_name=name)
            self.things[name] = thing
            call = cr.AwsSdkCall(
                service="IoT",
                action="AddThingToThingGroup",
                parameters={"thingName": name, "thingGroupName": self.thing_group_name},
                physical_resource_id=cr.PhysicalResourceId.of(f"{name}@group"),
            )
            membership = cr.AwsCustomResource(
                self,
                f"Membership-{name}",
                on_create=call,
                on_update=call,
                on_delete=cr.AwsSdkCall(
                    service="IoT",
                    action="RemoveThingFromThingGroup",
                    parameters={"thingName": name, "thingGroupName": self.thing_group_name},
                ),
                role=membership_role,
                log_group=membership_logs,
                install_latest_aws_sdk=False,
            )
            membership.node.add_dependency(thing)
        # Both resources are checked: any thing, but only into or out of this group. Naming
        # each thing would grow the policy with the list past IAM's inline size limit.
        any_thing = iot_arn("thing/*")
        membership_role.add_to_policy(
            iam.PolicyStatement(
                actions=["iot:AddThingToThingGroup", "iot:RemoveThingFromThingGroup"],
                resources=[self.thing_group_arn, any_thing],
            )
        )
        # The provider function is the CDK's own singleton; the stack owns its role.
        provider = cdk.Stack.of(self).node.try_find_child("AWS679f53fac002430cb0da5b7982bd2287")
        membership_role.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaBasicExecutionRole")
        )
        acknowledge(
            membership_role,
            {
                wildcard_resource(self, any_thing): "Membership changes are limited to this stage's thing group, "
                "which the same statement names.",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]":
                "Lets the CDK-provided AwsCustomResource function write its own logs; nothing else.",
            },
        )
        if provider is not None:
            acknowledge(
                provider,
                {"AwsSolutions-L1": "The AwsCustomResource provider's runtime is chosen and updated by aws-cdk-lib."},
            )
            cfn_lint_ignore(provider, ROLE_DEPENDS_ON)

    def _fleet_provisioning(self, hook: lambda_.IFunction) -> None:
        provisioning_role = iam.Role(
            self,
            "ProvisioningRole",
            assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSIoTThingsRegistration")
            ],
            description="Registers Vigil cameras that join by fleet provisioning",
        )
        acknowledge(
            provisioning_role,
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSIoTThingsRegistration]":
                "AWS's documented policy for fleet provisioning roles; IoT assumes it only while running "
                "this stack's template.",
            },
        )
        # The template pins the thing group and the policy: a device holding the claim
        # certificate chooses only its thing name, and the hook checks that.
        template_body = {
            "Parameters": {
                THING_NAME_PARAMETER: {"Type": "String"},
                "AWS::IoT::Certificate::Id": {"Type": "String"},
            },
            "Resources": {
                "thing": {
                    "Type": "AWS::IoT::Thing",
                    "OverrideSettings": {"AttributePayload": "MERGE", "ThingGroups": "MERGE"},
                    "Properties": {
                        "ThingName": {"Ref": THING_NAME_PARAMETER},
                        "AttributePayload": {},
                        "ThingGroups": [self.thing_group_name],
                    },
                },
                "certificate": {
                    "Type": "AWS::IoT::Certificate",
                    "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"},
                },
                "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": self.policy_name}},
            },
        }
        self.provisioning_template = iot.CfnProvisioningTemplate(
            self,
            "ProvisioningTemplate",
            description="Vigil cameras joining by claim",
            enabled=True,
            provisioning_role_arn=provisioning_role.role_arn,
            template_body=cdk.Stack.of(self).to_json_string(template_body),
            pre_provisioning_hook=iot.CfnProvisioningTemplate.ProvisioningHookProperty(
                target_arn=hook.function_arn, payload_version=HOOK_PAYLOAD_VERSION
            ),
        )
        # Only IoT, only for this template, only in this account (confused deputy).
        self.hook_permission = lambda_.CfnPermission(
            self,
            "ProvisioningHookInvokePermission",
            action="lambda:InvokeFunction",
            function_name=hook.function_arn,
            principal="iot.amazonaws.com",
            source_arn=self.provisioning_template.attr_template_arn,
            source_account=cdk.Aws.ACCOUNT_ID,
        )
        template_name = self.provisioning_template.ref
        provisioning_topics = [
            "$aws/certificates/create/*",
            f"$aws/provisioning-templates/{template_name}/provision/*",
        ]
        self.claim_policy = iot.CfnPolicy(
            self,
            "ClaimPolicy",
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ConnectToProvision",
                        "Effect": "Allow",
                        "Action": "iot:Connect",
                        # A claim certificate has no thing yet, so no thing policy variable.
                        "Resource": iot_arn("client/*"),
                    },
                    {
                        "Sid": "ProvisioningTopics",
                        "Effect": "Allow",
                        "Action": ["iot:Publish", "iot:Receive"],
                        "Resource": [iot_arn(f"topic/{t}") for t in provisioning_topics],
                    },
                    {
                        "Sid": "ProvisioningTopicFilters",
                        "Effect": "Allow",
                        "Action": "iot:Subscribe",
                        "Resource": [iot_arn(f"topicfilter/{t}") for t in provisioning_topics],
                    },
                ],
            },
        )
