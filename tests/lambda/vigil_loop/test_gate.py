"""The gate: training's gates and "no worse than the current model", per label; a
failure is published to the operations topic."""

from __future__ import annotations

from vigil_loop.gate import failures, gate


def test_an_equal_or_better_candidate_passes_and_nothing_is_published(comparison, topic):
    better = comparison(candidate={"total": {"recall": 0.95, "false_alerts_per_hour": 0.5}})
    assert gate(topic.sns, topic.arn, "dev", better, 0.5) == {"passed": True, "reasons": []}
    assert topic.received() == []


def test_a_regression_on_one_label_stops_the_run_and_notifies(comparison, topic):
    worse = comparison(candidate={"person": {"recall": 0.8}})
    result = gate(topic.sns, topic.arn, "dev", {**worse, "job_name": "job-1"}, 0.5)
    assert result["passed"] is False
    assert result["reasons"] == ["label person: recall 0.8 is lower than the current model's 0.9"]
    [message] = topic.received()
    assert message["Subject"] == "Vigil dev: model from job-1 stopped at the gate"
    assert "label person: recall 0.8" in message["Message"]


def test_more_false_alerts_a_later_delay_and_a_failed_training_gate_all_count(comparison):
    bad = comparison(
        candidate={"total": {"false_alerts_per_hour": 2.0, "delay_s_mean": 1.5}},
        gates={"compatibility": {"passed": False, "failures": ["tflite_runtime 2.14 cannot load it"]}},
    )
    reasons = failures(bad, delay_tolerance_s=0.5)
    assert reasons[0] == "compatibility gate: tflite_runtime 2.14 cannot load it"
    assert any("2.0 false alerts/hour" in r for r in reasons)
    assert any("mean delay 1.5 s" in r for r in reasons)
    # within the tolerance the delay is no failure
    assert failures(comparison(candidate={"total": {"delay_s_mean": 1.2}}), 0.5) == []


def test_a_label_the_candidate_was_not_scored_on_fails(comparison):
    c = comparison(current={"car": {"recall": 0.5}})
    assert failures(c, 0.5) == ["label car: the candidate was not scored on it"]


def test_the_first_model_needs_only_the_training_gates(comparison):
    assert failures(comparison(no_current=True), 0.5) == []
