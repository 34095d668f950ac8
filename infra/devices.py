"""Devices: things, their group, their IoT policy, the token exchange role and fleet provisioning."""

from __future__ import annotations

from typing import Any, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

from edge_component.contracts.topics import ALERT_CHANNEL, TELEMETRY_CHANNEL, topic_template
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource
from infra.storage import EVIDENCE_SNAPSHOT_PREFIX

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
    provisioning role and the claim certificates' IoT policy. Devices that join by
    claim add nothing to the template, whatever the fleet's size.

    Attributes:
        thing_group: the ``iot.CfnThingGroup``; ``thing_group_name``/``thing_group_arn``.
        things: the listed ``iot.CfnThing``s, by name.
        policy: the device ``iot.CfnPolicy``; ``policy_name``.
        token_exchange_role: what components get through the token exchange service.
        role_alias: the ``iot.CfnRoleAlias``; ``role_alias_name``.
        provisioning_template / claim_policy: fleet provisioning, or None.
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
        if fleet_provisioning:
            self._fleet_provisioning()

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

    def _fleet_provisioning(self) -> None:
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
        # certificate chooses only its thing name.
        template_body = {
            "Parameters": {
                "ThingName": {"Type": "String"},
                "AWS::IoT::Certificate::Id": {"Type": "String"},
            },
            "Resources": {
                "thing": {
                    "Type": "AWS::IoT::Thing",
                    "OverrideSettings": {"AttributePayload": "MERGE", "ThingGroups": "MERGE"},
                    "Properties": {
                        "ThingName": {"Ref": "ThingName"},
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
