"""Fleet provisioning by claim: the provisioning template, its pre-provisioning hook
(which lets a claim register only the stage's thing names), and the claim certificates'
IoT policy. Functions that add these to the :class:`infra.devices.Devices` construct."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.alerting import ARCHITECTURE, PYTHON_RUNTIME, local_python_code
from infra.device_policy import iot_arn, iot_service_principal
from infra.nag import ROLE_DEPENDS_ON, acknowledge, cfn_lint_ignore, wildcard_resource
from infra.packaging import build_dir_for, write_content_addressed
from infra.provisioning_hook.hook import RULES_FILE_NAME, THING_NAME_PARAMETER

HOOK_DIR = Path(__file__).resolve().parent / "provisioning_hook"
HOOK_PAYLOAD_VERSION = "2020-04-01"


class FleetProvisioning(NamedTuple):
    """What :func:`add_fleet_provisioning` made."""

    template: iot.CfnProvisioningTemplate
    hook_permission: lambda_.CfnPermission
    claim_policy: iot.CfnPolicy


def add_provisioning_hook(
    scope: Construct, rules: dict[str, Any], log_retention: logs.RetentionDays, thing_name_prefix: str
) -> lambda_.Function:
    """The pre-provisioning hook (``infra/provisioning_hook/hook.py``) in ``scope``, with
    its own role and log group, its ``rules`` bundled beside it."""
    # The rules travel in the bundle, not in environment variables (4 KB in all):
    # a deny list may be long. The bundle is hashed, so new rules make new code.
    rules_file = write_content_addressed(
        json.dumps(rules, indent=2, sort_keys=True).encode(), build_dir_for(scope), RULES_FILE_NAME
    )
    log_group = logs.LogGroup(scope, "ProvisioningHookLogs", retention=log_retention)
    # Its own role: its logs, and whether a thing of the stage's names already exists
    # (a claim must not take over a registered thing).
    role = iam.Role(
        scope,
        "ProvisioningHookRole",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description="Vigil fleet provisioning hook: its own logs, and DescribeThing on this stage's names",
    )
    log_group.grant_write(role)
    stage_things = cdk.Stack.of(scope).format_arn(
        service="iot", resource="thing", resource_name=f"{thing_name_prefix}*"
    )
    role.add_to_policy(iam.PolicyStatement(actions=["iot:DescribeThing"], resources=[stage_things]))
    function = lambda_.Function(
        scope,
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
        {
            "AwsSolutions-L1": "python3.13 like the alert Lambda, whose Powertools layer pins it: the stack's "
            "functions share one tested Python; raise them together."
        },
    )
    acknowledge(
        role,
        {
            wildcard_resource(scope, stage_things): "DescribeThing (read-only) on the things this stage's claims may "
            "register: the hook checks the requested name is not already a registered thing."
        },
    )
    return function


def add_fleet_provisioning(
    scope: Construct, hook: lambda_.IFunction, *, thing_group_name: str, policy_name: str
) -> FleetProvisioning:
    """In ``scope``: the provisioning role, the template that registers a claiming device
    as a thing of ``thing_group_name`` with ``policy_name``, IoT's permission to invoke
    ``hook`` for that template only, and the claim certificates' IoT policy."""
    provisioning_role = iam.Role(
        scope,
        "ProvisioningRole",
        assumed_by=iot_service_principal("provisioningtemplate"),
        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSIoTThingsRegistration")],
        description="Registers Vigil cameras that join by fleet provisioning",
    )
    acknowledge(
        provisioning_role,
        {
            (
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSIoTThingsRegistration]"
            ): "AWS's documented policy for fleet provisioning roles; IoT assumes it only while running "
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
                    "ThingGroups": [thing_group_name],
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy_name}},
        },
    }
    provisioning_template = iot.CfnProvisioningTemplate(
        scope,
        "ProvisioningTemplate",
        description="Vigil cameras joining by claim",
        enabled=True,
        provisioning_role_arn=provisioning_role.role_arn,
        template_body=cdk.Stack.of(scope).to_json_string(template_body),
        pre_provisioning_hook=iot.CfnProvisioningTemplate.ProvisioningHookProperty(
            target_arn=hook.function_arn, payload_version=HOOK_PAYLOAD_VERSION
        ),
    )
    # Only IoT, only for this template, only in this account (confused deputy).
    hook_permission = lambda_.CfnPermission(
        scope,
        "ProvisioningHookInvokePermission",
        action="lambda:InvokeFunction",
        function_name=hook.function_arn,
        principal="iot.amazonaws.com",
        source_arn=provisioning_template.attr_template_arn,
        source_account=cdk.Aws.ACCOUNT_ID,
    )
    template_name = provisioning_template.ref
    provisioning_topics = [
        "$aws/certificates/create/*",
        f"$aws/provisioning-templates/{template_name}/provision/*",
    ]
    claim_policy = iot.CfnPolicy(
        scope,
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
    return FleetProvisioning(provisioning_template, hook_permission, claim_policy)
