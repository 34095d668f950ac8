"""The evaluation command: alerts matched to labelled intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.evaluate import main as evaluate_main
from training.evaluate import match_alerts

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"


def test_matching_counts_found_late_missed_duplicates_and_false_alerts():
    r = match_alerts(
        [1.0, 11.5, 14.0, 30.0, 50.0], [(0, 5), (10, 20), (25, 35), (40, 45)], duration_s=3600, max_delay_s=2.0
    )
    assert (r.found, r.late, r.missed, r.duplicates) == (2, 1, 1, 1)
    assert r.false_alerts_at_s == [50.0]
    s = r.summary()
    assert s["false_alerts_per_hour"] == 1.0
    assert s["delay_s_max"] == 5.0


def test_evaluate_command_on_the_labelled_clip(tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = evaluate_main(
        [str(LABELS), "--model-dir", str(REPO / "edge_component" / "models" / "seed"), "--json", str(out)]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["total"] == pytest.approx(
        {
            "events": 6,
            "found": 6,
            "late": 0,
            "missed": 0,
            "duplicates": 0,
            "false_alerts": 0,
            "false_alerts_per_hour": 0.0,
        }
    )
    assert all(0 <= iv["delay_s"] <= 2.0 for iv in report["clips"][0]["intervals"])
    assert "one-by-one-person-detection.mp4" in capsys.readouterr().out
