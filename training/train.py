"""Train the window classifier and export the model bundle the edge loads.

SageMaker script mode (sagemaker-training-toolkit ENVIRONMENT_VARIABLES.md): the
model bundle goes to ``SM_MODEL_DIR``, the report to ``SM_OUTPUT_DATA_DIR``, data
comes from ``SM_CHANNEL_TRAIN`` (and ``SM_CHANNEL_VALIDATION`` and ``SM_CHANNEL_TEST``
when given; in a checkout the test channel defaults to ``examples/labels/test``, clips
of other scenes that the model never trains on; ``SM_CHANNEL_CURRENT``, optional, is
the bundle the stage runs now, which the model loop compares the candidate with);
hyperparameters arrive as ``--name value`` arguments (the training toolkit passes only
the job's own hyperparameters that way; its ``sagemaker_*`` ones travel in the
environment), so an argument this script does not know is a misspelling and is refused,
as is a value out of range. A channel holds either feature CSVs (``training.dataset``
format) or label files (``*.json``) with their clips, which are featurised here with
the edge's own code; a channel holding both is refused. Locally::

    SM_MODEL_DIR=build/model SM_CHANNEL_TRAIN=examples/labels python training/train.py

The bundle (``model.tflite`` int8, ``model_float.tflite``, ``model.onnx``,
``manifest.json``) is assembled in a staging folder beside ``SM_MODEL_DIR`` and moved
there only after the compatibility, parity and quality gates (:mod:`training.gates`)
pass. The report (``evaluation.json`` and PNG plots, :mod:`training.report`) is written
either way. Once the bundle ships, and when the test channel holds labelled clips,
``comparison.json`` (:mod:`training.comparison`) joins the report: the candidate and
the ``current`` bundle (if given) replayed on those clips with the edge's pipeline.
Exit status is 2, with the reason logged, when the data is unusable, a gate fails or
the current bundle is unusable, and (argparse's usage error) when an argument is unknown or out of range;
on any failure the reason is also written as one line to ``SM_OUTPUT_DIR/failure``,
which SageMaker reports as the job's FailureReason. In a multi-instance job only the
first of ``SM_HOSTS`` trains and writes the bundle.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: repo layout or SageMaker's /opt/ml/code
    _here = Path(__file__).resolve().parent
    sys.path[:0] = [str(_here), str(_here.parent)]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines drown the job's log

import numpy as np

from edge_component.contracts.manifest import MANIFEST_FILE
from training import comparison, export, gates
from training.channels import load_splits
from training.dataset import DatasetError, window_settings
from training.fit import cross_clip, fit, predict
from training.gates import GateError
from training.hyperparameters import add_arguments, first_problem
from training.labels import LabelError
from training.metrics import choose_threshold, confusion, precision_recall, roc_auc
from training.model import class_weights
from training.scoring import latency, per_clip_auc, score_test_clips, size_metrics

log = logging.getLogger("vigil.train")

__all__ = ["GateError", "export_models", "main", "parse_args", "train"]

# In a checkout, the test channel defaults to the example clips of other scenes; in
# SageMaker's /opt/ml/code there is no examples/ folder, and SM_CHANNEL_TEST decides.
LOCAL_TEST_CHANNEL = Path(__file__).resolve().parents[1] / "examples" / "labels" / "test"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _refuse_leftovers(p: argparse.ArgumentParser, unknown: list[str]) -> None:
    """SageMaker passes only the job's hyperparameters as ``--name value``: anything this
    parser does not know is a misspelt or unsupported hyperparameter, never SageMaker's."""
    known = sorted(o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help")
    names = [u.split("=", 1)[0] for u in unknown if u.startswith("-") and not _is_number(u)]
    if not names:
        p.error(f"unexpected arguments {unknown}")
    hints = []
    for name in names:
        close = difflib.get_close_matches(name.replace("_", "-"), known, n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    p.error(f"unknown hyperparameters: {', '.join(hints)}; this script takes {', '.join(known)}")


# SageMaker copies this file's text into the job's FailureReason, which holds 1024 characters
# (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html).
FAILURE_REASON_MAX = 1024


def write_failure(reason: str) -> None:
    """Write ``reason`` as one line to ``$SM_OUTPUT_DIR/failure`` (default
    ``/opt/ml/output/failure``, only where ``/opt/ml/output`` exists: a SageMaker container)."""
    out = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    if "SM_OUTPUT_DIR" not in os.environ and not out.is_dir():
        return
    line = " ".join(reason.split())[:FAILURE_REASON_MAX]
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "failure").write_text(line + "\n", encoding="utf-8")
    except OSError as exc:
        log.error("cannot write the failure reason to %s: %s", out / "failure", exc)


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are also the job's failure reason."""

    def error(self, message: str):
        write_failure(message)
        super().error(message)


def not_first_host() -> str | None:
    """Why this host writes no bundle, or None. SageMaker merges every host's model
    directory into one archive; ``train.py`` trains on one host, so in a multi-instance
    job (``SM_HOSTS``, ``SM_CURRENT_HOST``) only the first host trains and writes."""
    try:
        hosts = json.loads(os.environ.get("SM_HOSTS", "[]"))
    except json.JSONDecodeError:
        return None
    current = os.environ.get("SM_CURRENT_HOST")
    if len(hosts) > 1 and current and current != hosts[0]:
        return f"{current} is not the first of {len(hosts)} hosts ({hosts[0]} writes the bundle); nothing to do"
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The job's paths and channels (defaults from SageMaker's ``SM_*`` environment) and
    its hyperparameters (:mod:`training.hyperparameters`); exits with status 2
    (argparse's usage error) naming an unknown argument or a value out of range."""
    env = os.environ.get
    p = _Parser(
        description="Train the Vigil window classifier (SageMaker script mode).", allow_abbrev=False
    )  # a truncated name is a typo too
    p.add_argument("--model-dir", default=env("SM_MODEL_DIR", "build/model"))
    p.add_argument("--output-data-dir", default=env("SM_OUTPUT_DATA_DIR", "build/output"))
    p.add_argument("--train", default=env("SM_CHANNEL_TRAIN", "examples/labels"))
    p.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION"))
    local_test = str(LOCAL_TEST_CHANNEL) if LOCAL_TEST_CHANNEL.is_dir() else None
    p.add_argument(
        "--test",
        default=env("SM_CHANNEL_TEST", local_test),
        help="clips never trained on, scored by the shipped model ('none': skip)",
    )
    p.add_argument(
        "--current",
        default=env("SM_CHANNEL_CURRENT"),
        help="the stage's current bundle (folder, model-bundle.zip or model.tar.gz) to compare with on the test clips",
    )
    add_arguments(p)
    # parse_known_args keeps the script-mode contract in view: SageMaker passes only the
    # job's own hyperparameters, so whatever is left over is a typo (_refuse_leftovers).
    args, unknown = p.parse_known_args(argv)
    if unknown:
        _refuse_leftovers(p, unknown)
    problem = first_problem(vars(args))
    if problem:
        p.error(problem)
    return args


def export_models(model, Xt: np.ndarray, args: argparse.Namespace) -> dict[str, bytes]:
    """The bundle's model files: int8 TFLite calibrated on normalised training rows
    ``Xt``, float TFLite, and ONNX."""
    with export.saved_model(model) as sm:
        models = {
            export.INT8_FILE: export.to_tflite_int8(
                sm, export.representative_rows(Xt, args.representative_rows), per_channel=args.int8_per_channel
            ),
            export.FLOAT_FILE: export.to_tflite_float(sm),
        }
    models[export.ONNX_FILE] = export.to_onnx(model)
    return models


def train(args: argparse.Namespace) -> dict:
    """Run the whole job; returns the evaluation report (also written to disk).

    Raises DatasetError/LabelError for unusable data and GateError when a gate fails
    (the report is written first; the bundle is not).
    """
    started = time.time()
    with comparison.current_bundle(args.current):
        pass  # an unusable current channel fails the job before training, not after it
    data, train_ds, val_ds, test_ds = load_splits(args)
    scaler, model = fit(train_ds, val_ds, args)
    Xt = scaler.transform(train_ds.X)
    pruning = None
    if args.prune_sparsity > 0:
        from training.prune import prune_model

        pruning = prune_model(
            model,
            Xt,
            train_ds.y,
            target_sparsity=args.prune_sparsity,
            epochs=args.prune_epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            class_weight=class_weights(train_ds.y),
            seed=args.seed,
        )
        log.info(
            "pruned to %.1f%% zero kernel weights (target %.0f%%)",
            100 * pruning["reached"]["total"],
            100 * args.prune_sparsity,
        )
    keras_val = predict(model, scaler, val_ds.X)
    models = export_models(model, Xt, args)
    sizes = {name: len(b) for name, b in models.items()}

    model_dir, out = Path(args.model_dir), Path(args.output_data_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-staging-", dir=model_dir.parent))
    try:
        bundle_args = dict(models=models, standardizer=scaler, window=window_settings())
        export.write_bundle(staging, threshold=0.5, metrics={}, **bundle_args)  # threshold chosen below
        # Gates run on the bundle as the edge loads it, with the edge's own runtime code.
        compat, scorers = gates.compatibility(staging, list(models))
        gates.enforce(compat)
        scores = {name: scorer.score(val_ds.X) for name, scorer in scorers.items()}
        # In distribution, int8 is held to plain Keras: a wrong calibration range shows as drift here.
        # Out of it (the test channel), inputs beyond the range saturate by design: see ood_parity.
        int8_range = scorers[export.INT8_FILE].input_range
        parity = gates.parity(
            val_ds.y,
            keras_val,
            scores,
            max_int8_steps=args.max_int8_drift_steps,
            max_float_drift=args.max_float_drift,
            max_auc_drop=args.max_auc_drop,
        )
        int8_val = scores[export.INT8_FILE]
        # On the shipped model's own scores: the edge compares these, in 1/256 steps.
        threshold, rule = choose_threshold(val_ds.y, int8_val, args.min_precision)
        quality = gates.quality(val_ds.y, int8_val, threshold, min_auc=args.min_auc, min_recall=args.min_recall)
        ood_X = test_ds.X if test_ds is not None else val_ds.X[:0]
        keras_test, int8_test = predict(model, scaler, ood_X), scorers[export.INT8_FILE].score(ood_X)
        ood = gates.ood_parity(
            keras_test,
            predict(model, scaler, ood_X, clip=int8_range),
            int8_test,
            threshold,
            gates.saturation(scaler.transform(ood_X), int8_range),
            max_int8_steps=args.max_ood_int8_drift_steps,
            max_flip_rate=args.max_ood_flip_rate,
        )

        p8, r8 = precision_recall(val_ds.y, int8_val, threshold)
        metrics = {
            "threshold_rule": f"{rule}, on the int8 model's validation scores",
            "training_windows": len(train_ds),
            "validation_windows": len(val_ds),
            "clips": sorted(set(data.clips.tolist())),
            "auc_keras": roc_auc(val_ds.y, keras_val),
            "auc_int8": roc_auc(val_ds.y, int8_val),
            "auc_float_tflite": roc_auc(val_ds.y, scores[export.FLOAT_FILE]),
            "auc_onnx": roc_auc(val_ds.y, scores[export.ONNX_FILE]),
            "auc_int8_by_clip": per_clip_auc(val_ds, int8_val),
            "precision_int8": p8,
            "recall_int8": r8,
            "confusion_int8": confusion(val_ds.y, int8_val, threshold),
            "max_abs_drift_int8_vs_keras": parity.details["models"][export.INT8_FILE]["max_abs_drift"],
            "max_drift_steps_int8_vs_keras": parity.details["models"][export.INT8_FILE]["max_drift_steps"],
            "max_abs_drift_onnx_vs_keras": parity.details["models"][export.ONNX_FILE]["max_abs_drift"],
            "max_abs_drift_float_tflite_vs_keras": parity.details["models"][export.FLOAT_FILE]["max_abs_drift"],
            **size_metrics(models),
            "int8_weights": "per-channel" if args.int8_per_channel else "per-tensor",
            "parameters": int(model.count_params()),
            "pruning": pruning,
            "cross_clip": cross_clip(data, args) if args.cross_clip else [],
            "validation_saturation": gates.saturation(scaler.transform(val_ds.X), int8_range),
            "gates": {r.gate: r.as_dict() for r in (compat, parity, ood, quality)},
            "train_seconds": round(time.time() - started, 1),
        }
        if test_ds is not None:
            metrics["cross_clip"] += score_test_clips(test_ds, metrics["clips"], keras_test, int8_test, threshold)
        report = {"threshold": threshold, **metrics}
        if args.latency_rows > 0:
            rows = val_ds.X[np.linspace(0, len(val_ds) - 1, args.latency_rows).astype(int)]
            report["latency_us"] = latency(model, scaler, scorers, rows, sizes)
        out.mkdir(parents=True, exist_ok=True)
        if args.plots:
            from training.report import write_plots

            paths = write_plots(
                out,
                val_ds.y,
                {"Keras": keras_val, "int8 TFLite": int8_val, "ONNX Runtime": scores[export.ONNX_FILE]},
                threshold,
            )
            report["plots"] = [p.name for p in paths]
        (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        gates.enforce(parity, ood, quality)

        export.write_bundle(
            staging,
            threshold=threshold,
            metrics=metrics,
            checked_against=compat.details["checked_against"],
            **bundle_args,
        )
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in (*models, MANIFEST_FILE):  # the manifest last: a bundle is complete once it is there
            os.replace(staging / name, model_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_comparison(args, model_dir, out, report["gates"])
    return report


def write_comparison(args: argparse.Namespace, model_dir: Path, out: Path, gate_results: dict) -> Path | None:
    """``comparison.json`` for the model loop, or None (logged) when the test channel has
    no labelled clips to replay. ComparisonInputError for an unusable current channel."""
    if not comparison.label_files(args.test):
        log.warning("no comparison.json: the test channel %s holds no labelled clips to replay", args.test)
        return None
    with comparison.current_bundle(args.current) as current_dir:
        result = comparison.build(gate_results, args.test, model_dir, current_dir)
    path = comparison.write(out, result)
    cand, curr = result["candidate"]["total"], (result["current"] or {}).get("total")
    log.info(
        "comparison on %d test clips: candidate recall %.2f, %.2f false alerts/h; current %s",
        len(result["test_clips"]),
        cand["recall"],
        cand["false_alerts_per_hour"],
        f"recall {curr['recall']:.2f}, {curr['false_alerts_per_hour']:.2f} false alerts/h" if curr else "none",
    )
    return path


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if reason := not_first_host():
        log.info("%s", reason)
        return 0
    try:
        report = train(args)
    except (DatasetError, LabelError, GateError, comparison.ComparisonInputError) as exc:
        log.error("%s", exc)
        write_failure(str(exc))
        return 2
    except Exception as exc:
        write_failure(f"{type(exc).__name__}: {exc}")
        raise
    log.info(
        "model bundle in %s: threshold %.3f, int8 AUC %.3f (Keras %.3f), int8 %d bytes = %.0f%% of float %d",
        args.model_dir,
        report["threshold"],
        report["auc_int8"],
        report["auc_keras"],
        report["size_bytes"]["int8"],
        100 * report["int8_to_float_size"],
        report["size_bytes"]["float"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
