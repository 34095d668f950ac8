"""The IoT policy every camera's certificate carries, and the ARNs and policy variables it is built from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from edge_component.contracts.topics import ALERT_CHANNEL, TELEMETRY_CHANNEL, topic_template

# IoT policy variable: the thing the connecting certificate belongs to. CDK renders
# ARNs with Fn::Join, never Fn::Sub, so this stays literal in the template.
THING = "${iot:Connection.Thing.ThingName}"
# The same thing name as the IoT credentials provider passes it to IAM.
CREDENTIALS_THING = "${credentials-iot:ThingName}"


def iot_arn(resource: str) -> str:
    """``arn:<partition>:iot:<region>:<account>:<resource>``."""
    return f"arn:{cdk.Aws.PARTITION}:iot:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:{resource}"


def iot_service_principal(resource_type: str) -> iam.ServicePrincipal:
    """``iot.amazonaws.com``, only on behalf of this account's ``resource_type`` (``rule``,
    ``provisioningtemplate``): the confused-deputy keys AWS IoT documents for service roles
    (https://docs.aws.amazon.com/iot/latest/developerguide/cross-service-confused-deputy-prevention.html).
    A wildcard name, since the rule or template itself names the role."""
    return iam.ServicePrincipal(
        "iot.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": iot_arn(f"{resource_type}/*")},
        },
    )


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
                "Resource": [
                    iot_arn(f"topicfilter/{own_things}/jobs/*"),
                    iot_arn(f"topicfilter/{own_things}/shadow/*"),
                ],
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
