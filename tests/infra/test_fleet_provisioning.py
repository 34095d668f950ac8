"""infra/fleet_provisioning.py: the provisioning template pins group and policy, and the stack wires
the pre-provisioning hook (template, permission, role, bundle, rules)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from infra.config import load_stages, provisioned_thing_pattern
from infra.devices import Devices
from infra.fleet_provisioning import HOOK_PAYLOAD_VERSION
from infra.provisioning_hook import hook
from infra.provisioning_hook.hook import RULES_FILE_NAME, decide, load_rules


def test_fleet_provisioning_pins_group_and_policy(cfn, stage):
    devices = stage.stage.stack.devices
    assert stage.config.fleet_provisioning
    body = cfn.rendered_json(cfn.properties(stage.template_json, devices.provisioning_template)["TemplateBody"])
    thing = body["Resources"]["thing"]["Properties"]
    assert thing["ThingName"] == {"Ref": "ThingName"}
    assert thing["ThingGroups"] == [cfn.ref(devices.thing_group)]
    assert body["Resources"]["policy"]["Properties"]["PolicyName"] == cfn.ref(devices.policy)
    assert set(body["Parameters"]) == {"ThingName", "AWS::IoT::Certificate::Id"}, "the device picks nothing else"

    role_lid = cfn.properties(stage.template_json, devices.provisioning_template)["ProvisioningRoleArn"]["Fn::GetAtt"][
        0
    ]
    role = stage.template_json["Resources"][role_lid]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "iot.amazonaws.com"}
    assert "AWSIoTThingsRegistration" in str(role["ManagedPolicyArns"])

    claim = cfn.render(cfn.properties(stage.template_json, devices.claim_policy)["PolicyDocument"])["Statement"]
    assert cfn.actions_of(claim) == {"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"}
    for statement in claim:
        if statement["Action"] != "iot:Connect":
            for resource in cfn.as_list(statement["Resource"]):
                assert (
                    "$aws/certificates/create/" in resource
                    or f"$aws/provisioning-templates/{cfn.ref(devices.provisioning_template)}/provision/" in resource
                )


def payload(thing_name: object = "vigil-dev-cam-02", **extra: object) -> dict:
    """A hook input as AWS IoT sends it (payload version 2020-04-01)."""
    return {
        "claimCertificateId": "claim-id",
        "certificateId": "new-cert-id",
        "certificatePem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "templateArn": "arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/Vigil",
        "clientId": "221a6d10-9c7f-42f1-9153-e52e6fc869c1",
        "parameters": {"ThingName": thing_name, "AWS::IoT::Certificate::Id": "new-cert-id"},
        **extra,
    }


def test_template_calls_the_hook_function(cfn, stage):
    devices = stage.stage.stack.devices
    assert devices.hook_function is not None
    stage.template.has_resource_properties(
        "AWS::IoT::ProvisioningTemplate",
        {
            "PreProvisioningHook": {
                "TargetArn": {"Fn::GetAtt": [cfn.lid(devices.hook_function), "Arn"]},
                "PayloadVersion": HOOK_PAYLOAD_VERSION,
            }
        },
    )
    function = cfn.properties(stage.template_json, devices.hook_function)
    assert (function["Runtime"], function["Architectures"], function["Handler"]) == (
        "python3.13",
        ["arm64"],
        "hook.handler",
    )


def test_only_iot_may_invoke_the_hook_and_only_for_this_template(cfn, stage):
    devices = stage.stage.stack.devices
    function_arn = {"Fn::GetAtt": [cfn.lid(devices.hook_function), "Arn"]}
    permissions = [
        p["Properties"]
        for p in cfn.resources(stage.template_json, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == function_arn
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": function_arn,
            "Principal": "iot.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [cfn.lid(devices.provisioning_template), "TemplateArn"]},
            "SourceAccount": {"Ref": "AWS::AccountId"},
        }
    ]


def test_hook_role_may_only_write_its_own_logs_and_describe_the_stages_things(cfn, stage):
    devices = stage.stage.stack.devices
    role = devices.hook_function.role
    role_properties = cfn.properties(stage.template_json, role)
    assert "ManagedPolicyArns" not in role_properties and "Policies" not in role_properties
    assert role_properties["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]
    statements = cfn.policy_statements(stage.template_json, role)
    assert statements, "the hook must be able to log its decisions"
    log_group_lid = cfn.properties(stage.template_json, devices.hook_function)["LoggingConfig"]["LogGroup"]["Ref"]
    describe = [s for s in statements if s["Action"] == "iot:DescribeThing"]
    assert len(describe) == 1 and describe[0]["Effect"] == "Allow"
    prefix = stage.config.thing_name_prefix or f"vigil-{stage.config.name}-"
    assert describe[0]["Resource"].endswith(f":thing/{prefix}*"), describe[0]["Resource"]
    for statement in statements:
        if statement is describe[0]:
            continue
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(a.startswith("logs:") for a in actions), actions
        assert statement["Resource"] == f"<{log_group_lid}.Arn>", "its own log group only"


def test_bundle_holds_the_handler_and_this_stages_rules(stage):
    devices = stage.stage.stack.devices
    bundle = stage.outdir / f"asset.{devices.hook_function.node.find_child('Code').asset_hash}"
    assert (bundle / "hook.py").read_bytes() == Path(hook.__file__).read_bytes()
    rules = json.loads((bundle / RULES_FILE_NAME).read_text())
    config = stage.config
    assert rules == devices.hook_rules
    assert rules["thing_name_pattern"] == provisioned_thing_pattern(f"vigil-{config.name}-")
    # Listed things can never be taken over by a claim.
    assert set(config.things) <= set(rules["denied_thing_names"])
    pattern, denied = load_rules.__wrapped__(bundle / RULES_FILE_NAME)
    assert decide(payload(f"vigil-{config.name}-new-cam"), thing_name_pattern=pattern, denied_thing_names=denied)[0][
        "allowProvisioning"
    ]
    for thing in config.things:
        assert not decide(payload(thing), thing_name_pattern=pattern, denied_thing_names=denied)[0]["allowProvisioning"]


def test_bundled_handler_runs_on_its_own(stage, monkeypatch):
    """The bundle as Lambda loads it: hook.py at the root reading the rules beside it."""
    devices = stage.stage.stack.devices
    bundle = stage.outdir / f"asset.{devices.hook_function.node.find_child('Code').asset_hash}"
    spec = importlib.util.spec_from_file_location(f"bundled_hook_{stage.config.name}", bundle / "hook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "thing_exists", lambda thing_name: False)  # no AWS here; moto test above covers it
    name = stage.config.name
    assert module.handler(payload(f"vigil-{name}-cam-77"), None) == {"allowProvisioning": True}
    other = "prod" if name == "dev" else "dev"
    assert module.handler(payload(f"vigil-{other}-cam-77"), None) == {"allowProvisioning": False}


def _devices(stack: cdk.Stack, **kwargs: object) -> Devices:
    return Devices(
        stack,
        "Devices",
        thing_names=kwargs.pop("thing_names", []),
        component_names=["com.vigil.EdgeDetector.test"],
        evidence_bucket=s3.Bucket(stack, "Evidence"),
        log_retention=logs.RetentionDays.ONE_WEEK,
        **kwargs,
    )


def test_prefix_and_deny_list_reach_the_hook():
    stack = cdk.Stack(cdk.App(), "Probe", env=cdk.Environment(region="eu-west-1"))
    devices = _devices(
        stack,
        fleet_provisioning=True,
        thing_name_prefix="acme-site7-",
        denied_thing_names=["acme-site7-old"],
        thing_names=["acme-site7-listed"],
    )
    assert devices.hook_rules == {
        "thing_name_pattern": provisioned_thing_pattern("acme-site7-"),
        "denied_thing_names": ["acme-site7-listed", "acme-site7-old"],
    }


def test_no_fleet_provisioning_no_hook():
    stack = cdk.Stack(cdk.App(), "Probe", env=cdk.Environment(region="eu-west-1"))
    devices = _devices(stack, fleet_provisioning=False, thing_names=["cam-1"])
    assert devices.hook_function is None and devices.hook_permission is None and devices.hook_rules is None
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::IoT::ProvisioningTemplate", 0)
    assert not [
        p
        for p in template.find_resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "iot.amazonaws.com"
    ]


def test_stage_config_reaches_the_hook(raw_stages, context, tmp_path):
    from infra.stage import VigilStage

    raw = copy.deepcopy(raw_stages)
    raw["prod"].update(thing_name_prefix="acme-", denied_thing_names=["acme-stolen"])
    config = load_stages(raw)["prod"]
    app = cdk.App(context=context, outdir=str(tmp_path))  # cdk.json's feature flags, as app.py runs
    stage = VigilStage(app, "prod", config=config, env=cdk.Environment(region="eu-west-1"))
    rules = stage.stack.devices.hook_rules
    assert rules is not None and re.fullmatch(rules["thing_name_pattern"], "acme-cam-1")
    assert "acme-stolen" in rules["denied_thing_names"]
