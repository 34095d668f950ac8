"""Devices: things, their group, their IoT policy, the token exchange role and its role
alias; fleet provisioning (:mod:`infra.fleet_provisioning`) when the stage has it on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import StageThings, default_thing_name_prefix, provisioned_thing_pattern
from infra.device_policy import CREDENTIALS_THING, device_policy_document, iot_arn
from infra.fleet_provisioning import add_fleet_provisioning, add_provisioning_hook
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource
from infra.storage import EVIDENCE_SNAPSHOT_PREFIX


class Devices(Construct):
    """IoT identity and permissions of the stage's cameras.

    Creates: a thing group; one thing per listed name and its group membership; the
    device IoT policy; the Greengrass token exchange role and its role alias (with
    ``upload_snapshots``, allowed ``s3:PutObject`` on ``snapshots/<its thing>/*`` of
    ``evidence_bucket``, and nothing there otherwise); and, when
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
        stage_things: the names the policy (and the stage's alert rule) admit.
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
        upload_snapshots: bool = False,
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

        # Components may read their artifacts and write their logs (granted by the edge
        # deployment, which owns both) and, with snapshot uploads on, put snapshots under
        # their own thing's prefix.
        self.token_exchange_role = iam.Role(
            self,
            "TokenExchangeRole",
            assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
            description="Greengrass token exchange role of Vigil cameras",
        )
        if upload_snapshots:
            self._allow_snapshot_uploads(evidence_bucket)
        self.role_alias = iot.CfnRoleAlias(
            self, "RoleAlias", role_arn=self.token_exchange_role.role_arn, credential_duration_seconds=3600
        )
        self.role_alias_name: str = self.role_alias.ref

        prefix = thing_name_prefix or default_thing_name_prefix(stage_name)
        self.stage_things = StageThings.of(tuple(thing_names), prefix if fleet_provisioning else None)
        self.policy = iot.CfnPolicy(
            self,
            "DevicePolicy",
            policy_document=device_policy_document(
                role_alias_arn=self.role_alias.attr_role_alias_arn,
                component_names=component_names,
                things=self.stage_things,
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
            self.hook_function = add_provisioning_hook(
                self, self.hook_rules, log_retention, thing_name_prefix or default_thing_name_prefix(stage_name)
            )
            made = add_fleet_provisioning(
                self, self.hook_function, thing_group_name=self.thing_group_name, policy_name=self.policy_name
            )
            self.provisioning_template, self.hook_permission, self.claim_policy = made

    def _allow_snapshot_uploads(self, evidence_bucket: s3.IBucket) -> None:
        # ${credentials-iot:ThingName} is the thing name the credentials provider was asked
        # for with the device's certificate ("Authorizing direct calls to AWS services",
        # https://docs.aws.amazon.com/iot/latest/developerguide/authorizing-direct-aws.html),
        # so a device can write only under its own snapshots/<thing>/.
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
                (
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]"
                ): "Lets the CDK-provided AwsCustomResource function write its own logs; nothing else.",
            },
        )
        if provider is not None:
            acknowledge(
                provider,
                {"AwsSolutions-L1": "The AwsCustomResource provider's runtime is chosen and updated by aws-cdk-lib."},
            )
            cfn_lint_ignore(provider, ROLE_DEPENDS_ON)
