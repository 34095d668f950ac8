"""The training report: plots of held-out scores and side-by-side latency of the
exported models.

Plots (PNG, matplotlib's Agg backend, no display needed): ``roc.png``,
``precision_recall.png``, ``confusion.png`` (int8 at the threshold) and
``scores.png`` (score distributions of Keras (float) and int8 per class, and int8
against Keras row by row).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .metrics import confusion, pr_curve, roc_auc, roc_curve

PLOTS = ("roc.png", "precision_recall.png", "confusion.png", "scores.png")


def write_plots(
    out_dir: str | Path,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    threshold: float,
    *,
    int8: str = "int8 TFLite",
    reference: str = "Keras",
) -> list[Path]:
    """Write :data:`PLOTS` into ``out_dir`` for held-out labels ``y`` and ``scores``
    (label -> scores, including ``int8`` and ``reference``); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y).astype(int)
    paths = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        paths.append(out / name)

    styles = [dict(ls=ls, lw=lw) for ls, lw in (("-", 3.0), ("--", 2.0), (":", 2.0), ("-.", 1.0))]  # curves overlap

    fig, ax = plt.subplots(figsize=(5, 5))
    for (label, s), style in zip(scores.items(), styles, strict=False):
        fpr, tpr = roc_curve(y, s)
        ax.plot(fpr, tpr, drawstyle="steps-post", label=f"{label} (AUC {roc_auc(y, s):.3f})", **style)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, validation windows")
    ax.legend(loc="lower right")
    save(fig, "roc.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    for (label, s), style in zip(scores.items(), styles, strict=False):
        recall, precision = pr_curve(y, s)
        ax.plot(recall, precision, drawstyle="steps-post", label=label, **style)
    c = confusion(y, scores[int8], threshold)
    if c["tp"] + c["fp"]:
        ax.plot(
            c["tp"] / max(c["tp"] + c["fn"], 1),
            c["tp"] / (c["tp"] + c["fp"]),
            "o",
            color="black",
            label=f"{int8} at threshold {threshold:.3f}",
        )
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, validation windows", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    save(fig, "precision_recall.png")

    fig, ax = plt.subplots(figsize=(4.2, 4))
    m = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black", fontsize=14)
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["normal", "abnormal"],
        yticklabels=["normal", "abnormal"],
        xlabel="predicted",
        ylabel="labelled",
        title=f"{int8} at threshold {threshold:.3f}",
    )
    save(fig, "confusion.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, 1, 41)
    for label, s, style in ((reference, scores[reference], "step"), (int8, scores[int8], "stepfilled")):
        for cls, colour in ((0, "tab:blue"), (1, "tab:red")):
            a1.hist(
                s[y == cls],
                bins=bins,
                histtype=style,
                alpha=0.35 if style == "stepfilled" else 1.0,
                color=colour,
                label=f"{label}, {'abnormal' if cls else 'normal'}",
            )
    a1.axvline(threshold, color="black", ls="--", label="threshold")
    a1.set(xlabel="score", ylabel="windows", title="Score distributions (float vs int8)")
    a1.legend(fontsize=7)
    a2.scatter(scores[reference], scores[int8], s=6, c=np.where(y == 1, "tab:red", "tab:blue"))
    a2.plot([0, 1], [0, 1], ":", color="grey")
    a2.set(xlabel=f"{reference} score", ylabel=f"{int8} score", title="int8 against float, per window")
    save(fig, "scores.png")
    return paths


def measure_latency(
    calls: dict[str, Callable[[np.ndarray], object]], rows: np.ndarray, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """Per-inference latency of each ``calls[name](row)`` on one row at a time.

    ``rows``: raw feature rows ``(n, N_FEATURES)``. The calls run interleaved, ``rounds``
    times over all rows, so they share the machine's load; returns ``{name: {"us_median",
    "us_p90"}}`` over the per-round means (microseconds per inference).
    """
    rows = np.asarray(rows, np.float32)
    per_round: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():  # warm up: first calls build graphs and allocate
        for row in rows[:5]:
            fn(row)
    for _ in range(rounds):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            for row in rows:
                fn(row)
            per_round[name].append(1e6 * (time.perf_counter() - t0) / len(rows))
    return {
        name: {"us_median": float(np.median(v)), "us_p90": float(np.percentile(v, 90))} for name, v in per_round.items()
    }


def latency_table(latency: dict[str, dict[str, float]], sizes: dict[str, int], base: str) -> str:
    """Lines of ``name  size  latency  ratio to base`` for printing."""
    ref = latency[base]["us_median"]
    lines = [f"{'model':<16} {'bytes':>8} {'us/inference':>13} {'x ' + base:>10}"]
    for name, lat in latency.items():
        size = f"{sizes[name]:>8}" if name in sizes else f"{'-':>8}"
        lines.append(f"{name:<16} {size} {lat['us_median']:>13.1f} {lat['us_median'] / ref:>10.2f}")
    return "\n".join(lines)
