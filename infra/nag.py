"""Acknowledging cdk-nag findings and cfn-lint checks, each with its reason.

cdk-nag v3 runs as a CDK policy-validation plugin (``Validations.of(app).add_plugins``);
an unacknowledged finding fails ``app.synth()``. An acknowledgement names one finding
exactly (``AwsSolutions-IAM5[Resource::*]``); there is no prefix matching, so each
wildcard a policy really needs is acknowledged on its own, next to the code that
creates it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, findings: Mapping[str, str]) -> None:
    """Acknowledge each ``finding id -> reason`` on ``scope`` and everything below it."""
    for finding, reason in findings.items():
        if not reason.strip():
            raise ValueError(f"acknowledging {finding} needs a reason")
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


def cfn_lint_ignore(scope: IConstruct, checks: Mapping[str, str]) -> None:
    """Tell cfn-lint to skip ``checks`` (id -> reason) on ``scope``'s CloudFormation resource.

    Written into the resource's ``Metadata`` (cfn-lint reads ``cfn-lint.config.ignore_checks``),
    so the exception travels with the template and every other resource is still checked.
    """
    resource = scope if isinstance(scope, cdk.CfnResource) else scope.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(f"{scope.node.path} has no CloudFormation resource")
    if any(not reason.strip() for reason in checks.values()):
        raise ValueError("every ignored cfn-lint check needs a reason")
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": sorted(checks)}})


# aws-cdk-lib adds DependsOn on a function's or state machine's role (and its policy);
# the role's GetAtt already orders them, which cfn-lint reports as W3005.
ROLE_DEPENDS_ON = {"W3005": "aws-cdk-lib's DependsOn on the role duplicates the GetAtt of its ARN."}


def nag_ref(scope: IConstruct, value: str) -> str:
    """How cdk-nag writes a value inside a finding id: tokens as ``<LogicalId.Arn>``, ``<LogicalId>``,
    ``<AWS::Region>``, and policy variables ``${aws:x}`` as ``<aws:x>``.

    Lets an IAM5 acknowledgement name a resource ARN without hard-coding a hashed
    logical ID.
    """
    rendered = render_intrinsics(cdk.Stack.of(scope).resolve(value))
    if not isinstance(rendered, str):
        raise ValueError(f"cannot render {value!r} as cdk-nag does")
    return re.sub(r"\$\{([^}]+)\}", r"<\1>", rendered)


def wildcard_resource(scope: IConstruct, resource: str) -> str:
    """The id of cdk-nag's IAM5 finding for a policy resource (an ARN with a ``*``)."""
    return f"AwsSolutions-IAM5[Resource::{nag_ref(scope, resource)}]"


def render_intrinsics(node: Any) -> Any:
    """CloudFormation intrinsics made readable, recursively: ``Ref`` -> ``<Id>``,
    ``Fn::GetAtt`` -> ``<Id.Attr>``, ``Fn::Join`` -> one string, ``Fn::Sub`` -> its template."""
    if isinstance(node, list):
        return [render_intrinsics(n) for n in node]
    if isinstance(node, dict):
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return f"<{arg}>"
            if key == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"
            if key == "Fn::Join":
                return arg[0].join(str(render_intrinsics(p)) for p in arg[1])
            if key == "Fn::Sub" and isinstance(arg, str):
                return arg
        return {k: render_intrinsics(v) for k, v in node.items()}
    return node
