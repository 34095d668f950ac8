"""Train the window classifier and export the model bundle the edge loads.

SageMaker script mode (sagemaker-training-toolkit ENVIRONMENT_VARIABLES.md): the
model bundle goes to ``SM_MODEL_DIR``, the report to ``SM_OUTPUT_DATA_DIR``, data
comes from ``SM_CHANNEL_TRAIN`` (and ``SM_CHANNEL_VALIDATION`` and ``SM_CHANNEL_TEST``
when given; in a checkout the test channel defaults to ``examples/labels/test``, clips
of other scenes that the model never trains on);
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
either way. Exit status is 2, with the reason logged, when the data is unusable or a
gate fails, and (argparse's usage error) when an argument is unknown or out of range.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: repo layout or SageMaker's /opt/ml/code
    _here = Path(__file__).resolve().parent
    sys.path[:0] = [str(_here), str(_here.parent)]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines drown the job's log

import numpy as np

from training import export, gates
from training.dataset import Dataset, DatasetError, featurize_labels, read_dataset
from training.gates import GateError
from training.labels import LabelError
from training.metrics import choose_threshold, confusion, precision_recall, roc_auc
from training.model import Standardizer, build_model, class_weights

log = logging.getLogger("vigil.train")

__all__ = ["GateError", "cross_clip", "fit", "hidden_layers", "load_channel", "main", "parse_args", "split_blocks",
           "train"]

WINDOW = {"detection_fps": 5.0, "window_s": 1.0}
# In a checkout, the test channel defaults to the example clips of other scenes; in
# SageMaker's /opt/ml/code there is no examples/ folder, and SM_CHANNEL_TEST decides.
LOCAL_TEST_CHANNEL = Path(__file__).resolve().parents[1] / "examples" / "labels" / "test"
LATENCY_NAMES = {"tflite_int8": export.INT8_FILE, "tflite_float": export.FLOAT_FILE, "onnxruntime": export.ONNX_FILE}


def _bool(value: str) -> bool:
    """SageMaker passes every hyperparameter as a string: "true"/"false", "1"/"0"."""
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def hidden_layers(text: str) -> tuple[int, ...]:
    """``--hidden``: comma-separated Dense layer sizes, e.g. "64,32" (empty: no hidden layer)."""
    parts = [h.strip() for h in str(text).split(",") if h.strip()]
    if not all(h.isdigit() and int(h) > 0 for h in parts):
        raise ValueError(f"expected comma-separated positive layer sizes such as '64,32', got {text!r}")
    return tuple(int(h) for h in parts)


# What each numeric hyperparameter must satisfy (every float must also be finite: a NaN
# floor would pass every gate, since no comparison with NaN is true).
LIMITS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "epochs": ("at least 1", lambda v: v >= 1),
    "batch_size": ("at least 1", lambda v: v >= 1),
    "learning_rate": ("above 0", lambda v: v > 0),
    "patience": ("0 or more", lambda v: v >= 0),
    "min_precision": ("above 0 and at most 1", lambda v: 0 < v <= 1),
    "validation_every": ("at least 2 (every Nth 10-s block validates, the others train)", lambda v: v >= 2),
    "representative_rows": ("at least 1", lambda v: v >= 1),
    "prune_sparsity": ("0 (off) or more, below 1", lambda v: 0 <= v < 1),
    "prune_epochs": ("at least 1", lambda v: v >= 1),
    "max_int8_drift_steps": ("0 or more", lambda v: v >= 0),
    "max_float_drift": ("0 or more", lambda v: v >= 0),
    "latency_rows": ("0 (off) or more", lambda v: v >= 0),
}


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


def _check_values(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for dest, value in vars(args).items():
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            p.error(f"argument {flag}: must be a finite number, got {value!r}")
        if dest in LIMITS and not LIMITS[dest][1](value):
            p.error(f"argument {flag}: must be {LIMITS[dest][0]}, got {value!r}")
    try:
        hidden_layers(args.hidden)
    except ValueError as exc:
        p.error(f"argument --hidden: {exc}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The job's arguments; exits with status 2 (argparse's usage error) naming an
    unknown argument or a value out of range."""
    env = os.environ.get
    p = argparse.ArgumentParser(description="Train the Vigil window classifier (SageMaker script mode).",
                                allow_abbrev=False)  # a truncated name is a typo too
    p.add_argument("--model-dir", default=env("SM_MODEL_DIR", "build/model"))
    p.add_argument("--output-data-dir", default=env("SM_OUTPUT_DATA_DIR", "build/output"))
    p.add_argument("--train", default=env("SM_CHANNEL_TRAIN", "examples/labels"))
    p.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION"))
    local_test = str(LOCAL_TEST_CHANNEL) if LOCAL_TEST_CHANNEL.is_dir() else None
    p.add_argument("--test", default=env("SM_CHANNEL_TEST", local_test),
                   help="clips never trained on, scored by the shipped model ('none': skip)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--hidden", default="64,32", help="comma-separated Dense layer sizes")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience (epochs)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--min-precision", type=float, default=0.95, help="threshold target on validation")
    p.add_argument("--validation-every", type=int, default=5, help="every Nth 10-s block of each clip validates")
    g = p.add_argument_group("export")
    g.add_argument("--representative-rows", type=int, default=500, help="training rows that calibrate int8 ranges")
    g.add_argument("--int8-per-channel", type=_bool, default=False, help="per-channel weight scales (larger file)")
    g.add_argument("--prune-sparsity", type=float, default=0.0, help="magnitude pruning target 0..1 (0: off)")
    g.add_argument("--prune-epochs", type=int, default=10, help="fine-tuning epochs while pruning")
    g = p.add_argument_group("gates")
    g.add_argument("--min-auc", type=float, default=0.90, help="quality gate: int8 validation AUC floor")
    g.add_argument("--min-recall", type=float, default=0.80, help="quality gate: int8 recall at the threshold")
    g.add_argument("--max-int8-drift-steps", type=float, default=8.0,
                   help="parity gate: max |int8 - keras| score in steps of 1/256")
    g.add_argument("--max-float-drift", type=float, default=1e-4, help="parity gate: float TFLite and ONNX vs Keras")
    g.add_argument("--max-auc-drop", type=float, default=0.01, help="parity gate: int8 AUC below Keras's")
    g = p.add_argument_group("report")
    g.add_argument("--cross-clip", type=_bool, default=True, help="train on the other clips, score each held-out clip")
    g.add_argument("--latency-rows", type=int, default=200, help="rows timed per model and round (0: skip)")
    g.add_argument("--plots", type=_bool, default=True)
    # parse_known_args keeps the script-mode contract in view: SageMaker passes only the
    # job's own hyperparameters, so whatever is left over is a typo (_refuse_leftovers).
    args, unknown = p.parse_known_args(argv)
    if unknown:
        _refuse_leftovers(p, unknown)
    _check_values(p, args)
    return args


