"""Fleet provisioning's pre-provisioning hook: the decision (plain function, every payload
shape), the handler, and how the stack wires it (template, permission, role, bundle)."""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from infra_testlib import lid, policy_statements, properties, resources

from infra.config import load_stages, provisioned_thing_pattern
from infra.devices import Devices
from infra.fleet_provisioning import HOOK_PAYLOAD_VERSION
from infra.provisioning_hook import hook
from infra.provisioning_hook.hook import RULES_FILE_NAME, decide, handler, load_rules

PATTERN = provisioned_thing_pattern("vigil-dev-")
DENIED = frozenset({"vigil-dev-stolen"})


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


def allowed(event: object, pattern: str = PATTERN, denied: frozenset[str] = DENIED) -> bool:
    response, reason = decide(event, thing_name_pattern=pattern, denied_thing_names=denied)
    assert set(response) == {"allowProvisioning"} and isinstance(response["allowProvisioning"], bool)
    assert reason
    return response["allowProvisioning"]


@pytest.mark.parametrize("name", ["vigil-dev-cam-02", "vigil-dev-0", "vigil-dev-" + "a" * 64, "vigil-dev-shop-2-door"])
def test_stage_thing_names_are_allowed(name):
    assert allowed(payload(name))


@pytest.mark.parametrize(
    "name",
    [
        "vigil-prod-cam-02",  # another stage's namespace
        "cam-02",
        "vigil-dev-",  # prefix only
        "vigil-dev-" + "a" * 65,
        "vigil-dev-Cam-02",  # upper case
        "vigil-dev-cam_02",
        "vigil-dev-cam:02",
        "vigil-dev-cam-02\n",  # $ would let this through; fullmatch does not
        "xvigil-dev-cam-02",
        "vigil-devxcam-02",  # the prefix's dashes are literal
        "",
    ],
)
def test_other_thing_names_are_refused(name):
    assert not allowed(payload(name))


def test_denied_thing_name_is_refused():
    assert not allowed(payload("vigil-dev-stolen"))
    assert allowed(payload("vigil-dev-stolen"), denied=frozenset())


@pytest.mark.parametrize(
    "event",
    [
        None,
        "vigil-dev-cam-02",
        ["vigil-dev-cam-02"],
        {},
        {"parameters": None},
        {"parameters": ["ThingName", "vigil-dev-cam-02"]},
        {"parameters": {}},
        {"parameters": {"thingName": "vigil-dev-cam-02"}},  # the name is case-sensitive
        {"ThingName": "vigil-dev-cam-02"},  # not inside parameters
        payload(None),
        payload(42),
        payload(["vigil-dev-cam-02"]),
        payload({"S": "vigil-dev-cam-02"}),
    ],
    ids=repr,
)
def test_malformed_payloads_are_refused(event):
    assert not allowed(event)


def test_decide_never_raises():
    assert not allowed(payload(), pattern="(")  # a pattern that does not compile
    assert not allowed(payload(), denied=None)  # type: ignore[arg-type]


def _rules_file(tmp_path: Path, rules: object) -> Path:
    path = tmp_path / RULES_FILE_NAME
    path.write_text(json.dumps(rules))
    return path


def test_handler_decides_with_the_bundled_rules(tmp_path, monkeypatch, caplog):
    path = _rules_file(tmp_path, {"thing_name_pattern": PATTERN, "denied_thing_names": sorted(DENIED)})
    monkeypatch.setattr(hook, "load_rules", lambda: load_rules.__wrapped__(path))
    monkeypatch.setattr(hook, "thing_exists", lambda name: False)
    caplog.set_level(logging.INFO, logger=hook.logger.name)
    assert handler(payload(), None) == {"allowProvisioning": True}
    assert handler(payload("vigil-dev-stolen"), None) == {"allowProvisioning": False}
    assert handler(payload("vigil-prod-cam-01"), None) == {"allowProvisioning": False}
    assert handler("not an object", None) == {"allowProvisioning": False}
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    assert [line["allowProvisioning"] for line in logged] == [True, False, False, False]
    assert logged[0]["certificateId"] == "new-cert-id" and "denied" in logged[1]["reason"]
    assert "CERTIFICATE" not in caplog.text, "the certificate is never logged"


