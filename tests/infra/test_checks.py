"""The gates: cfn-lint on every synthesized template, cdk-nag on the app, and the stack outputs."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint_file
from infra_testlib import ref, render, resources

from infra.nag import acknowledge


def test_cfn_lint_reports_no_error_or_warning(stage):
    matches = lint_file(stage.template_path, config=ManualArgs(regions=[stage.config.region or "us-east-1"]))
    problems = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id[0] in "EW"]
    assert problems == []


def test_every_acknowledgement_has_a_specific_reason(synthesized):
    seen = 0
    for synth in synthesized.values():
        for construct in synth.stage.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                    for finding, reason in entry.data.items():
                        seen += 1
                        assert len(reason.split()) >= 6, f"{construct.node.path} {finding}: {reason!r}"
    assert seen > 0


def _nagged_app_with_wildcard(acknowledged: bool) -> cdk.App:
    app = cdk.App()
    stack = cdk.Stack(app, "Probe")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    if acknowledged:
        acknowledge(role, {"AwsSolutions-IAM5[Resource::*]": "Probe role for the nag gate test, never deployed."})
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def test_nag_fails_synth_on_an_unacknowledged_finding():
    with pytest.raises(RuntimeError, match=r"AwsSolutions-IAM5\[Resource::\*\]"):
        _nagged_app_with_wildcard(acknowledged=False).synth()
    _nagged_app_with_wildcard(acknowledged=True).synth()


def test_acknowledgement_needs_a_reason():
    stack = cdk.Stack(cdk.App(), "Probe")
    with pytest.raises(ValueError, match="needs a reason"):
        acknowledge(stack, {"AwsSolutions-IAM5[Resource::*]": " "})


def test_outputs_tell_an_installer_what_it_needs(stage):
    stack = stage.stage.stack
    outputs = stage.template_json["Outputs"]
    expected = {
        "ThingGroupName", "RoleAliasName", "TokenExchangeRoleName", "DevicePolicyName", "ComponentName",
        "ComponentVersion", "AlertTopicArn", "OperationsTopicArn", "EvidenceBucketName", "TrainingDataBucketName",
        "ModelBucketName", "TrainingStateMachineArn", "InstallerCommand", "AlertTopicPattern",
        "TelemetryTopicPattern", "ProvisioningTemplateName", "ClaimPolicyName",
    }
    assert expected <= set(outputs)
    command = render(outputs["InstallerCommand"]["Value"])
    for value in (ref(stack.devices.thing_group), ref(stack.devices.policy), ref(stack.devices.role_alias)):
        assert value in command
    assert "--provision true" in command and f"--aws-region {stage.config.region}" in command
    assert outputs["AlertTopicPattern"]["Value"] == "vigil/<thing>/alerts"


def test_every_log_group_has_a_retention_and_every_function_logs_to_one(stage):
    groups = resources(stage.template_json, "AWS::Logs::LogGroup")
    assert groups
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == stage.config.log_retention_days, logical_id
    for logical_id, function in resources(stage.template_json, "AWS::Lambda::Function").items():
        assert function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups, logical_id
