"""infra/device_policy.py: the cameras' IoT policy is least privilege: own identity, own topics, no wildcard action."""

from __future__ import annotations

import fnmatch
import json

import aws_cdk as cdk
import pytest

from edge_component.contracts.topics import (
    ALERT_CHANNEL,
    TELEMETRY_CHANNEL,
    topic_template,
)
from infra.config import StageThings, provisioned_thing_pattern
from infra.device_policy import device_policy_document
from infra.nag import render_intrinsics
from infra.provisioning_hook.hook import decide

MQTT_ACTIONS = ("iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive")
ARN = "arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:"

# AWS's minimal IoT policy for Greengrass V2 core devices: (action, resource with the core
# device's name as "{thing}"), from
# https://docs.aws.amazon.com/greengrass/v2/developerguide/device-auth.html ("Minimal AWS IoT
# policy"; awsdocs/aws-iot-greengrass-v2-developer-guide doc_source/device-auth.md). The
# data-plane actions are on "*" there.
MINIMAL_POLICY = [
    ("iot:Connect", "client/{thing}"),
    ("iot:Publish", "topic/$aws/things/{thing}/greengrass/health/json"),
    ("iot:Publish", "topic/$aws/things/{thing}/greengrassv2/health/json"),
    ("iot:Publish", "topic/$aws/things/{thing}/jobs/x/get"),
    ("iot:Publish", "topic/$aws/things/{thing}/shadow/get"),
    ("iot:Receive", "topic/$aws/things/{thing}/jobs/x/get/accepted"),
    ("iot:Receive", "topic/$aws/things/{thing}/shadow/get/accepted"),
    ("iot:Subscribe", "topicfilter/$aws/things/{thing}/jobs/*"),
    ("iot:Subscribe", "topicfilter/$aws/things/{thing}/shadow/*"),
    ("greengrass:ResolveComponentCandidates", None),
    ("greengrass:GetDeploymentConfiguration", None),
    ("greengrass:ListThingGroupsForCoreDevice", None),
    ("greengrass:GetComponentVersionArtifact", None),
    ("iot:AssumeRoleWithCertificate", None),
]


def _device_policy(cfn, stage):
    devices = stage.stage.stack.devices
    return cfn.render(cfn.properties(stage.template_json, devices.policy)["PolicyDocument"])


def _as_list(value):
    return value if isinstance(value, list) else [value]


def allows(statements, action: str, resource: str) -> bool:
    """IoT policy matching for these resources: ``*`` is any run of characters
    (https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html)."""
    for statement in statements:
        if statement["Effect"] == "Allow" and action in _as_list(statement["Action"]):
            for pattern in _as_list(statement["Resource"]):
                if pattern == "*" or fnmatch.fnmatchcase(resource, pattern):
                    return True
    return False


def _stage_thing(stage) -> str:
    return stage.config.stage_things.prefix + "cam-42" if stage.config.stage_things.prefix else stage.config.things[0]


@pytest.mark.parametrize(("action", "resource"), MINIMAL_POLICY, ids=[f"{a} {r}" for a, r in MINIMAL_POLICY])
def test_device_policy_allows_the_minimal_greengrass_policy_on_every_nucleus_connection(cfn, stage, action, resource):
    """Every action of the minimal policy, for the thing itself and for the extra
    connections the nucleus opens as ``<thing>#2``, ``#3``... past 50 subscriptions
    (aws-greengrass/aws-greengrass-nucleus src/main/java/com/aws/greengrass/mqttclient/MqttClient.java)."""
    statements = _device_policy(cfn, stage)["Statement"]
    thing = _stage_thing(stage)
    if resource is None:
        assert cfn.statements_allowing(statements, action), action
        return
    assert allows(statements, action, ARN + resource.format(thing=thing)), (action, resource)
    if action == "iot:Connect":
        assert allows(statements, action, ARN + f"client/{thing}#2")


def test_device_policy_uses_no_thing_policy_variables(cfn, stage):
    """device-auth.md: "Thing policy variables (iot:Connection.Thing.*) aren't supported for in
    AWS IoT policies for core devices or Greengrass data plane operations"; they resolve only
    when the client id is the thing name, which ``<thing>#N`` is not
    (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html)."""
    assert "iot:Connection.Thing" not in json.dumps(_device_policy(cfn, stage))


def test_device_policy_has_no_wildcard_action(cfn, stage):
    statements = _device_policy(cfn, stage)["Statement"]
    for action in cfn.actions_of(statements):
        assert "*" not in action, action
        assert action.split(":")[0] in ("iot", "greengrass"), action


def test_device_policy_admits_only_the_stages_things(cfn, synthesized):
    """Scoped to the stage's names: no camera of one stage may connect, publish alerts or
    read jobs as another stage's thing (stages share an account)."""
    for name, other in (("dev", "prod"), ("prod", "dev")):
        statements = _device_policy(cfn, synthesized[name])["Statement"]
        foreign = _stage_thing(synthesized[other])
        own = _stage_thing(synthesized[name])
        for action, resource in MINIMAL_POLICY:
            if resource is not None:
                assert not allows(statements, action, ARN + resource.format(thing=foreign)), (name, action)
        for channel in (ALERT_CHANNEL, TELEMETRY_CHANNEL):
            assert allows(statements, "iot:Publish", ARN + "topic/" + topic_template(own, channel))
            assert not allows(statements, "iot:Publish", ARN + "topic/" + topic_template(foreign, channel))
        for statement in statements:
            if set(cfn.as_list(statement["Action"])) & set(MQTT_ACTIONS):
                assert "*" not in cfn.as_list(statement["Resource"]), statement


def test_device_policy_names_listed_things_outside_the_prefix_exactly():
    document = device_policy_document(
        role_alias_arn="arn:aws:iot:eu-west-1:111111111111:rolealias/r",
        component_names=["c"],
        things=StageThings.of(("porch", "vigil-dev-cam-01"), "vigil-dev-"),
    )
    statements = cdk_rendered(document)["Statement"]
    for thing in ("porch", "porch#3", "vigil-dev-cam-01", "vigil-dev-new#2"):
        assert allows(statements, "iot:Connect", ARN + f"client/{thing}"), thing
    assert not allows(statements, "iot:Connect", ARN + "client/porch2")
    assert not allows(statements, "iot:Publish", ARN + "topic/vigil/porch2/alerts")


def cdk_rendered(document):
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    return render_intrinsics(stack.resolve(document))


def test_device_policy_variables_stay_literal(cfn, stage):
    # ${iot:...} inside Fn::Sub would be read as a CloudFormation parameter.
    raw = cfn.properties(stage.template_json, stage.stage.stack.devices.policy)["PolicyDocument"]
    assert "Fn::Sub" not in str(raw)


PATTERN = provisioned_thing_pattern("vigil-dev-")


DENIED = frozenset({"vigil-dev-stolen"})


def allowed(event: object, pattern: str = PATTERN, denied: frozenset[str] = DENIED) -> bool:
    response, reason = decide(event, thing_name_pattern=pattern, denied_thing_names=denied)
    assert set(response) == {"allowProvisioning"} and isinstance(response["allowProvisioning"], bool)
    assert reason
    return response["allowProvisioning"]
