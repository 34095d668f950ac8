"""Reading synthesized templates by intent: logical IDs come from the constructs, never from literals."""

from __future__ import annotations

import json
from typing import Any, Iterable

import aws_cdk as cdk
from constructs import IConstruct


def lid(construct: IConstruct) -> str:
    """The logical ID of a construct's CloudFormation resource (or of the resource itself)."""
    resource = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
    return cdk.Stack.of(construct).get_logical_id(resource)  # type: ignore[arg-type]


def ref(construct: IConstruct) -> str:
    return f"<{lid(construct)}>"


def att(construct: IConstruct, attribute: str) -> str:
    return f"<{lid(construct)}.{attribute}>"


def render(node: Any) -> Any:
    """Intrinsics made readable: Ref -> ``<Id>``, GetAtt -> ``<Id.Attr>``, Join -> one string,
    Sub -> its template string; recursively through lists and dicts."""
    if isinstance(node, list):
        return [render(n) for n in node]
    if isinstance(node, dict):
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return f"<{arg}>"
            if key == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"
            if key == "Fn::Join":
                return arg[0].join(str(render(p)) for p in arg[1])
            if key == "Fn::Sub" and isinstance(arg, str):
                return arg
        return {k: render(v) for k, v in node.items()}
    return node


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
