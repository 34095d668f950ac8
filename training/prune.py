"""Optional magnitude pruning with tensorflow-model-optimization (tfmot).

tfmot prunes only tf_keras (Keras 2) models: handed a Keras 3 model,
``prune_low_magnitude`` refuses it ("can only prune an object of the following types:
keras.models.Sequential, ..."). So the trained Keras 3 model's weights go into a tf_keras
twin of the same layers, which is fine-tuned while a polynomial schedule drives its
kernels to the target sparsity; ``strip_pruning`` removes the wrappers and masks, and the
sparse weights come back into the Keras 3 model, which is exported as usual.

Pruning alone leaves a TFLite file as large as before (zeros are still stored); what
it saves shows in the gzip size, which the report gives beside the raw size.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np


def _import_tfmot():
    """tfmot and tf_keras, without leaving ``TF_USE_LEGACY_KERAS=1`` set for the rest of
    the process (tfmot sets it at import, which would switch ``tf.keras`` to Keras 2)."""
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        with warnings.catch_warnings():  # tfmot compares versions with distutils at import
            warnings.simplefilter("ignore", DeprecationWarning)
            import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as exc:
        raise RuntimeError(f"pruning needs tensorflow-model-optimization and tf-keras: {exc}") from None
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tfmot, tf_keras


def kernel_sparsity(model) -> dict[str, float]:
    """Share of exactly-zero weights in each Dense kernel, and overall (``"total"``)."""
    out, zeros, total = {}, 0, 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        k = np.asarray(kernel)
        out[layer.name] = float(np.mean(k == 0))
        zeros += int(np.sum(k == 0))
        total += k.size
    out["total"] = zeros / total if total else 0.0
    return out


def prune_model(
    model,
    X: np.ndarray,
    y: np.ndarray,
    *,
    target_sparsity: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    class_weight: dict[int, float] | None = None,
    seed: int = 7,
) -> dict[str, object]:
    """Fine-tune ``model`` (Keras 3, Dense layers only) with magnitude pruning to
    ``target_sparsity`` (0..1) of each kernel, in place.

    ``X``: normalised float32 rows ``(n, N_FEATURES)``; ``y``: 0/1. The schedule
    (polynomial decay from 0) reaches the target after 70% of ``epochs`` and holds it
    for the rest, so the remaining weights recover. Returns ``{"target", "reached"
    (per kernel and "total"), "epochs"}``.
    """
    if not 0.0 < target_sparsity < 1.0:
        raise ValueError(f"target sparsity must be in (0, 1), got {target_sparsity}")
    tfmot, tf_keras = _import_tfmot()
    tf_keras.utils.set_random_seed(seed)

    twin = tf_keras.Sequential([tf_keras.Input(shape=(X.shape[1],), name="features")], name=f"{model.name}_tfkeras")
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            twin.add(tf_keras.layers.Dense(layer.units, activation=layer.activation.__name__, name=layer.name))
    twin.set_weights(model.get_weights())

    steps = math.ceil(len(X) / batch_size) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=target_sparsity,
        begin_step=0,
        end_step=max(1, int(steps * 0.7)),
        frequency=1,
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(twin, pruning_schedule=schedule)
    pruned.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    pruned.fit(
        X,
        y.astype(np.float32),
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        verbose=0,
        shuffle=True,
    )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    model.set_weights(stripped.get_weights())
    return {"target": target_sparsity, "reached": kernel_sparsity(model), "epochs": epochs}
