"""Fitting the window classifier: the seed model on one split, and one model per held-out
clip (cross-clip), which says how the model generalises to a scene it has never seen."""

from __future__ import annotations

import argparse
import logging

import numpy as np

from training.channels import both_classes, split_blocks
from training.dataset import Dataset, DatasetError
from training.hyperparameters import hidden_layers
from training.metrics import choose_threshold, confusion, precision_recall, roc_auc
from training.model import Standardizer, build_model, class_weights

log = logging.getLogger("vigil.train")


def fit(train_ds: Dataset, val_ds: Dataset, args: argparse.Namespace):
    """Fit the scaler on ``train_ds`` and train the seed model (class weights, early
    stopping on ``val_ds``'s loss, best weights restored). Returns ``(scaler, model)``."""
    import keras

    keras.utils.set_random_seed(args.seed)
    scaler = Standardizer.fit(train_ds.X)
    Xt, Xv = scaler.transform(train_ds.X), scaler.transform(val_ds.X)
    model = build_model(Xt.shape[1], hidden_layers(args.hidden), args.learning_rate)
    model.fit(
        Xt,
        train_ds.y.astype(np.float32),
        validation_data=(Xv, val_ds.y.astype(np.float32)),
        epochs=args.epochs,
        batch_size=args.batch_size,
        class_weight=class_weights(train_ds.y),
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
        ],
        verbose=0,
        shuffle=True,
    )
    return scaler, model


def predict(model, scaler: Standardizer, X: np.ndarray, clip: tuple[float, float] | None = None) -> np.ndarray:
    """Keras scores (n_rows,) of raw feature rows ``X`` (n_rows, N_FEATURES); with
    ``clip``, normalised values are first clipped to ``(low, high)`` as the int8 model's
    input saturates them (:attr:`edge_component.model.litert.Scorer.input_range`)."""
    z = scaler.transform(X)
    if len(z) == 0:  # Keras's predict fails on an empty batch
        return np.empty(0, np.float32)
    if clip is not None:
        z = np.clip(z, *clip)
    return model.predict(z, verbose=0, batch_size=1024).reshape(-1)


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
        entry = {
            "model": "retrained without the test clip",
            "test_clip": held,
            "train_clips": sorted(set(rest.clips.tolist())),
            "windows": len(test),
            "abnormal": int(test.y.sum()),
        }
        try:
            both_classes(**{"held-out clip": test, "training": tr, "validation": va})
        except DatasetError as exc:
            out.append(entry | {"skipped": str(exc)})
            continue
        scaler, model = fit(tr, va, args)
        val_scores = predict(model, scaler, va.X)
        threshold, _ = choose_threshold(va.y, val_scores, args.min_precision)
        scores = predict(model, scaler, test.X)
        p, r = precision_recall(test.y, scores, threshold)
        out.append(
            entry
            | {
                "auc": roc_auc(test.y, scores),
                "threshold": threshold,
                "precision": p,
                "recall": r,
                "confusion": confusion(test.y, scores, threshold),
                "in_scene_validation_auc": roc_auc(va.y, val_scores),
            }
        )
        log.info(
            "cross-clip: trained on %s, %s scores AUC %.3f (in-scene validation %.3f)",
            entry["train_clips"],
            held,
            out[-1]["auc"],
            out[-1]["in_scene_validation_auc"],
        )
    return out
