"""infra/device_policy.py: the cameras' IoT policy is least privilege: own identity, own topics, no wildcard action."""

from __future__ import annotations

from edge_component.contracts.topics import (
    ALERT_CHANNEL,
    TELEMETRY_CHANNEL,
    topic_template,
)
from infra.config import provisioned_thing_pattern
from infra.device_policy import THING
from infra.provisioning_hook.hook import decide

MQTT_ACTIONS = ("iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive")


def _device_policy(cfn, stage):
    devices = stage.stage.stack.devices
    return cfn.render(cfn.properties(stage.template_json, devices.policy)["PolicyDocument"])


def test_device_policy_has_no_wildcard_action(cfn, stage):
    statements = _device_policy(cfn, stage)["Statement"]
    for action in cfn.actions_of(statements):
        assert "*" not in action, action
        assert action.split(":")[0] in ("iot", "greengrass"), action


def test_device_policy_scopes_mqtt_to_the_connecting_thing(cfn, stage):
    statements = _device_policy(cfn, stage)["Statement"]
    for action in MQTT_ACTIONS:
        allowed = cfn.statements_allowing(statements, action)
        assert allowed, f"{action} is needed by Greengrass"
        for statement in allowed:
            for resource in cfn.as_list(statement["Resource"]):
                assert resource != "*", action
                assert THING in resource, f"{action} on {resource} is not limited to the connecting thing"


def test_device_policy_connects_only_as_own_thing_and_publishes_contract_topics(cfn, stage):
    statements = _device_policy(cfn, stage)["Statement"]
    prefix = "arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:"
    (connect,) = cfn.statements_allowing(statements, "iot:Connect")
    assert sorted(cfn.as_list(connect["Resource"])) == sorted([f"{prefix}client/{THING}", f"{prefix}client/{THING}#*"])
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    (publish,) = cfn.statements_allowing(statements, "iot:Publish")
    for channel in (ALERT_CHANNEL, TELEMETRY_CHANNEL):
        assert f"{prefix}topic/{topic_template(THING, channel)}" in publish["Resource"]
    (assume,) = cfn.statements_allowing(statements, "iot:AssumeRoleWithCertificate")
    assert assume["Resource"] == cfn.att(stage.stage.stack.devices.role_alias, "RoleAliasArn")


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
