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
    # The room's zone watches person (the default); every interval is labelled person.
    person = report["clips"][0]["by_zone_label"]["room/person"]
    assert (person["events"], person["found"], person["false_alerts"]) == (6, 6, 0)
    out = capsys.readouterr().out
    assert "one-by-one-person-detection.mp4" in out and "room/person" in out


def test_alerts_are_counted_per_zone_and_label():
    from training.evaluate import breakdown

    intervals = [(0, 5, "person"), (10, 20, "car"), (30, 40, None)]
    starts = [
        {"zone": "door", "media_offset_s": 1.0, "label": "person"},  # found
        {"zone": "door", "media_offset_s": 12.0, "label": "person"},  # a person alert while a car passes: false
        {"zone": "road", "media_offset_s": 11.0},  # motion only: takes the car interval's label
        {"zone": "road", "media_offset_s": 31.5},  # motion only, in an unlabelled interval
    ]
    groups = breakdown(starts, intervals, ["door", "road"], duration_s=3600)
    assert sorted(groups) == [f"{z}/{lab}" for z in ("door", "road") for lab in ("any", "car", "person")]
    person, car = groups["door/person"], groups["road/car"]
    assert (person.found, person.missed, person.false_alerts_at_s) == (1, 0, [12.0])
    assert (car.found, car.missed, car.false_alerts_at_s) == (1, 0, [])
    assert groups["road/any"].found == 1 and groups["door/car"].missed == 1
    assert groups["road/person"].missed == 1 and groups["road/person"].summary()["false_alerts"] == 0
