"""The gates a model bundle passes before the job may ship it.

- Compatibility: every model in the bundle loads and runs with the edge's own loader
  (:func:`edge_component.model.load_bundle`, digests and feature contract included) in
  the edge's runtimes: LiteRT at the version the component pins, ONNX Runtime, and
  ``tflite-runtime`` where it is installed.
- Parity: on held-out raw rows, each model's scores against Keras: int8 within a few
  steps of its output's quantization (1/256 for an int8 sigmoid), float TFLite and ONNX
  within float32 rounding, and int8 AUC within a small distance of Keras's.
- Out-of-distribution parity: the same on the test channel's rows (scenes never trained
  on), where inputs leave the int8 input's calibrated range: those are saturated (clipped
  to the range, by the quantizer), counted per feature, and Keras is compared on the same
  clipped inputs; the decisions int8 and unclipped Keras take differently are counted and
  bounded. (In distribution int8 is held to plain Keras, so a wrong calibration range
  cannot hide behind the clipping.)
- Quality: AUC and recall at the threshold of the shipped (int8) model not below floors.

Each check returns a :class:`GateResult`; :func:`enforce` raises :class:`GateError`
naming every failure, so the job exits non-zero with the reason in its log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from edge_component.analysis.features import N_FEATURES

from .metrics import precision_recall, roc_auc

INT8_STEP = 1.0 / 256  # output scale of an int8 sigmoid in TFLite (zero point -128)
COMPONENT_REQUIREMENTS = Path(__file__).resolve().parents[1] / "edge_component" / "requirements.txt"


class GateError(RuntimeError):
    """An exported model failed a compatibility, parity or quality gate."""


@dataclass
class GateResult:
    gate: str  # "compatibility", "parity" or "quality"
    passed: bool
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures, **self.details}


def enforce(*results: GateResult) -> None:
    """Raise :class:`GateError` naming each failed check of ``results``."""
    failed = [f"{r.gate} gate: {msg}" for r in results for msg in r.failures]
    if failed:
        raise GateError("; ".join(failed))


def requirement_pins(requirements: Path) -> dict[str, str]:
    """``{package: version}`` for each ``package==version`` line of a requirements file."""
    out = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name, sep, pin = line.split("#")[0].strip().partition("==")
        if sep:
            out[name.strip().lower()] = pin.strip()
    return out


def pinned_version(package: str, requirements: Path = COMPONENT_REQUIREMENTS) -> str | None:
    """The version of ``package`` pinned in the component's requirements, if any."""
    return requirement_pins(requirements).get(package) if requirements.is_file() else None


def _tflite_runtime_probe(path: Path, row: np.ndarray) -> str | None:
    """Load and run ``path`` in ``tflite_runtime`` when it is installed; the error, if any."""
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        return None
    try:
        interp = Interpreter(model_path=str(path))
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
        interp.invoke()
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    return None


