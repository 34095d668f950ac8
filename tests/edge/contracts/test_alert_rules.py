"""The alert's rules beyond the schema (edge_component/contracts/alert_rules.py): one
home, used by the edge before it publishes and by the Lambda from the copy in its
bundle, which cannot drift from it."""

from __future__ import annotations

import importlib.util
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_component.contracts import alert_rules
from edge_component.contracts.alerts import AlertValidationError, validate_alert
from edge_component.events.alerts import build_alert
from edge_component.events.decision import Event, Transition
from infra.alerting import ALERT_CONTRACT, ALERT_RULES, ALERT_SCHEMA, CopyHandlerBundling


def _alert(kind: str = "start") -> dict:
    ev = Event(event_id="0" * 32, started_s=1.0, peak_score=0.9)
    if kind == "end":
        ev.sequence, ev.ended_s = 1, 2.0
    return build_alert(
        Transition(kind, ev, 2.0, 0.9),
        thing_name="cam-01",
        camera="porch",
        zone="door",
        threshold=0.5,
        clock_origin=datetime(2026, 1, 1, tzinfo=UTC),
        media_time=True,
    )


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"sequence": 1}, "sequence: a start message has sequence 0, got 1"),
        ({"ended_at": "2026-01-01T00:00:03.000Z"}, "ended_at: only an end message carries it, this is 'start'"),
        ({"score": math.nan}, "score: nan is not a finite number"),
        ({"zone": "door\n"}, "zone: contains a control character"),
    ],
)
def test_the_edge_refuses_an_alert_that_breaks_a_rule_beyond_the_schema(change, reason):
    validate_alert(_alert())  # as built: valid
    with pytest.raises(AlertValidationError) as caught:
        validate_alert(_alert() | change)
    assert caught.value.reason == reason


def test_the_lambda_bundle_carries_byte_identical_copies_and_reads_them(tmp_path, monkeypatch):
    assert ALERT_CONTRACT == (ALERT_SCHEMA, ALERT_RULES)
    assert ALERT_RULES.read_bytes() == Path(alert_rules.__file__).read_bytes()
    CopyHandlerBundling().try_bundle(str(tmp_path), None)
    for source in ALERT_CONTRACT:
        assert (tmp_path / source.name).read_bytes() == source.read_bytes()
    # The bundled handler's validation loads the copy beside it, not the repository's.
    monkeypatch.delitem(sys.modules, "vigil_alert_rules", raising=False)
    spec = importlib.util.spec_from_file_location("bundled_validation", tmp_path / "vigil_alerts" / "validation.py")
    validation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(validation)
    assert validation.rules.__file__ == str(tmp_path / alert_rules.RULES_FILE)
    assert validation.schema_path() == tmp_path / alert_rules.SCHEMA_FILE
    assert validation.rules.SNAPSHOT_PREFIX == alert_rules.SNAPSHOT_PREFIX == "snapshots"
