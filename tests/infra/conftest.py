"""Infra test fixtures: the real app (every stage of cdk.json, cdk-nag on) synthesized once
per session, and ``cfn``, which reads synthesized templates by intent."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The repo root (infra, edge_component), whatever pytest's import mode.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# jsii starts Node on first import of aws_cdk: use the venv's Node 24 if there is one.
_VENV_NODE = Path(sys.prefix) / "bin" / "node"
if _VENV_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(_VENV_NODE))

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk import aws_logs as logs  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from constructs import IConstruct  # noqa: E402

from infra.config import STAGES_CONTEXT_KEY, GreengrassConfig, RolloutConfig, StageConfig, load_stages  # noqa: E402
from infra.edge_deployment import EDGE_PACKAGE_DIR, EdgeDeployment  # noqa: E402
from infra.edge_settings import EdgeConfig  # noqa: E402
from infra.housekeeping import Housekeeping  # noqa: E402
from infra.nag import render_intrinsics  # noqa: E402
from infra.stage import VigilStage, build_app  # noqa: E402


def cdk_json_context() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass(frozen=True)
class Synthesized:
    """One stage of the synthesized app: its config, stage, template dict and cloud assembly dir."""

    config: StageConfig
    stage: VigilStage
    template_path: Path
    template_json: dict[str, Any]
    outdir: Path

    @cached_property
    def template(self) -> Template:
        return Template.from_json(self.template_json)

    def asset_path(self, file_or_dir_name: str) -> Path:
        return self.outdir / file_or_dir_name


def new_stack(tmp_path: Path, name: str, region: str = "eu-west-1") -> tuple[cdk.Stack, iam.Role]:
    """A stack ``name`` in its own app (outdir ``tmp_path/out-<n>``, a new one per call, so
    several synths of one test do not share an assembly) and a token exchange role in it."""
    app = cdk.App(outdir=str(tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"))
    stack = cdk.Stack(app, name, env=cdk.Environment(region=region))
    role = iam.Role(stack, "Tes", assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"))
    return stack, role


def small_edge_deployment(
    stack: cdk.Stack, role: iam.IRole, housekeeping: Housekeeping, *, stage_name: str = "test", **options: Any
) -> EdgeDeployment:
    """An EdgeDeployment ``Edge`` in ``stack`` for the thing group ``stage_name``, with small
    test settings (short edge timings, a slow rollout, one-week logs, DESTROY); ``options``
    (package_dir, recipe_path, model, evidence_bucket...) go to EdgeDeployment as they are."""
    return EdgeDeployment(
        stack,
        "Edge",
        stage_name=stage_name,
        thing_group_arn=f"arn:aws:iot:eu-west-1:111111111111:thinggroup/{stage_name}",
        token_exchange_role=role,
        edge=EdgeConfig(min_consecutive_windows=2, cooldown_s=1, end_after_quiet_s=2, detection_fps=5),
        rollout=RolloutConfig(
            base_rate_per_minute=1,
            increment_factor=2,
            rate_increase_after_succeeded=1,
            maximum_per_minute=10,
            abort_threshold_percentage=10,
            abort_min_executed_things=1,
            in_progress_timeout_minutes=10,
        ),
        greengrass_config=GreengrassConfig(),
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=cdk.RemovalPolicy.DESTROY,
        housekeeping=housekeeping,
        **options,
    )


def copy_edge_package(tmp_path: Path) -> Path:
    """A copy of the edge component's package under ``tmp_path/src``, for tests that change its code."""
    package = tmp_path / "src" / "edge_component"
    shutil.copytree(EDGE_PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return package


@pytest.fixture(scope="session")
def context() -> dict[str, Any]:
    return cdk_json_context()


@pytest.fixture(scope="session")
def raw_stages(context) -> dict[str, Any]:
    return context[STAGES_CONTEXT_KEY]


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory, context) -> dict[str, Synthesized]:
    """Synthesize the app as ``app.py`` does (same context, cdk-nag on): raises on any
    unacknowledged nag finding, so every test that uses this is also a security gate."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(context=context, outdir=str(outdir))
    stages = build_app(app, load_stages(context[STAGES_CONTEXT_KEY]))
    app.synth()
    result = {}
    for name, stage in stages.items():
        path = outdir / f"assembly-{name}" / stage.stack.template_file
        result[name] = Synthesized(
            config=stage.config,
            stage=stage,
            template_path=path,
            template_json=json.loads(path.read_text()),
            outdir=outdir,
        )
    return result


@pytest.fixture(scope="session")
def templates(synthesized) -> dict[str, Template]:
    return {name: s.template for name, s in synthesized.items()}


@pytest.fixture(params=["dev", "prod"], scope="session")
def stage(request, synthesized) -> Synthesized:
    """Each stage of cdk.json in turn (the assertions hold for both)."""
    return synthesized[request.param]


class TemplateReader:
    """Reading synthesized templates by intent: logical IDs come from the constructs, never from literals."""

    render = staticmethod(render_intrinsics)

    @staticmethod
    def lid(construct: IConstruct) -> str:
        """The logical ID of a construct's CloudFormation resource (or of the resource itself)."""
        resource = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
        return cdk.Stack.of(construct).get_logical_id(resource)  # type: ignore[arg-type]

    @classmethod
    def ref(cls, construct: IConstruct) -> str:
        return f"<{cls.lid(construct)}>"

    @classmethod
    def att(cls, construct: IConstruct, attribute: str) -> str:
        return f"<{cls.lid(construct)}.{attribute}>"

    @staticmethod
    def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}

    @classmethod
    def properties(cls, template: dict[str, Any], construct: IConstruct) -> dict[str, Any]:
        return template["Resources"][cls.lid(construct)]["Properties"]

    @classmethod
    def policy_statements(cls, template: dict[str, Any], role: IConstruct) -> list[dict[str, Any]]:
        """Every statement of the AWS::IAM::Policy resources attached to ``role``, rendered."""
        role_ref = {"Ref": cls.lid(role)}
        found = []
        for policy in cls.resources(template, "AWS::IAM::Policy").values():
            if role_ref in policy["Properties"].get("Roles", []):
                found.extend(cls.render(policy["Properties"]["PolicyDocument"]["Statement"]))
        return found

    @staticmethod
    def as_list(value: Any) -> list[Any]:
        return value if isinstance(value, list) else [value]

    @classmethod
    def actions_of(cls, statements: Iterable[dict[str, Any]]) -> set[str]:
        return {a for s in statements for a in cls.as_list(s["Action"])}

    @classmethod
    def statements_allowing(cls, statements: Iterable[dict[str, Any]], action: str) -> list[dict[str, Any]]:
        return [s for s in statements if action in cls.as_list(s["Action"]) and s["Effect"] == "Allow"]

    @classmethod
    def rendered_json(cls, value: Any) -> Any:
        """A JSON document CloudFormation builds with Fn::Join (inline recipes, state machines), parsed."""
        return json.loads(cls.render(value))


@pytest.fixture(scope="session")
def cfn() -> type[TemplateReader]:
    """Template-reading helpers: ``cfn.lid(construct)``, ``cfn.properties(template, construct)``,
    ``cfn.policy_statements(template, role)``, ``cfn.render(value)`` and the like."""
    return TemplateReader
