"""Devices: least-privilege IoT policy, token exchange, listed things and fleet provisioning by claim."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from infra_testlib import (
    actions_of,
    as_list,
    att,
    lid,
    policy_statements,
    properties,
    ref,
    render,
    rendered_json,
    resources,
    statements_allowing,
)

from edge_component.contracts.topics import ALERT_CHANNEL, TELEMETRY_CHANNEL, topic_template
from infra.device_policy import THING
from infra.devices import Devices

MQTT_ACTIONS = ("iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive")


def _device_policy(stage):
    devices = stage.stage.stack.devices
    return render(properties(stage.template_json, devices.policy)["PolicyDocument"])


def test_device_policy_has_no_wildcard_action(stage):
    statements = _device_policy(stage)["Statement"]
    for action in actions_of(statements):
        assert "*" not in action, action
        assert action.split(":")[0] in ("iot", "greengrass"), action


def test_device_policy_scopes_mqtt_to_the_connecting_thing(stage):
    statements = _device_policy(stage)["Statement"]
    for action in MQTT_ACTIONS:
        allowed = statements_allowing(statements, action)
        assert allowed, f"{action} is needed by Greengrass"
        for statement in allowed:
            for resource in as_list(statement["Resource"]):
                assert resource != "*", action
                assert THING in resource, f"{action} on {resource} is not limited to the connecting thing"


def test_device_policy_connects_only_as_own_thing_and_publishes_contract_topics(stage):
    statements = _device_policy(stage)["Statement"]
    prefix = "arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:"
    (connect,) = statements_allowing(statements, "iot:Connect")
    assert sorted(as_list(connect["Resource"])) == sorted([f"{prefix}client/{THING}", f"{prefix}client/{THING}#*"])
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    (publish,) = statements_allowing(statements, "iot:Publish")
    for channel in (ALERT_CHANNEL, TELEMETRY_CHANNEL):
        assert f"{prefix}topic/{topic_template(THING, channel)}" in publish["Resource"]
    (assume,) = statements_allowing(statements, "iot:AssumeRoleWithCertificate")
    assert assume["Resource"] == att(stage.stage.stack.devices.role_alias, "RoleAliasArn")


def test_device_policy_variables_stay_literal(stage):
    # ${iot:...} inside Fn::Sub would be read as a CloudFormation parameter.
    raw = properties(stage.template_json, stage.stage.stack.devices.policy)["PolicyDocument"]
    assert "Fn::Sub" not in str(raw)


def test_role_alias_and_token_exchange_role(stage):
    devices = stage.stage.stack.devices
    template = stage.template
    template.has_resource_properties(
        "AWS::IoT::RoleAlias", {"RoleArn": {"Fn::GetAtt": [lid(devices.token_exchange_role), "Arn"]}}
    )
    trust = properties(stage.template_json, devices.token_exchange_role)["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"}}
    ]
    statements = policy_statements(stage.template_json, devices.token_exchange_role)
    assert actions_of(statements) == {
        "s3:GetObject", "s3:PutObject", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams",
    }
    (put,) = statements_allowing(statements, "s3:PutObject")
    assert put["Resource"] == f"{att(stage.stage.stack.storage.evidence, 'Arn')}/snapshots/${{credentials-iot:ThingName}}/*"
    (read,) = statements_allowing(statements, "s3:GetObject")
    edge_asset = stage.stage.stack.edge.asset
    assert read["Resource"].endswith(f"/{edge_asset.asset_hash}.zip"), "reads exactly the component's artifact"


def test_listed_things_join_the_group(stage):
    devices = stage.stage.stack.devices
    things = resources(stage.template_json, "AWS::IoT::Thing")
    assert sorted(t["Properties"]["ThingName"] for t in things.values()) == sorted(stage.config.things)
    memberships = resources(stage.template_json, "Custom::AWS").values()
    calls = {
        event: [rendered_json(m["Properties"][event]) for m in memberships] for event in ("Create", "Update", "Delete")
    }
    assert sorted(c["parameters"]["thingName"] for c in calls["Create"]) == sorted(stage.config.things)
    for event, action in (("Create", "AddThingToThingGroup"), ("Update", "AddThingToThingGroup"), ("Delete", "RemoveThingFromThingGroup")):
        for call in calls[event]:
            assert (call["service"], call["action"]) == ("IoT", action)
            assert call["parameters"]["thingGroupName"] == ref(devices.thing_group)


def test_fleet_provisioning_pins_group_and_policy(stage):
    devices = stage.stage.stack.devices
    assert stage.config.fleet_provisioning
    body = rendered_json(properties(stage.template_json, devices.provisioning_template)["TemplateBody"])
    thing = body["Resources"]["thing"]["Properties"]
    assert thing["ThingName"] == {"Ref": "ThingName"}
    assert thing["ThingGroups"] == [ref(devices.thing_group)]
    assert body["Resources"]["policy"]["Properties"]["PolicyName"] == ref(devices.policy)
    assert set(body["Parameters"]) == {"ThingName", "AWS::IoT::Certificate::Id"}, "the device picks nothing else"

    role_lid = properties(stage.template_json, devices.provisioning_template)["ProvisioningRoleArn"]["Fn::GetAtt"][0]
    role = stage.template_json["Resources"][role_lid]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "iot.amazonaws.com"}
    assert "AWSIoTThingsRegistration" in str(role["ManagedPolicyArns"])

    claim = render(properties(stage.template_json, devices.claim_policy)["PolicyDocument"])["Statement"]
    assert actions_of(claim) == {"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"}
    for statement in claim:
        if statement["Action"] != "iot:Connect":
            for resource in as_list(statement["Resource"]):
                assert "$aws/certificates/create/" in resource or f"$aws/provisioning-templates/{ref(devices.provisioning_template)}/provision/" in resource


def _devices_template(thing_count: int, fleet_provisioning: bool = True) -> dict:
    app = cdk.App()
    stack = cdk.Stack(app, "Scale", env=cdk.Environment(region="eu-west-1"))
    Devices(
        stack,
        "Devices",
        thing_names=[f"cam-{i:05d}" for i in range(thing_count)],
        component_names=["com.vigil.EdgeDetector.test"],
        evidence_bucket=s3.Bucket(stack, "Evidence"),
        fleet_provisioning=fleet_provisioning,
        log_retention=logs.RetentionDays.ONE_WEEK,
    )
    return Template.from_stack(stack).to_json()


def test_claim_provisioned_fleet_adds_nothing_listed_things_add_two_each():
    """A fleet that joins by claim costs no resources per camera; only listed things do."""
    base = len(_devices_template(0)["Resources"])
    one = len(_devices_template(1)["Resources"])
    three = len(_devices_template(3)["Resources"])
    assert three - one == 2 * 2, "a thing and its membership per listed name"
    assert one > base, "listing the first thing adds the membership provider"
