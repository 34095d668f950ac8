"""Train the window classifier and export the model bundle the edge loads.

SageMaker script mode (sagemaker-training-toolkit ENVIRONMENT_VARIABLES.md): the
model bundle goes to ``SM_MODEL_DIR``, the report to ``SM_OUTPUT_DATA_DIR``, data
comes from ``SM_CHANNEL_TRAIN`` (and ``SM_CHANNEL_VALIDATION`` when given);
hyperparameters arrive as ``--name value`` arguments. A channel holds either
feature CSVs (``training.dataset`` format) or label files (``*.json``) with their
clips, which are featurised here with the edge's own code. Locally::

    SM_MODEL_DIR=build/model SM_CHANNEL_TRAIN=examples/labels python training/train.py

Exit status is non-zero, with a message, when the data is unusable or a gate fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: repo layout or SageMaker's /opt/ml/code
    _here = Path(__file__).resolve().parent
    sys.path[:0] = [str(_here), str(_here.parent)]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines drown the job's log

import numpy as np

from training.dataset import Dataset, DatasetError, featurize_labels, read_dataset
from training.export import to_tflite_float, to_tflite_int8, write_bundle
from training.labels import LabelError
from training.metrics import choose_threshold, confusion, precision_recall, roc_auc
from training.model import Standardizer, build_model, class_weights

log = logging.getLogger("vigil.train")


class GateError(RuntimeError):
    """An exported model failed a compatibility, parity or quality gate."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Train the Vigil window classifier (SageMaker script mode).")
    p.add_argument("--model-dir", default=env("SM_MODEL_DIR", "build/model"))
    p.add_argument("--output-data-dir", default=env("SM_OUTPUT_DATA_DIR", "build/output"))
    p.add_argument("--train", default=env("SM_CHANNEL_TRAIN", "examples/labels"))
    p.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION"))
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--hidden", default="64,32", help="comma-separated Dense layer sizes")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience (epochs)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--min-precision", type=float, default=0.95, help="threshold target on validation")
    p.add_argument("--min-auc", type=float, default=0.90, help="quality gate on validation AUC")
    p.add_argument("--max-int8-drift", type=float, default=0.05, help="parity gate: max |int8 - keras| score")
    p.add_argument("--validation-every", type=int, default=5, help="every Nth 10-s block of each clip validates")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        log.info("ignoring unknown arguments: %s", unknown)
    return args


def load_channel(path: str | Path) -> Dataset:
    """Read every feature CSV in ``path``; if there is none, featurise its label files."""
    path = Path(path)
    if path.is_file():
        return read_dataset(path) if path.suffix == ".csv" else featurize_labels([path])
    if not path.is_dir():
        raise DatasetError(f"training channel {path} does not exist")
    csvs = sorted(path.glob("*.csv"))
    if csvs:
        parts = [read_dataset(c) for c in csvs]
        return Dataset(*(np.concatenate([getattr(d, f) for d in parts]) for f in ("X", "y", "clips", "times")))
    labels = sorted(path.glob("*.json"))
    if not labels:
        raise DatasetError(f"training channel {path} holds no *.csv dataset and no *.json label file")
    return featurize_labels(labels)


