"""Infra test fixtures: the real app (every stage of cdk.json, cdk-nag on) synthesized once per session."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The repo root (infra, edge_component) and this folder (infra_testlib), whatever pytest's import mode.
for _path in (REPO_ROOT, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
# jsii starts Node on first import of aws_cdk: use the venv's Node 24 if there is one.
_VENV_NODE = Path(sys.prefix) / "bin" / "node"
if _VENV_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(_VENV_NODE))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from infra.config import STAGES_CONTEXT_KEY, StageConfig, load_stages  # noqa: E402
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
