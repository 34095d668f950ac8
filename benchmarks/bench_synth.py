#!/usr/bin/env python3
"""Synth time and template size for a stage sized for 1, 100 and 10,000 cameras.

Two ways a camera can join a stage:

* by claim (fleet provisioning): the camera registers itself with the stage's
  provisioning template; the stack holds nothing per camera.
* listed: the camera's thing name is in ``things`` in cdk.json; the stack holds a thing
  and a thing-group membership per camera (meant for small stages).

Each row builds and synthesizes one stage (the ``prod`` stage of cdk.json, cdk-nag on)
in a fresh app and reports the wall time, the resource count and the template size.
Listed stages past CloudFormation's 500-resource limit are not synthesized (they
could not be deployed; aws-cdk-lib refuses them too); ``--listed-max 10000`` tries anyway.

    .venv/bin/python benchmarks/bench_synth.py [--listed-max 100] [--repeat 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
_VENV_NODE = Path(sys.prefix) / "bin" / "node"
if _VENV_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(_VENV_NODE))

import aws_cdk as cdk  # noqa: E402

from infra.config import STAGES_CONTEXT_KEY, load_stage  # noqa: E402
from infra.stage import build_app  # noqa: E402

CAMERAS = (1, 100, 10_000)
CLOUDFORMATION_RESOURCE_LIMIT = 500
STAGE = "prod"


def synth_stage(context: dict, raw_stage: dict) -> tuple[float, dict]:
    """Build and synthesize one stage; return (seconds, template)."""
    with tempfile.TemporaryDirectory() as outdir:
        started = time.perf_counter()
        app = cdk.App(context=context, outdir=outdir)
        (stage,) = build_app(app, {STAGE: load_stage(STAGE, raw_stage)}).values()
        app.synth()
        elapsed = time.perf_counter() - started
        template = json.loads((Path(outdir) / f"assembly-{STAGE}" / stage.stack.template_file).read_text())
    return elapsed, template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listed-max", type=int, default=100, help="largest listed stage to synthesize")
    parser.add_argument("--repeat", type=int, default=1, help="synths per row (the median is shown)")
    args = parser.parse_args()

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    base = copy.deepcopy(context[STAGES_CONTEXT_KEY][STAGE])
    synth_stage(context, {**base, "things": [], "fleet_provisioning": True})  # warm up jsii and the caches

    rows = []
    reference = None
    for mode in ("claim", "listed"):
        for cameras in CAMERAS:
            raw = {**base, "fleet_provisioning": True}
            # By claim the stage config does not mention the cameras at all.
            raw["things"] = [f"cam-{i:05d}" for i in range(cameras)] if mode == "listed" else []
            if mode == "listed" and cameras > args.listed_max:
                rows.append((cameras, mode, None, None, None, "not synthesized (see below)"))
                continue
            started = time.perf_counter()
            try:
                runs = [synth_stage(context, raw) for _ in range(args.repeat)]
            except RuntimeError as exc:  # aws-cdk-lib refuses stacks over CloudFormation's limit
                match = re.search(r"TooManyResourcesInStack: .*?: (\d+) is greater", str(exc))
                if not match:
                    raise
                refused_after = time.perf_counter() - started
                rows.append(
                    (cameras, mode, refused_after, int(match.group(1)), None, "refused by aws-cdk-lib: over 500")
                )
                continue
            seconds = statistics.median(r[0] for r in runs)
            template = runs[0][1]
            count = len(template["Resources"])
            size_kib = len(json.dumps(template)) / 1024
            if mode == "claim" and reference is None:
                reference = template
            same = "yes" if template == reference else "no"
            note = f"same template as 1 by claim: {same}"
            if count > CLOUDFORMATION_RESOURCE_LIMIT:
                note += f"; over the {CLOUDFORMATION_RESOURCE_LIMIT}-resource limit"
            rows.append((cameras, mode, seconds, count, size_kib, note))

    print(f"{'cameras':>8}  {'joined':<7} {'synth s':>8} {'resources':>10} {'template KiB':>13}  note")
    for cameras, mode, seconds, count, size_kib, note in rows:
        if seconds is None:
            print(f"{cameras:>8}  {mode:<7} {'-':>8} {'-':>10} {'-':>13}  {note}")
        elif size_kib is None:
            print(f"{cameras:>8}  {mode:<7} {seconds:>8.2f} {count:>10} {'-':>13}  {note}")
        else:
            print(f"{cameras:>8}  {mode:<7} {seconds:>8.2f} {count:>10} {size_kib:>13.1f}  {note}")

    listed = [(c, n) for c, m, _, n, kib, _ in rows if m == "listed" and kib is not None]
    if len(listed) >= 2:
        (c0, n0), (c1, n1) = listed[0], listed[-1]
        per_camera = (n1 - n0) / (c1 - c0)
        fits = int(c0 + (CLOUDFORMATION_RESOURCE_LIMIT - n0) / per_camera)
        print(
            f"\nlisted cameras cost {per_camera:g} resources each: a listed stage fits at most ~{fits} cameras "
            f"in one stack; 10,000 would need ~{int(n0 + (10_000 - c0) * per_camera)} resources."
        )
    print("by claim, the stack holds nothing per camera: the provisioning template registers each one.")


if __name__ == "__main__":
    main()