def _names(paths: list[Path], most: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def load_channel(path: str | Path, channel: str = "training") -> Dataset:
    """Read every feature CSV in ``path``, or featurise every label file in it; a
    channel holding both kinds is refused (DatasetError naming both)."""
    path = Path(path)
    if path.is_file():
        return read_dataset(path) if path.suffix == ".csv" else featurize_labels([path])
    if not path.is_dir():
        raise DatasetError(f"{channel} channel {path} does not exist")
    csvs, labels = sorted(path.glob("*.csv")), sorted(path.glob("*.json"))
    if csvs and labels:
        raise DatasetError(f"{channel} channel {path} mixes feature CSVs ({_names(csvs)}) and label files "
                           f"({_names(labels)}); a channel holds one kind: move the other to its own channel")
    if csvs:
        parts = [read_dataset(c) for c in csvs]
        return Dataset(*(np.concatenate([getattr(d, f) for d in parts]) for f in ("X", "y", "clips", "times")))
    if not labels:
        raise DatasetError(f"{channel} channel {path} holds no *.csv dataset and no *.json label file")
    return featurize_labels(labels)


def split_blocks(ds: Dataset, every: int, block_s: float = 10.0) -> tuple[Dataset, Dataset]:
    """Split by contiguous 10-s blocks of each clip (every Nth block validates), so
    neighbouring, nearly identical windows do not sit on both sides of the split."""
    block = (ds.times // block_s).astype(int)
    val = (block % every) == (every // 2)
    return ds.subset(~val), ds.subset(val)


def _both_classes(**splits: Dataset) -> None:
    for name, d in splits.items():
        if len(set(d.y.tolist())) < 2:
            raise DatasetError(f"the {name} split has a single class; add labelled footage of both kinds")


def fit(train_ds: Dataset, val_ds: Dataset, args: argparse.Namespace):
    """Fit the scaler on ``train_ds`` and train the seed model (class weights, early
    stopping on ``val_ds``'s loss, best weights restored). Returns ``(scaler, model)``."""
    import keras

    keras.utils.set_random_seed(args.seed)
    scaler = Standardizer.fit(train_ds.X)
    Xt, Xv = scaler.transform(train_ds.X), scaler.transform(val_ds.X)
    model = build_model(Xt.shape[1], hidden_layers(args.hidden), args.learning_rate)
    model.fit(
        Xt, train_ds.y.astype(np.float32),
        validation_data=(Xv, val_ds.y.astype(np.float32)),
        epochs=args.epochs, batch_size=args.batch_size, class_weight=class_weights(train_ds.y),
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)],
        verbose=0, shuffle=True,
    )
    return scaler, model


def _predict(model, scaler: Standardizer, X: np.ndarray) -> np.ndarray:
    return model.predict(scaler.transform(X), verbose=0, batch_size=1024).reshape(-1)


def cross_clip(data: Dataset, args: argparse.Namespace) -> list[dict]:
    """For each clip of the training channel: train on all the other clips (same
    hyperparameters, threshold chosen on their validation blocks) and score the held-out
    clip with Keras.

    Says how the model generalises to a scene it has never seen, not how it memorises.
    Returns one entry per clip (``skipped`` says why when a side lacks a class).
    """
    out = []
    clips = sorted(set(data.clips.tolist()))
    if len(clips) < 2:
        return out
    for held in clips:
        test, rest = data.subset(data.clips == held), data.subset(data.clips != held)
        tr, va = split_blocks(rest, args.validation_every)
        entry = {"model": "retrained without the test clip", "test_clip": held,
                 "train_clips": sorted(set(rest.clips.tolist())),
                 "windows": len(test), "abnormal": int(test.y.sum())}
        try:
            _both_classes(**{"held-out clip": test, "training": tr, "validation": va})
        except DatasetError as exc:
            out.append(entry | {"skipped": str(exc)})
            continue
        scaler, model = fit(tr, va, args)
        val_scores = _predict(model, scaler, va.X)
        threshold, _ = choose_threshold(va.y, val_scores, args.min_precision)
        scores = _predict(model, scaler, test.X)
        p, r = precision_recall(test.y, scores, threshold)
        out.append(entry | {"auc": roc_auc(test.y, scores), "threshold": threshold, "precision": p, "recall": r,
                            "confusion": confusion(test.y, scores, threshold),
                            "in_scene_validation_auc": roc_auc(va.y, val_scores)})
        log.info("cross-clip: trained on %s, %s scores AUC %.3f (in-scene validation %.3f)",
                 entry["train_clips"], held, out[-1]["auc"], out[-1]["in_scene_validation_auc"])
    return out


def score_test_clips(test: Dataset, train_clips: list[str], keras_scores: np.ndarray, int8_scores: np.ndarray,
                     threshold: float) -> list[dict]:
    """The shipped model on each clip of the test channel (never trained on): AUC of
    Keras and int8, and int8 precision, recall and confusion at the threshold."""
    from training.gates import INT8_STEP

    out = []
    for clip in sorted(set(test.clips.tolist())):
        m = test.clips == clip
        y, k, q = test.y[m], keras_scores[m], int8_scores[m]
        entry = {"model": "shipped", "test_clip": clip, "train_clips": train_clips, "windows": int(m.sum()),
                 "abnormal": int(y.sum()), "max_drift_steps_int8_vs_keras": float(np.max(np.abs(q - k)) / INT8_STEP)}
        if len(set(y.tolist())) < 2:
            out.append(entry | {"skipped": f"{clip} has a single class"})
            continue
        p, r = precision_recall(y, q, threshold)
        out.append(entry | {"auc": roc_auc(y, q), "auc_keras": roc_auc(y, k), "threshold": threshold,
                            "precision": p, "recall": r, "confusion": confusion(y, q, threshold)})
        log.info("test clip %s (never trained on): int8 AUC %.3f, recall %.3f, precision %.3f at %.3f",
                 clip, out[-1]["auc"], r, p, threshold)
    return out


def _per_clip_auc(ds: Dataset, scores: np.ndarray) -> dict[str, float | None]:
    out = {}
    for clip in sorted(set(ds.clips.tolist())):
        m = ds.clips == clip
        out[clip] = roc_auc(ds.y[m], scores[m]) if len(set(ds.y[m].tolist())) == 2 else None
    return out


def _latency(model, scaler: Standardizer, scorers: dict, rows: np.ndarray, sizes: dict[str, int]) -> dict:
    from training.report import latency_table, measure_latency

    calls = {"keras": lambda r: model(scaler.transform(r.reshape(1, -1)), training=False)}
    calls |= {name: scorers[file].score for name, file in LATENCY_NAMES.items() if file in scorers}
    latency = measure_latency(calls, rows)
    log.info("per-inference latency (one row, normalisation included):\n%s",
             latency_table(latency, {n: sizes[f] for n, f in LATENCY_NAMES.items() if f in sizes}, "tflite_int8"))
    return latency


def load_splits(args: argparse.Namespace) -> tuple[Dataset, Dataset, Dataset, Dataset | None]:
    """``(all training-channel data, training split, validation split, test channel or
    None)``; raises DatasetError when a split lacks a class."""
    data = load_channel(args.train)
    if args.validation:
        train_ds, val_ds = data, load_channel(args.validation, "validation")
    else:
        train_ds, val_ds = split_blocks(data, args.validation_every)
    _both_classes(training=train_ds, validation=val_ds)
    test_ds = load_channel(args.test, "test") if args.test and str(args.test).lower() != "none" else None
    log.info("windows: %d train (%d abnormal), %d validation (%d abnormal), clips %s; test clips %s",
             len(train_ds), int(train_ds.y.sum()), len(val_ds), int(val_ds.y.sum()), sorted(set(data.clips.tolist())),
             sorted(set(test_ds.clips.tolist())) if test_ds is not None else "none")
    return data, train_ds, val_ds, test_ds


def export_models(model, Xt: np.ndarray, args: argparse.Namespace) -> dict[str, bytes]:
    """The bundle's model files: int8 TFLite calibrated on normalised training rows
    ``Xt``, float TFLite, and ONNX."""
    with export.saved_model(model) as sm:
        models = {
            export.INT8_FILE: export.to_tflite_int8(sm, export.representative_rows(Xt, args.representative_rows),
                                                    per_channel=args.int8_per_channel),
            export.FLOAT_FILE: export.to_tflite_float(sm),
        }
    models[export.ONNX_FILE] = export.to_onnx(model)
    return models


def _size_metrics(models: dict[str, bytes]) -> dict:
    short = {export.INT8_FILE: "int8", export.FLOAT_FILE: "float", export.ONNX_FILE: "onnx"}
    return {
        "size_bytes": {short[n]: len(b) for n, b in models.items()},
        "int8_to_float_size": len(models[export.INT8_FILE]) / len(models[export.FLOAT_FILE]),
        "gzip_bytes": {short[n]: export.gzip_size(b) for n, b in models.items()},
        "tflite_ops": {n: export.tflite_ops(b) for n, b in models.items() if n.endswith(".tflite")},
    }


def train(args: argparse.Namespace) -> dict:
    """Run the whole job; returns the evaluation report (also written to disk).

    Raises DatasetError/LabelError for unusable data and GateError when a gate fails
    (the report is written first; the bundle is not).
    """
    started = time.time()
    data, train_ds, val_ds, test_ds = load_splits(args)
    scaler, model = fit(train_ds, val_ds, args)
    Xt = scaler.transform(train_ds.X)
    pruning = None
    if args.prune_sparsity > 0:
        from training.prune import prune_model

        pruning = prune_model(model, Xt, train_ds.y, target_sparsity=args.prune_sparsity, epochs=args.prune_epochs,
                              batch_size=args.batch_size, learning_rate=args.learning_rate,
                              class_weight=class_weights(train_ds.y), seed=args.seed)
        log.info("pruned to %.1f%% zero kernel weights (target %.0f%%)", 100 * pruning["reached"]["total"],
                 100 * args.prune_sparsity)
    keras_val = _predict(model, scaler, val_ds.X)
    models = export_models(model, Xt, args)
    sizes = {name: len(b) for name, b in models.items()}

    model_dir, out = Path(args.model_dir), Path(args.output_data_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-staging-", dir=model_dir.parent))
    try:
        bundle_args = dict(models=models, standardizer=scaler, window=WINDOW)
        export.write_bundle(staging, threshold=0.5, metrics={}, **bundle_args)  # threshold chosen below
        # Gates run on the bundle as the edge loads it, with the edge's own runtime code.
        compat, scorers = gates.compatibility(staging, list(models))
        gates.enforce(compat)
        scores = {name: scorer.score(val_ds.X) for name, scorer in scorers.items()}
        parity = gates.parity(val_ds.y, keras_val, scores, max_int8_steps=args.max_int8_drift_steps,
                              max_float_drift=args.max_float_drift, max_auc_drop=args.max_auc_drop)
        int8_val = scores[export.INT8_FILE]
        # On the shipped model's own scores: the edge compares these, in 1/256 steps.
        threshold, rule = choose_threshold(val_ds.y, int8_val, args.min_precision)
        quality = gates.quality(val_ds.y, int8_val, threshold, min_auc=args.min_auc, min_recall=args.min_recall)

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
            "auc_int8_by_clip": _per_clip_auc(val_ds, int8_val),
            "precision_int8": p8,
            "recall_int8": r8,
            "confusion_int8": confusion(val_ds.y, int8_val, threshold),
            "max_abs_drift_int8_vs_keras": parity.details["models"][export.INT8_FILE]["max_abs_drift"],
            "max_drift_steps_int8_vs_keras": parity.details["models"][export.INT8_FILE]["max_drift_steps"],
            "max_abs_drift_onnx_vs_keras": parity.details["models"][export.ONNX_FILE]["max_abs_drift"],
            "max_abs_drift_float_tflite_vs_keras": parity.details["models"][export.FLOAT_FILE]["max_abs_drift"],
            **_size_metrics(models),
            "int8_weights": "per-channel" if args.int8_per_channel else "per-tensor",
            "parameters": int(model.count_params()),
            "pruning": pruning,
            "cross_clip": cross_clip(data, args) if args.cross_clip else [],
            "gates": {r.gate: r.as_dict() for r in (compat, parity, quality)},
            "train_seconds": round(time.time() - started, 1),
        }
        if test_ds is not None:
            metrics["cross_clip"] += score_test_clips(
                test_ds, metrics["clips"], _predict(model, scaler, test_ds.X), scorers[export.INT8_FILE].score(test_ds.X),
                threshold)
        report = {"threshold": threshold, **metrics}
        if args.latency_rows > 0:
            rows = val_ds.X[np.linspace(0, len(val_ds) - 1, args.latency_rows).astype(int)]
            report["latency_us"] = _latency(model, scaler, scorers, rows, sizes)
        out.mkdir(parents=True, exist_ok=True)
        if args.plots:
            from training.report import write_plots

            paths = write_plots(out, val_ds.y, {"Keras": keras_val, "int8 TFLite": int8_val,
                                                "ONNX Runtime": scores[export.ONNX_FILE]}, threshold)
            report["plots"] = [p.name for p in paths]
        (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        gates.enforce(parity, quality)

        export.write_bundle(staging, threshold=threshold, metrics=metrics,
                            checked_against=compat.details["checked_against"], **bundle_args)
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in (*models, "manifest.json"):  # the manifest last: a bundle is complete once it is there
            os.replace(staging / name, model_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        report = train(args)
    except (DatasetError, LabelError, GateError) as exc:
        log.error("%s", exc)
        return 2
    log.info("model bundle in %s: threshold %.3f, int8 AUC %.3f (Keras %.3f), int8 %d bytes = %.0f%% of float %d",
             args.model_dir, report["threshold"], report["auc_int8"], report["auc_keras"],
             report["size_bytes"]["int8"], 100 * report["int8_to_float_size"], report["size_bytes"]["float"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
