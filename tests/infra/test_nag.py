"""infra/nag.py: cfn-lint on every synthesized template, cdk-nag on the app, and acknowledgements with reasons."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint_file

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
