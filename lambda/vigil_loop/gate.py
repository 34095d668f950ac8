"""Step 2, gate: every gate of training passed, and the candidate is no worse than the
model the stage runs now, overall and per label (shapes: :mod:`vigil_loop.evaluate`).

No worse: recall not lower, false alerts per hour not higher, mean delay at most
``delay_tolerance_s`` later. A label the current model is scored on and the candidate
is not is a failure (the candidate was not shown to handle it).
"""

from __future__ import annotations

from typing import Any


def _worse(where: str, cand: dict[str, Any], curr: dict[str, Any], delay_tolerance_s: float) -> list[str]:
    reasons = []
    if cand["recall"] < curr["recall"]:
        reasons.append(f"{where}: recall {cand['recall']} is lower than the current model's {curr['recall']}")
    if cand["false_alerts_per_hour"] > curr["false_alerts_per_hour"]:
        reasons.append(
            f"{where}: {cand['false_alerts_per_hour']} false alerts/hour, more than the current model's "
            f"{curr['false_alerts_per_hour']}"
        )
    c_delay, k_delay = cand["delay_s_mean"], curr["delay_s_mean"]
    if c_delay is not None and k_delay is not None and c_delay > k_delay + delay_tolerance_s:
        reasons.append(
            f"{where}: mean delay {c_delay} s is more than {delay_tolerance_s} s later than the current "
            f"model's {k_delay} s"
        )
    return reasons


def no_worse(candidate: dict[str, Any], current: dict[str, Any] | None, delay_tolerance_s: float) -> list[str]:
    """Why the candidate is worse than the current model ([] when it is not, or when
    there is no current model)."""
    if current is None:
        return []
    reasons = _worse("total", candidate["total"], current["total"], delay_tolerance_s)
    cand_labels = candidate.get("by_label") or {}
    for label, curr in sorted((current.get("by_label") or {}).items()):
        cand = cand_labels.get(label)
        if cand is None:
            reasons.append(f"label {label}: the candidate was not scored on it")
        else:
            reasons += _worse(f"label {label}", cand, curr, delay_tolerance_s)
    return reasons


def failures(comparison: dict[str, Any], delay_tolerance_s: float) -> list[str]:
    """Every reason the candidate may not ship: failed training gates, then regressions."""
    reasons = [
        f"{name} gate: {msg}"
        for name, result in sorted(comparison["gates"].items())
        if not result.get("passed", False)
        for msg in (result.get("failures") or ["failed"])
    ]
    return reasons + no_worse(comparison["candidate"], comparison.get("current"), delay_tolerance_s)


def notify(sns: Any, topic_arn: str, stage: str, subject: str, reasons: list[str]) -> None:
    """Publish ``reasons`` to the operations topic (SNS subjects are at most 100 characters)."""
    sns.publish(
        TopicArn=topic_arn,
        Subject=f"Vigil {stage}: {subject}"[:100],
        Message="\n".join(reasons),
    )


def gate(sns: Any, topic_arn: str, stage: str, comparison: dict[str, Any], delay_tolerance_s: float) -> dict:
    """The step's output ``{"passed": bool, "reasons": [str]}``; a failure is also
    published to the operations topic (the state machine then ends the run)."""
    reasons = failures(comparison, delay_tolerance_s)
    if reasons:
        notify(sns, topic_arn, stage, f"model from {comparison.get('job_name', '?')} stopped at the gate", reasons)
    return {"passed": not reasons, "reasons": reasons}
