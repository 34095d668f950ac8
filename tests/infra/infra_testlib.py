"""Reading synthesized templates by intent: logical IDs come from the constructs, never from literals."""

from __future__ import annotations

import json
from typing import Any, Iterable

import aws_cdk as cdk
from constructs import IConstruct

from infra.nag import render_intrinsics as render  # noqa: F401 (re-exported for the tests)


def lid(construct: IConstruct) -> str:
    """The logical ID of a construct's CloudFormation resource (or of the resource itself)."""
    resource = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
    return cdk.Stack.of(construct).get_logical_id(resource)  # type: ignore[arg-type]


def ref(construct: IConstruct) -> str:
    return f"<{lid(construct)}>"


def att(construct: IConstruct, attribute: str) -> str:
    return f"<{lid(construct)}.{attribute}>"


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def properties(template: dict[str, Any], construct: IConstruct) -> dict[str, Any]:
    return template["Resources"][lid(construct)]["Properties"]


def policy_statements(template: dict[str, Any], role: IConstruct) -> list[dict[str, Any]]:
    """Every statement of the AWS::IAM::Policy resources attached to ``role``, rendered."""
    role_ref = {"Ref": lid(role)}
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if role_ref in policy["Properties"].get("Roles", []):
            found.extend(render(policy["Properties"]["PolicyDocument"]["Statement"]))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions_of(statements: Iterable[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"])}


def statements_allowing(statements: Iterable[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in as_list(s["Action"]) and s["Effect"] == "Allow"]


def rendered_json(value: Any) -> Any:
    """A JSON document CloudFormation builds with Fn::Join (inline recipes, state machines), parsed."""
    return json.loads(render(value))