def compatibility(bundle_dir: str | Path, model_files: list[str]) -> tuple[GateResult, dict[str, Any]]:
    """Load each of ``model_files`` from the bundle as the edge does and score a probe row.

    Returns the result and ``{file: scorer}`` for the files that loaded. Fails when a
    file cannot be loaded or run, scores outside 0..1, or the installed LiteRT is not
    the version the component pins.
    """
    from edge_component.model.bundle import load_bundle
    from edge_component.model.errors import ModelError

    bundle_dir = Path(bundle_dir)
    failures, scorers, checked = [], {}, {}
    probe = np.zeros((2, N_FEATURES), np.float32)
    for name in model_files:
        try:
            bundle = load_bundle(bundle_dir, model_file=name)
            out = bundle.scorer.score(probe)
        except ModelError as exc:
            failures.append(f"the edge runtime cannot load {name}: {exc}")
            continue
        if out.shape != (len(probe),) or not np.all((out >= 0) & (out <= 1)):
            failures.append(f"{name} scored a probe row {out.tolist()}, expected {len(probe)} probabilities in 0..1")
            continue
        scorers[name] = bundle.scorer
        if name.endswith(".tflite") and (err := _tflite_runtime_probe(bundle_dir / name, probe)):
            failures.append(f"tflite-runtime cannot load {name}: {err}")
    for pkg in ("ai-edge-litert", "onnxruntime", "tflite-runtime"):
        try:
            checked[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    pin = pinned_version("ai-edge-litert")
    if pin and checked.get("ai-edge-litert") != pin:
        failures.append(f"checked with ai-edge-litert {checked.get('ai-edge-litert')}, but the component pins {pin}")
    return GateResult(
        "compatibility", not failures, failures, {"checked_against": checked, "pinned_ai_edge_litert": pin}
    ), scorers


def parity(
    y: np.ndarray,
    keras_scores: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    int8_files: tuple[str, ...] = ("model.tflite",),
    max_int8_steps: float,
    max_float_drift: float,
    max_auc_drop: float,
) -> GateResult:
    """Compare each model's scores on the same held-out raw rows with Keras's.

    int8 models: ``max |score - keras|`` at most ``max_int8_steps`` steps of 1/256, and
    AUC no more than ``max_auc_drop`` below Keras's. Float models (TFLite, ONNX):
    ``max |score - keras| <= max_float_drift``.
    """
    keras_scores = np.asarray(keras_scores, np.float64)
    auc_keras = roc_auc(y, keras_scores)
    failures, details = [], {"auc_keras": auc_keras, "models": {}}
    for name, s in scores.items():
        diff = np.abs(np.asarray(s, np.float64) - keras_scores)
        worst = int(np.argmax(diff))
        d = {
            "max_abs_drift": float(diff[worst]),
            "mean_abs_drift": float(diff.mean()),
            "worst_row": worst,
            "auc": roc_auc(y, s),
        }
        if name in int8_files:
            d["max_drift_steps"] = float(diff[worst] / INT8_STEP)
            if d["max_drift_steps"] > max_int8_steps:
                failures.append(
                    f"{name} differs from Keras by {diff[worst]:.4f} ({d['max_drift_steps']:.1f} steps of 1/256) "
                    f"on held-out row {worst} (Keras {keras_scores[worst]:.4f}, {name} {s[worst]:.4f}); "
                    f"allowed {max_int8_steps} steps"
                )
            if auc_keras - d["auc"] > max_auc_drop:
                failures.append(
                    f"{name} AUC {d['auc']:.4f} is {auc_keras - d['auc']:.4f} below Keras's {auc_keras:.4f}; "
                    f"allowed {max_auc_drop}"
                )
        elif diff[worst] > max_float_drift:
            failures.append(
                f"{name} differs from Keras by {diff[worst]:.2e} on held-out row {worst}; allowed {max_float_drift:.0e}"
            )
        details["models"][name] = d
    details["tolerances"] = {
        "int8_steps": max_int8_steps,
        "int8_step": INT8_STEP,
        "float": max_float_drift,
        "int8_auc_drop": max_auc_drop,
    }
    return GateResult("parity", not failures, failures, details)


def saturation(z: np.ndarray, input_range: tuple[float, float] | None) -> dict[str, Any]:
    """Rows (of normalised rows ``z``, (n, N_FEATURES)) with a value the int8 input
    saturates, per feature, and each feature's largest ``|z|`` (standard deviations)."""
    from edge_component.analysis.features import FEATURE_NAMES

    z = np.asarray(z, np.float64)
    lo, hi = input_range if input_range is not None else (-np.inf, np.inf)
    out = (z < lo) | (z > hi)
    return {
        "input_range": [lo, hi] if input_range is not None else None,
        "rows": len(z),
        "rows_saturated": int(out.any(axis=1).sum()),
        "saturated_by_feature": {n: int(c) for n, c in zip(FEATURE_NAMES, out.sum(axis=0), strict=True)},
        "max_abs_z_by_feature": {
            n: round(float(v), 2) for n, v in zip(FEATURE_NAMES, np.abs(z).max(axis=0, initial=0.0), strict=True)
        },
    }


def ood_parity(
    keras_scores: np.ndarray,
    keras_clipped: np.ndarray,
    int8_scores: np.ndarray,
    threshold: float,
    saturated: dict[str, Any],
    *,
    max_int8_steps: float,
    max_flip_rate: float,
    model: str = "model.tflite",
) -> GateResult:
    """int8 against Keras on out-of-distribution rows: drift against Keras on the same
    saturated (clipped) inputs at most ``max_int8_steps`` of 1/256, and the share of rows
    where int8 and plain Keras fall on different sides of ``threshold`` at most
    ``max_flip_rate``. With no rows (no test channel) it passes, saying so."""
    k, kc, q = (np.asarray(a, np.float64) for a in (keras_scores, keras_clipped, int8_scores))
    if len(q) == 0:
        return GateResult("ood-parity", True, [], {"rows": 0, "note": "no test channel: nothing out of distribution"})
    diff = np.abs(q - kc)
    worst = int(np.argmax(diff))
    flips = np.flatnonzero((q >= threshold) != (k >= threshold))
    from_saturation = np.flatnonzero((kc >= threshold) != (k >= threshold))
    details: dict[str, Any] = {
        "rows": len(q),
        "max_drift_steps": float(diff[worst] / INT8_STEP),
        "max_drift_steps_unclipped": float(np.abs(q - k).max() / INT8_STEP),
        "worst_row": worst,
        "decision_flips": int(len(flips)),
        "decision_flip_rows": flips.tolist()[:20],
        "decision_flips_from_saturation": int(len(from_saturation)),
        "saturation": saturated,
        "tolerances": {"int8_steps": max_int8_steps, "flip_rate": max_flip_rate},
    }
    failures = []
    if details["max_drift_steps"] > max_int8_steps:
        failures.append(
            f"{model} differs from Keras (same saturated inputs) by {details['max_drift_steps']:.1f} steps of 1/256 "
            f"on test-channel row {worst}; allowed {max_int8_steps}"
        )
    if len(flips) > max_flip_rate * len(q):
        failures.append(
            f"{model} and Keras decide {len(flips)} of {len(q)} test-channel rows differently at threshold "
            f"{threshold:.3f} ({len(from_saturation)} from saturated inputs); allowed {max_flip_rate:.0%}"
        )
    return GateResult("ood-parity", not failures, failures, details)


def quality(
    y: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    min_auc: float,
    min_recall: float,
    model: str = "model.tflite",
) -> GateResult:
    """AUC and recall at ``threshold`` of the shipped model's held-out scores against floors."""
    auc = roc_auc(y, scores)
    precision, recall = precision_recall(y, scores, threshold)
    failures = []
    if auc < min_auc:
        failures.append(f"{model} validation AUC {auc:.3f} < floor {min_auc}")
    if recall < min_recall:
        failures.append(f"{model} validation recall {recall:.3f} at threshold {threshold:.3f} < floor {min_recall}")
    return GateResult(
        "quality",
        not failures,
        failures,
        {"auc": auc, "recall": recall, "precision": precision, "min_auc": min_auc, "min_recall": min_recall},
    )
