"""infra/devices.py: token exchange, role alias, listed things and their group, and what a
fleet adds to the template."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from infra.devices import Devices


def test_role_alias_and_token_exchange_role(cfn, stage):
    devices = stage.stage.stack.devices
    template = stage.template
    template.has_resource_properties(
        "AWS::IoT::RoleAlias", {"RoleArn": {"Fn::GetAtt": [cfn.lid(devices.token_exchange_role), "Arn"]}}
    )
    trust = cfn.properties(stage.template_json, devices.token_exchange_role)["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"}}
    ]
    statements = cfn.policy_statements(stage.template_json, devices.token_exchange_role)
    assert cfn.actions_of(statements) == {
        "s3:GetObject",
        "s3:GetBucketLocation",
        "s3:PutObject",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
    }
    (put,) = cfn.statements_allowing(statements, "s3:PutObject")
    assert (
        put["Resource"]
        == f"{cfn.att(stage.stage.stack.storage.evidence, 'Arn')}/snapshots/${{credentials-iot:ThingName}}/*"
    )
    code, model = sorted(cfn.statements_allowing(statements, "s3:GetObject"), key=lambda s: s["Sid"])
    edge_asset = stage.stage.stack.edge.asset
    assert code["Resource"].endswith(f"/{edge_asset.asset_hash}.zip"), "reads exactly the component's artifact"
    # ...and the model component's version artifacts (tests/infra/test_model_component.py).
    assert model["Resource"][0].endswith(f"/components/{stage.stage.stack.model.component_name}/*")


def test_listed_things_join_the_group(cfn, stage):
    devices = stage.stage.stack.devices
    things = cfn.resources(stage.template_json, "AWS::IoT::Thing")
    assert sorted(t["Properties"]["ThingName"] for t in things.values()) == sorted(stage.config.things)
    memberships = cfn.resources(stage.template_json, "Custom::AWS").values()
    calls = {
        event: [cfn.rendered_json(m["Properties"][event]) for m in memberships]
        for event in ("Create", "Update", "Delete")
    }
    assert sorted(c["parameters"]["thingName"] for c in calls["Create"]) == sorted(stage.config.things)
    for event, action in (
        ("Create", "AddThingToThingGroup"),
        ("Update", "AddThingToThingGroup"),
        ("Delete", "RemoveThingFromThingGroup"),
    ):
        for call in calls[event]:
            assert (call["service"], call["action"]) == ("IoT", action)
            assert call["parameters"]["thingGroupName"] == cfn.ref(devices.thing_group)


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