def test_an_existing_thing_cannot_be_taken_over_by_a_claim():
    registered = {"vigil-dev-cam-07"}
    kwargs = dict(thing_name_pattern=PATTERN, denied_thing_names=DENIED, thing_exists=registered.__contains__)
    assert decide(payload("vigil-dev-cam-08"), **kwargs)[0] == {"allowProvisioning": True}
    response, reason = decide(payload("vigil-dev-cam-07"), **kwargs)
    assert response == {"allowProvisioning": False} and "already exists" in reason

    def unreachable(name):
        raise ConnectionError("endpoint unreachable")

    response, reason = decide(payload(), thing_name_pattern=PATTERN, denied_thing_names=DENIED, thing_exists=unreachable)
    assert response == {"allowProvisioning": False} and "ConnectionError" in reason  # fails closed


def test_handler_asks_iot_whether_the_thing_exists(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    path = _rules_file(tmp_path, {"thing_name_pattern": PATTERN, "denied_thing_names": []})
    monkeypatch.setattr(hook, "load_rules", lambda: load_rules.__wrapped__(path))
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        monkeypatch.setattr(hook, "_iot_client", None)  # created inside the mock, as in Lambda on first use
        boto3.client("iot").create_thing(thingName="vigil-dev-cam-07")
        assert handler(payload("vigil-dev-cam-07"), None) == {"allowProvisioning": False}
        assert handler(payload("vigil-dev-cam-08"), None) == {"allowProvisioning": True}
    monkeypatch.setattr(hook, "_iot_client", None)


@pytest.mark.parametrize(
    "rules",
    [None, {}, {"thing_name_pattern": PATTERN}, {"thing_name_pattern": "(", "denied_thing_names": []},
     {"thing_name_pattern": PATTERN, "denied_thing_names": "vigil-dev-stolen"}, "missing"],
    ids=repr,
)
def test_handler_refuses_when_the_rules_are_unreadable(tmp_path, monkeypatch, rules):
    path = tmp_path / "absent.json" if rules == "missing" else _rules_file(tmp_path, rules)
    monkeypatch.setattr(hook, "load_rules", lambda: load_rules.__wrapped__(path))
    assert handler(payload(), None) == {"allowProvisioning": False}


# The stack, from the session's synthesized app.


def test_template_calls_the_hook_function(stage):
    devices = stage.stage.stack.devices
    assert devices.hook_function is not None
    stage.template.has_resource_properties(
        "AWS::IoT::ProvisioningTemplate",
        {
            "PreProvisioningHook": {
                "TargetArn": {"Fn::GetAtt": [lid(devices.hook_function), "Arn"]},
                "PayloadVersion": HOOK_PAYLOAD_VERSION,
            }
        },
    )
    function = properties(stage.template_json, devices.hook_function)
    assert (function["Runtime"], function["Architectures"], function["Handler"]) == (
        "python3.13", ["arm64"], "hook.handler"
    )


def test_only_iot_may_invoke_the_hook_and_only_for_this_template(stage):
    devices = stage.stage.stack.devices
    function_arn = {"Fn::GetAtt": [lid(devices.hook_function), "Arn"]}
    permissions = [
        p["Properties"] for p in resources(stage.template_json, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == function_arn
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": function_arn,
            "Principal": "iot.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [lid(devices.provisioning_template), "TemplateArn"]},
            "SourceAccount": {"Ref": "AWS::AccountId"},
        }
    ]


def test_hook_role_may_only_write_its_own_logs_and_describe_the_stages_things(stage):
    devices = stage.stage.stack.devices
    role = devices.hook_function.role
    role_properties = properties(stage.template_json, role)
    assert "ManagedPolicyArns" not in role_properties and "Policies" not in role_properties
    assert role_properties["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]
    statements = policy_statements(stage.template_json, role)
    assert statements, "the hook must be able to log its decisions"
    log_group_lid = properties(stage.template_json, devices.hook_function)["LoggingConfig"]["LogGroup"]["Ref"]
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
        stack, fleet_provisioning=True, thing_name_prefix="acme-site7-", denied_thing_names=["acme-site7-old"],
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
        p for p in template.find_resources("AWS::Lambda::Permission").values()
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
