"""The classifier: standardisation (shipped in the manifest, applied on the edge),
then Dense 64 ReLU, Dense 32 ReLU, Dense 1 sigmoid; Adam; binary cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardizer:
    """StandardScaler fitted on training rows: ``(x - mean) / scale``; float32 (N,)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        # In float64: float32's squares overflow for values above ~1.8e19, and every
        # value float32 can hold has a mean and a standard deviation float32 can hold.
        X64 = np.asarray(X, np.float64)
        mean = X64.mean(axis=0).astype(np.float32)
        std = X64.std(axis=0).astype(np.float32)
        # A constant column must not divide by zero (or blow up int8 ranges).
        return cls(mean, np.where(std < 1e-6, 1.0, std).astype(np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, np.float32) - self.mean) / self.scale).astype(np.float32)


def build_model(n_features: int, hidden: tuple[int, ...] = (64, 32), learning_rate: float = 1e-3):
    """Compiled Keras model taking normalised float32 rows ``(batch, n_features)``."""
    import keras

    inputs = keras.Input(shape=(n_features,), name="features", dtype="float32")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    model = keras.Model(inputs, outputs, name="vigil_window_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Balanced class weights: n / (2 * count(class))."""
    n = len(y)
    pos = int(np.sum(y))
    neg = n - pos
    return {0: n / (2.0 * max(neg, 1)), 1: n / (2.0 * max(pos, 1))}
