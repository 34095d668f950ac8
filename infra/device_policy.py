"""The IoT policy every camera's certificate carries, and the ARNs and policy variables it is built from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from edge_component.contracts.topics import ALERT_CHANNEL, TELEMETRY_CHANNEL, topic_template
from infra.config import StageThings

# The thing name as the IoT credentials provider passes it to IAM (the nucleus sends it
# with every credentials request: aws-greengrass-nucleus iot/IotCloudHelper.java).
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


def thing_patterns(things: StageThings) -> list[str]:
    """IoT policy resource patterns for the stage's thing names: ``<prefix>*``, and each
    listed name outside the prefix (exact)."""
    return ([f"{things.prefix}*"] if things.prefix else []) + list(things.names)


def device_policy_document(
    *, role_alias_arn: str, component_names: Sequence[str], things: StageThings
) -> dict[str, Any]:
    """The IoT policy of every camera of the stage: AWS's minimal Greengrass core device
    policy (https://docs.aws.amazon.com/greengrass/v2/developerguide/device-auth.html,
    "Minimal AWS IoT policy for AWS IoT Greengrass V2 core devices") plus Vigil's topics.

    Names instead of thing policy variables: the Greengrass guide says
    ``iot:Connection.Thing.*`` is not supported for core devices, and the variables resolve
    only on a connection whose client id is exactly the thing name, while the nucleus also
    connects as ``<thing>#2``, ``#3``, ... (aws-greengrass-nucleus mqttclient/MqttClient.java)
    and publishes over all of them. So the scope is the stage's things (``things``), not one
    device: a camera could publish as another camera of its own stage, never of another
    stage; per-device checks happen in the Lambda (payload thing = topic thing).
    """
    patterns = thing_patterns(things)
    connect, greengrass_topics, vigil_topics = [], [], []
    for pattern in patterns:
        # An exact name also connects as <name>#N; <prefix>* already covers that.
        connect += [f"client/{pattern}"] + ([] if pattern.endswith("*") else [f"client/{pattern}#*"])
        own = f"$aws/things/{pattern}"
        greengrass_topics += [
            f"{own}/greengrass/health/json",
            f"{own}/greengrassv2/health/json",
            f"{own}/jobs/*",
            f"{own}/shadow/*",
        ]
        vigil_topics += [topic_template(pattern, ALERT_CHANNEL), topic_template(pattern, TELEMETRY_CHANNEL)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectAsStageThing",
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": [iot_arn(c) for c in connect],
            },
            {
                "Sid": "PublishStageTopics",
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
                    iot_arn(f"topicfilter/$aws/things/{p}/{suffix}")
                    for p in patterns
                    for suffix in ("jobs/*", "shadow/*")
                ],
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
                "Sid": "GreengrassDataPlane",
                "Effect": "Allow",
                # As the minimal policy has them: on "*" (no thing variables on the data plane).
                "Action": [
                    "greengrass:ResolveComponentCandidates",
                    "greengrass:GetDeploymentConfiguration",
                    "greengrass:ListThingGroupsForCoreDevice",
                ],
                "Resource": "*",
            },
        ],
    }
