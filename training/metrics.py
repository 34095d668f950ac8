"""Classification metrics on scores, in NumPy (no scikit-learn on the device image)."""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    ``y`` of 0/1 and ``scores`` of equal length; ValueError if only one class is present.
    """
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    pred = np.asarray(scores) >= threshold
    y = np.asarray(y).astype(bool)
    return {
        "tp": int((pred & y).sum()),
        "fp": int((pred & ~y).sum()),
        "tn": int((~pred & ~y).sum()),
        "fn": int((~pred & y).sum()),
    }


def precision_recall(y: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    c = confusion(y, scores, threshold)
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    return precision, recall


def choose_threshold(y: np.ndarray, scores: np.ndarray, min_precision: float) -> tuple[float, str]:
    """The threshold with the highest recall at precision >= ``min_precision``.

    Candidates are the distinct scores (and 0.5). Among equal recall the highest
    precision wins, then the threshold closest to 0.5. If no candidate reaches the
    precision target, the one with the best F1 is returned. Returns
    ``(threshold, rule)`` where ``rule`` says which criterion chose it.
    """
    candidates = np.unique(np.concatenate([np.asarray(scores, np.float64), [0.5]]))
    best, best_key, fallback, fallback_f1 = None, None, 0.5, -1.0
    for t in candidates:
        p, r = precision_recall(y, scores, t)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > fallback_f1:
            fallback, fallback_f1 = float(t), f1
        if p >= min_precision:
            key = (r, p, -abs(t - 0.5))
            if best_key is None or key > best_key:
                best, best_key = float(t), key
    if best is None:
        return fallback, f"best F1 ({fallback_f1:.3f}); no threshold reached precision {min_precision}"
    return best, f"highest recall at precision >= {min_precision}"


def _counts_by_threshold(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """True and false positives with each distinct score as threshold (highest first),
    and the numbers of positives and negatives."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each run of equal scores
    return np.cumsum(y)[last], np.cumsum(~y)[last], int(y.sum()), int((~y).sum())


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score as threshold,
    from (0, 0) to (1, 1); for plotting."""
    tp, fp, n_pos, n_neg = _counts_by_threshold(y, scores)
    return np.r_[0.0, fp / max(n_neg, 1)], np.r_[0.0, tp / max(n_pos, 1)]


def pr_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score as threshold, highest threshold first."""
    tp, fp, n_pos, _ = _counts_by_threshold(y, scores)
    return tp / max(n_pos, 1), tp / (tp + fp)
