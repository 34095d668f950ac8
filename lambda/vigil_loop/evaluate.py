"""Step 1, evaluate: read the comparison the training job wrote.

The comparison runs inside the training job, not here: the job's container has the
edge's code (OpenCV featurising, LiteRT) and the stage's test channel, so it scores the
candidate and the current model (given to the job as its ``current`` channel) on the
test clips with :mod:`training.evaluate` and writes ``comparison.json`` into
``SM_OUTPUT_DATA_DIR``, which SageMaker uploads as ``<job>/output/output.tar.gz``. A
Lambda has neither the libraries nor the 15-minute budget for clip replays.

``comparison.json``::

    {"gates": {"<gate>": {"passed": bool, "failures": [str]}},
     "candidate": {"sha256": str, "total": FIGURES, "by_label": {"<label>": FIGURES}},
     "current": same shape, or null when the stage runs no model yet}

FIGURES: ``{"recall": 0..1, "false_alerts_per_hour": >= 0, "delay_s_mean": s or null}``.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

COMPARISON_FILE = "comparison.json"
FIGURES = ("recall", "false_alerts_per_hour", "delay_s_mean")


class ComparisonError(ValueError):
    """The job's output has no readable comparison, or it lacks a figure."""


def output_keys(job_name: str) -> dict[str, str]:
    """The S3 keys of a training job's model and output archives (the training state
    machine's ``models/<job>/`` prefix)."""
    return {
        "model": f"models/{job_name}/output/model.tar.gz",
        "output": f"models/{job_name}/output/output.tar.gz",
    }


def _check_figures(where: str, figures: Any) -> None:
    if not isinstance(figures, dict):
        raise ComparisonError(f"{where}: expected an object of figures, got {type(figures).__name__}")
    missing = [name for name in FIGURES if name not in figures]
    if missing:
        raise ComparisonError(f"{where}: missing {', '.join(missing)}")


def validate(comparison: Any) -> dict[str, Any]:
    """``comparison`` if it has the shape above, else ComparisonError naming the field."""
    if not isinstance(comparison, dict):
        raise ComparisonError(f"{COMPARISON_FILE}: expected an object")
    if not isinstance(comparison.get("gates"), dict):
        raise ComparisonError(f"{COMPARISON_FILE}: 'gates' missing")
    for side in ("candidate", "current"):
        model = comparison.get(side)
        if model is None and side == "current":
            continue
        if not isinstance(model, dict):
            raise ComparisonError(f"{COMPARISON_FILE}: '{side}' missing")
        _check_figures(f"{side}.total", model.get("total"))
        for label, figures in (model.get("by_label") or {}).items():
            _check_figures(f"{side}.by_label.{label}", figures)
    if not isinstance(comparison["candidate"].get("sha256"), str):
        raise ComparisonError(f"{COMPARISON_FILE}: candidate.sha256 missing")
    return comparison


def read_comparison(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    """The validated ``comparison.json`` inside the tar.gz at ``s3://bucket/key``;
    ComparisonError when the archive is unreadable or lacks it."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            member = next((m for m in archive.getmembers() if m.name.lstrip("./") == COMPARISON_FILE), None)
            if member is None or not member.isfile():
                raise ComparisonError(f"s3://{bucket}/{key} holds no {COMPARISON_FILE}")
            handle = archive.extractfile(member)
            assert handle is not None  # a regular file always has a handle
            text = handle.read().decode("utf-8")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ComparisonError(f"s3://{bucket}/{key} is not a readable tar.gz: {exc}") from exc
    try:
        return validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ComparisonError(f"{COMPARISON_FILE} in s3://{bucket}/{key} is not JSON: {exc}") from exc


def evaluate(s3: Any, bucket: str, job_name: str) -> dict[str, Any]:
    """The step's output: the comparison plus where the candidate's model archive is."""
    keys = output_keys(job_name)
    comparison = read_comparison(s3, bucket, keys["output"])
    return {
        "job_name": job_name,
        "model_data_url": f"s3://{bucket}/{keys['model']}",
        "comparison_url": f"s3://{bucket}/{keys['output']}",
        **comparison,
    }
