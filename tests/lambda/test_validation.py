"""The alert contract as the Lambda enforces it, and the malformed/hostile corpus.

Each file in ``malformed/`` is ``{"reason": why it is bad, "codes": the
InvalidAlertError codes that may reject it, "event": what the topic rule delivers}``.
Where two codes are listed the schema engines differ on which check catches it
(fastjsonschema anchors patterns and checks date-time; jsonschema without extras does
neither), and the Lambda's own checks catch what the schema engine lets through.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil_alerts import validation
from vigil_alerts.processing import process_alert
from vigil_alerts.validation import InvalidAlertError, schema_validator, validate_alert

REPO = Path(__file__).resolve().parents[2]
CORPUS = sorted((Path(__file__).parent / "malformed").glob("*.json"))
ENGINES = ["fastjsonschema", "jsonschema"]


def load_case(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def engine_or_skip(engine: str):
    pytest.importorskip(engine)
    return schema_validator(engine=engine)


def test_corpus_is_large_and_documented():
    assert len(CORPUS) >= 30
    for path in CORPUS:
        case = load_case(path)
        assert case["reason"] and case["codes"], path.name


def test_every_malformed_event_is_rejected_and_nothing_published(topic):
    # One topic for the whole corpus (moto set-up dominates the run time); the
    # per-file tests below name the file that fails.
    wrong = []
    for path in CORPUS:
        case = load_case(path)
        try:
            process_alert(case["event"], sns_client=topic.sns, topic_arn=topic.arn)
            wrong.append(f"{path.stem}: accepted")
        except InvalidAlertError as err:
            if err.code not in case["codes"] or not err.reason:
                wrong.append(f"{path.stem}: {err}")
    assert wrong == []
    assert topic.published() == []
    assert topic.received() == []


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_each_schema_engine_rejects_the_corpus(engine, path):
    check = engine_or_skip(engine)
    case = load_case(path)
    with pytest.raises(InvalidAlertError) as caught:
        validate_alert(case["event"], validator=check)
    assert caught.value.code in case["codes"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"event_type": "update", "sequence": 4, "score": 0.5},
        {"event_type": "end", "sequence": 9, "ended_at": "2024-07-01T12:09:00+02:00"},
        {"snapshot": {"file": "cam0_1.jpg", "s3_key": "cam-01/2024/07/01/cam0_1.jpg"}},
        {"media_offset_s": 12.5, "model_sha256": "ab" * 32},
        {"sent_at": "2024-07-01T12:03:08.123456789Z"},
        {"thing_name": "site:cam_01", "topic_thing_name": "site:cam_01"},
        {
            "schema_version": "1.2",
            "event_type": "end",
            "sequence": 5,
            "ended_at": "2024-07-01T12:04:00Z",
            "end_reason": "camera_offline",
            "features": {
                "feature_version": "3",
                "windows": [[0.0, 0.5, 1.0, 2.5, 0.1, 0.0, 3.0, 0.2]] * 32,
                "labels": [{"label": "person", "score": 0.8}],
            },
        },
    ],
    ids=["start", "update", "end", "snapshot", "optional-fields", "nanoseconds", "colon-thing", "end-1.2"],
)
def test_valid_events_pass_both_engines(engine, overrides, start_event):
    check = engine_or_skip(engine)
    event = start_event(**overrides)
    alert = validate_alert(event, validator=check)
    assert "topic_thing_name" not in alert and "received_at_ms" not in alert
    assert alert == {key: value for key, value in event.items() if key not in ("topic_thing_name", "received_at_ms")}


def test_rejection_reason_names_the_field(start_event):
    with pytest.raises(InvalidAlertError) as caught:
        validate_alert(start_event(score=2))
    assert caught.value.code == "schema"
    assert caught.value.reason.startswith("score")


def test_thing_mismatch_reason_names_both_things(start_event, thing):
    with pytest.raises(InvalidAlertError) as caught:
        validate_alert(start_event(thing_name="cam-02"))
    assert "cam-02" in caught.value.reason and thing in caught.value.reason


def test_schema_is_read_from_the_bundle_root_when_copied_there(tmp_path, monkeypatch):
    source = REPO / "edge_component" / "contracts" / "alert.schema.json"
    monkeypatch.setattr(validation, "BUNDLE_ROOT", tmp_path / "bundle")
    assert validation.schema_path() == tmp_path / "edge_component" / "contracts" / "alert.schema.json"

    monkeypatch.setattr(validation, "BUNDLE_ROOT", REPO / "lambda")
    if not (REPO / "lambda" / "alert.schema.json").exists():
        assert validation.schema_path() == source

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "alert.schema.json").write_text(source.read_text())
    monkeypatch.setattr(validation, "BUNDLE_ROOT", bundle)
    assert validation.schema_path() == bundle / "alert.schema.json"


@pytest.mark.parametrize(
    "field, value",
    [
        ("started_at", "0001-01-01T00:30:00+01:00"),  # year 0 in UTC
        ("started_at", "9999-12-31T23:59:59-01:00"),  # year 10000 in UTC
        ("started_at", "0001-01-01T00:00:00Z"),  # year 0 in any zone west of UTC
        ("started_at", "9999-12-31T12:00:00Z"),  # year 10000 in any zone east of UTC+12
        ("sent_at", "0001-01-01T00:30:00+01:00"),
    ],
)
def test_dates_beyond_what_every_zone_can_show_are_invalid_naming_the_field(field, value, start_event):
    with pytest.raises(InvalidAlertError) as caught:
        validate_alert(start_event(**{field: value}))
    assert caught.value.code == "timestamp"
    assert caught.value.reason.startswith(f"{field}: ")


@pytest.mark.parametrize("time_zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Berlin"])
@pytest.mark.parametrize("started_at", ["0001-01-02T23:59:59-23:59", "0001-01-02T00:00:00Z", "9999-12-30T23:59:59Z"])
def test_the_earliest_and_latest_accepted_dates_format_in_every_zone(topic, time_zone, started_at, start_event):
    # The limit is a day inside datetime's range: whatever passes converts to any zone.
    event = start_event(started_at=started_at)
    result = process_alert(event, sns_client=topic.sns, topic_arn=topic.arn, time_zone=time_zone)
    assert result["status"] == "notified"


def test_parse_timestamp_raises_only_invalid_alert_error():
    for value in (None, 20240701, "2024-07-01T12:03:07+24:00", "2024-02-30T00:00:00Z", "0001-01-01T00:00:00+00:01"):
        with pytest.raises(InvalidAlertError) as caught:
            validation.parse_timestamp(value, "started_at")
        assert caught.value.code == "timestamp" and caught.value.reason.startswith("started_at: ")
