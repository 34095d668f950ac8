"""The training job's hyperparameters: the one definition that ``training/train.py``'s
parser is built from and that ``infra/training_config.py`` checks a stage's
``training.hyperparameters`` against.

Each :class:`Hyperparameter` is one ``--name value`` option of the job (SageMaker script
mode passes the job's hyperparameters that way, every value as a string): its type
(the argparse converter), default, help text, argparse group, and the range its value
must be in. The job's paths and channels (``--model-dir``, ``--train``, ...) are not
hyperparameters: their defaults come from SageMaker's ``SM_*`` environment, and they
stay in ``train.py``.

Imports nothing but the standard library, so the CDK app can read it without NumPy or
TensorFlow.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def boolean(value: str) -> bool:
    """``--flag value``: SageMaker passes every hyperparameter as a string, so "true"/"false",
    "1"/"0", "yes"/"no", "on"/"off" (any case). Raises argparse.ArgumentTypeError otherwise."""
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def hidden_layers(text: str) -> tuple[int, ...]:
    """``--hidden``: comma-separated Dense layer sizes, e.g. "64,32" (empty: no hidden layer).
    Raises ValueError naming the text when a size is not a positive integer."""
    parts = [h.strip() for h in str(text).split(",") if h.strip()]
    if not all(h.isdigit() and int(h) > 0 for h in parts):
        raise ValueError(f"expected comma-separated positive layer sizes such as '64,32', got {text!r}")
    return tuple(int(h) for h in parts)


@dataclass(frozen=True)
class Limit:
    """What a numeric value must satisfy: ``text`` completes "must be ...", ``ok`` tests it."""

    text: str
    ok: Callable[[float], bool]


@dataclass(frozen=True)
class Hyperparameter:
    """One ``--<name> <value>`` option of the training job."""

    name: str  # the option without "--", e.g. "batch-size"; the stage config's key
    type: Callable[[str], Any] | None  # argparse's converter; None: the value stays a string
    default: Any
    help: str | None = None
    group: str | None = None  # argparse argument group ("export", "gates", "report"); None: the main list
    limit: Limit | None = None

    @property
    def dest(self) -> str:
        """The attribute name on the parsed arguments, e.g. ``batch_size``."""
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return f"--{self.name}"


# numpy.random.seed (which keras.utils.set_random_seed calls) takes 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1
# AUC, recall and an AUC difference are all fractions.
FRACTION = Limit("0 to 1", lambda v: 0 <= v <= 1)

H = Hyperparameter
HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    H("epochs", int, 60, limit=Limit("at least 1", lambda v: v >= 1)),
    H("batch-size", int, 64, limit=Limit("at least 1", lambda v: v >= 1)),
    H("learning-rate", float, 1e-3, limit=Limit("above 0", lambda v: v > 0)),
    H("hidden", None, "64,32", help="comma-separated Dense layer sizes"),
    H("patience", int, 8, help="early-stopping patience (epochs)", limit=Limit("0 or more", lambda v: v >= 0)),
    H("seed", int, 7, limit=Limit(f"0 to {SEED_MAX}", lambda v: 0 <= v <= SEED_MAX)),
    H(
        "min-precision",
        float,
        0.95,
        help="threshold target on validation",
        limit=Limit("above 0 and at most 1", lambda v: 0 < v <= 1),
    ),
    H(
        "validation-every",
        int,
        5,
        help="every Nth 10-s block of each clip validates",
        limit=Limit("at least 2 (every Nth 10-s block validates, the others train)", lambda v: v >= 2),
    ),
    H(
        "representative-rows",
        int,
        500,
        "training rows that calibrate int8 ranges",
        "export",
        Limit("at least 1", lambda v: v >= 1),
    ),
    H("int8-per-channel", boolean, False, "per-channel weight scales (larger file)", "export"),
    H(
        "prune-sparsity",
        float,
        0.0,
        "magnitude pruning target 0..1 (0: off)",
        "export",
        Limit("0 (off) or more, below 1", lambda v: 0 <= v < 1),
    ),
    H("prune-epochs", int, 10, "fine-tuning epochs while pruning", "export", Limit("at least 1", lambda v: v >= 1)),
    H("min-auc", float, 0.90, "quality gate: int8 validation AUC floor", "gates", FRACTION),
    H("min-recall", float, 0.80, "quality gate: int8 recall at the threshold", "gates", FRACTION),
    H(
        "max-int8-drift-steps",
        float,
        8.0,
        "parity gate: max |int8 - keras| score in steps of 1/256",
        "gates",
        Limit("0 or more", lambda v: v >= 0),
    ),
    H(
        "max-float-drift",
        float,
        1e-4,
        "parity gate: float TFLite and ONNX vs Keras",
        "gates",
        Limit("0 or more", lambda v: v >= 0),
    ),
    H("max-auc-drop", float, 0.01, "parity gate: int8 AUC below Keras's", "gates", FRACTION),
    H(
        "max-ood-int8-drift-steps",
        float,
        24.0,
        "parity gate on the test channel (scenes never trained on): max |int8 - keras| in 1/256 steps",
        "gates",
        Limit("0 or more", lambda v: v >= 0),
    ),
    H(
        "max-ood-flip-rate",
        float,
        0.05,
        "parity gate on the test channel: share of rows int8 and Keras decide differently",
        "gates",
        FRACTION,
    ),
    H("cross-clip", boolean, True, "train on the other clips, score each held-out clip", "report"),
    H(
        "latency-rows",
        int,
        200,
        "rows timed per model and round (0: skip)",
        "report",
        Limit("0 (off) or more", lambda v: v >= 0),
    ),
    H("plots", boolean, True, group="report"),
)
del H
BY_NAME: dict[str, Hyperparameter] = {h.name: h for h in HYPERPARAMETERS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every hyperparameter to ``parser`` as ``--<name>``, grouped as in ``--help``."""
    groups: dict[str | None, Any] = {None: parser}
    for h in HYPERPARAMETERS:
        if h.group not in groups:
            groups[h.group] = parser.add_argument_group(h.group)
        kwargs: dict[str, Any] = {"default": h.default}
        if h.type is not None:
            kwargs["type"] = h.type
        if h.help is not None:
            kwargs["help"] = h.help
        groups[h.group].add_argument(h.flag, **kwargs)


def first_problem(values: Mapping[str, Any]) -> str | None:
    """The first parsed value (by dest, e.g. ``vars(args)``) that is out of range, as
    argparse words it (``argument --epochs: must be at least 1, got 0``), or None.

    Every float must be finite: a NaN floor would pass every gate, since no comparison
    with NaN is true.
    """
    for dest, value in values.items():
        flag = "--" + dest.replace("_", "-")
        h = BY_NAME.get(dest.replace("_", "-"))
        if isinstance(value, float) and not math.isfinite(value):
            return f"argument {flag}: must be a finite number, got {value!r}"
        if h is not None and h.limit is not None and not h.limit.ok(value):
            return f"argument {flag}: must be {h.limit.text}, got {value!r}"
    try:
        hidden_layers(values["hidden"])
    except ValueError as exc:
        return f"argument --hidden: {exc}"
    return None