def split_blocks(ds: Dataset, every: int, block_s: float = 10.0) -> tuple[Dataset, Dataset]:
    """Split by contiguous 10-s blocks of each clip (every Nth block validates), so
    neighbouring, nearly identical windows do not sit on both sides of the split."""
    block = (ds.times // block_s).astype(int)
    val = (block % every) == (every // 2)
    return ds.subset(~val), ds.subset(val)


def train(args: argparse.Namespace) -> dict:
    """Run the whole job; returns the evaluation report (also written to disk)."""
    import keras

    started = time.time()
    keras.utils.set_random_seed(args.seed)
    data = load_channel(args.train)
    if args.validation:
        train_ds, val_ds = data, load_channel(args.validation)
    else:
        train_ds, val_ds = split_blocks(data, args.validation_every)
    for name, d in (("training", train_ds), ("validation", val_ds)):
        if len(set(d.y.tolist())) < 2:
            raise DatasetError(f"the {name} split has a single class; add labelled footage of both kinds")
    log.info("windows: %d train (%d abnormal), %d validation (%d abnormal)",
             len(train_ds), int(train_ds.y.sum()), len(val_ds), int(val_ds.y.sum()))

    scaler = Standardizer.fit(train_ds.X)
    Xt, Xv = scaler.transform(train_ds.X), scaler.transform(val_ds.X)
    hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
    model = build_model(Xt.shape[1], hidden, args.learning_rate)
    model.fit(
        Xt, train_ds.y.astype(np.float32),
        validation_data=(Xv, val_ds.y.astype(np.float32)),
        epochs=args.epochs, batch_size=args.batch_size, class_weight=class_weights(train_ds.y),
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)],
        verbose=0, shuffle=True,
    )
    keras_val = model.predict(Xv, verbose=0).reshape(-1)
    threshold, rule = choose_threshold(val_ds.y, keras_val, args.min_precision)

    float_tfl = to_tflite_float(model)
    int8_tfl = to_tflite_int8(model, Xt)

    model_dir = Path(args.model_dir)
    metrics = {"threshold_rule": rule}
    write_bundle(model_dir, int8_model=int8_tfl, float_model=float_tfl, standardizer=scaler,
                 threshold=threshold, metrics=metrics, window={"detection_fps": 5.0, "window_s": 1.0})

    # Gates run on the bundle as the edge loads it, with the edge's own runtime code.
    from edge_component.model import ModelError, Scorer, load_bundle

    try:
        bundle = load_bundle(model_dir)
    except ModelError as exc:
        raise GateError(f"compatibility gate: the edge runtime cannot load the int8 model: {exc}") from None
    int8_val = bundle.scorer.score(val_ds.X)
    float_val = Scorer(model_dir / "model_float.tflite", scaler.mean, scaler.scale).score(val_ds.X)
    drift = float(np.max(np.abs(int8_val - keras_val)))
    auc_keras, auc_int8 = roc_auc(val_ds.y, keras_val), roc_auc(val_ds.y, int8_val)
    p8, r8 = precision_recall(val_ds.y, int8_val, threshold)
    metrics.update({
        "validation_windows": len(val_ds),
        "auc_keras": auc_keras,
        "auc_int8": auc_int8,
        "auc_float_tflite": roc_auc(val_ds.y, float_val),
        "precision_int8": p8,
        "recall_int8": r8,
        "confusion_int8": confusion(val_ds.y, int8_val, threshold),
        "max_abs_drift_int8_vs_keras": drift,
        "size_bytes": {"int8": len(int8_tfl), "float": len(float_tfl)},
        "parameters": int(model.count_params()),
        "train_seconds": round(time.time() - started, 1),
    })
    # Rewrite the manifest with the final metrics (digests unchanged: same files).
    write_bundle(model_dir, int8_model=int8_tfl, float_model=float_tfl, standardizer=scaler,
                 threshold=threshold, metrics=metrics, window={"detection_fps": 5.0, "window_s": 1.0})
    report = {"threshold": threshold, **metrics}
    out = Path(args.output_data_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    if drift > args.max_int8_drift:
        raise GateError(f"parity gate: int8 score differs from Keras by {drift:.4f} > {args.max_int8_drift}")
    if auc_int8 < args.min_auc:
        raise GateError(f"quality gate: int8 validation AUC {auc_int8:.3f} < {args.min_auc}")
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        report = train(args)
    except (DatasetError, LabelError, GateError) as exc:
        log.error("%s", exc)
        return 2
    log.info("model bundle in %s: threshold %.3f, int8 AUC %.3f, int8 %d bytes (float %d)",
             args.model_dir, report["threshold"], report["auc_int8"],
             report["size_bytes"]["int8"], report["size_bytes"]["float"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
