"""Formatting of notifications: subject, body, SMS text and attributes (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil_alerts.notify import (
    SUBJECT_MAX,
    Suppressed,
    clean_subject,
    format_notification,
    format_snapshot_update,
    severity,
)
from vigil_alerts.sms import fit_sms, sms_length, to_gsm7
from vigil_alerts.validation import validate_alert

STARTED = datetime(2024, 7, 1, 12, 3, 7, tzinfo=UTC)


def row(note, label: str) -> str | None:
    """The value of the body's "Label:  value" line, or None."""
    for line in note.body.splitlines():
        if line.startswith(f"{label}:"):
            return line[len(label) + 1 :].strip()
    return None


@pytest.fixture
def notification(start_event):
    """``notification(now=..., alert={...}, **options)``: the start alert (``alert``
    overriding fields) formatted for Lakeside, Europe/Berlin, dev unless ``options`` say."""

    def build(now=STARTED + timedelta(seconds=2), **kwargs):
        alert = validate_alert(start_event(**kwargs.pop("alert", {})))
        options = {"site_name": "Lakeside", "time_zone": "Europe/Berlin", "stage": "dev"}
        options.update(kwargs)
        return format_notification(alert, now=now, **options)

    return build


@pytest.mark.parametrize(
    "zone, started_at, shown",
    [
        ("Europe/Berlin", "2024-01-15T23:30:00Z", "2024-01-16 00:30:00 CET (Europe/Berlin)"),
        ("America/New_York", "2024-07-01T03:00:00Z", "2024-06-30 23:00:00 EDT (America/New_York)"),
        ("UTC", "2024-07-01T12:03:07+02:00", "2024-07-01 10:03:07 UTC (UTC)"),
        ("Asia/Kolkata", "2024-07-01T00:00:00Z", "2024-07-01 05:30:00 IST (Asia/Kolkata)"),
    ],
)
def test_start_time_is_shown_in_the_stage_time_zone(zone, started_at, shown, notification):
    note = notification(time_zone=zone, alert={"started_at": started_at})
    assert row(note, "Started").startswith(shown + ";")


def test_unknown_time_zone_falls_back_to_utc(caplog, notification):
    note = notification(time_zone="Mars/Olympus_Mons")
    assert row(note, "Started").startswith("2024-07-01 12:03:07 UTC (UTC);")
    assert "Mars/Olympus_Mons" in caplog.text


def test_subject_is_one_ascii_line_under_100_characters(notification):
    note = notification(
        site_name="Ferienhaus Zürich\nBcc: x", stage="prod", alert={"camera": "c" * 64, "zone": "z" * 64}
    )
    assert len(note.subject) <= SUBJECT_MAX
    assert note.subject.isascii() and "\n" not in note.subject
    assert note.subject.startswith("[Vigil] Intrusion: ccc")
    assert note.subject.endswith("...")


def test_subject_folds_accents_and_keeps_short_names_whole(notification):
    assert clean_subject("[Vigil] Intrusion: cam0/room at Café Zürich (dev)") == (
        "[Vigil] Intrusion: cam0/room at Cafe Zurich (dev)"
    )
    assert notification(stage="").subject == "[Vigil] Intrusion: cam0/room at Lakeside"


@pytest.mark.parametrize(
    "score, threshold, level", [(0.95, 0.8, "high"), (0.9, 0.8, "high"), (0.85, 0.8, "medium"), (0.5, 0.8, "low")]
)
def test_severity_from_score_and_threshold(score, threshold, level, notification):
    assert severity(score, threshold) == level
    assert notification(alert={"score": score, "threshold": threshold}).attributes["severity"] == level


def test_snapshot_location_with_and_without_evidence_bucket(notification):
    snapshot = {"file": "cam0_1.jpg", "s3_key": "snapshots/cam-01/cam0_1.jpg"}
    with_bucket = notification(alert={"snapshot": snapshot}, evidence_bucket="vigil-evidence")
    assert row(with_bucket, "Snapshot") == "cam0_1.jpg, s3://vigil-evidence/snapshots/cam-01/cam0_1.jpg"
    on_device = notification(alert={"snapshot": {"file": "cam0_1.jpg"}})
    assert row(on_device, "Snapshot") == "cam0_1.jpg (kept on the device)"
    assert row(notification(), "Snapshot") is None


def test_late_delivery_is_stated(notification):
    assert row(notification(), "Delivered") is None
    late = notification(now=STARTED + timedelta(hours=3, minutes=7))
    assert row(late, "Delivered") == "3 h 7 min after the event started"


def test_held_alerts_are_summarised(notification):
    held = Suppressed(4, since=STARTED - timedelta(minutes=20), max_per_window=3, window_s=600)
    note = notification(suppressed=held)
    assert row(note, "Suppressed") == (
        "4 earlier alert(s) from this camera not sent since 2024-07-01 13:43:07 CEST (at most 3 per 10 min)"
    )
    assert "+4 held" in note.sms


def test_sms_fits_one_message_in_gsm7(notification):
    note = notification(site_name="Lakeside Cottage North Gate", alert={"camera": "c" * 64, "zone": "z" * 64})
    encoding, used, limit = sms_length(note.sms)
    assert (encoding, limit) == ("GSM-7", 160)
    assert used <= 160
    # Names shorten first (issue 16, item 7): here the site and stage make way for camera,
    # zone and time, which stay whole (test_sms.py has the other cases).
    assert note.sms == f"Vigil: intrusion {'c' * 64}/{'z' * 64} 14:03 CEST"


def test_sms_with_non_gsm_site_uses_ucs2_limit(notification):
    note = notification(site_name="東京の家")
    encoding, used, limit = sms_length(note.sms)
    assert (encoding, limit) == ("UCS-2", 70)
    assert used <= 70 and note.sms.startswith("Vigil 東京の家 (dev)")


def test_accents_are_folded_to_keep_gsm7(notification):
    assert to_gsm7("Tōkyō Café") == "Tokyo Café"  # é is in GSM-7, ō is not
    assert sms_length(notification(site_name="Tōkyō").sms)[0] == "GSM-7"


def test_gsm7_extension_characters_count_twice():
    assert sms_length("[]")[1] == 4
    cut = fit_sms("{" * 100)
    assert sms_length(cut)[1] == 160 and len(cut) == 80


def test_an_object_alert_says_what_was_seen_and_a_1_0_alert_still_reads_as_before(notification):
    # Schema 1.1 adds the optional label and box of an object's event; 1.0 stays accepted.
    note = notification(alert={"schema_version": "1.1", "label": "person", "box": [0.1, 0.2, 0.4, 0.9]})
    assert note.subject == "[Vigil] Person in zone room: cam0 at Lakeside (dev)"
    assert note.body.splitlines()[0] == "Person in zone room (camera cam0) at Lakeside (dev)."
    assert row(note, "Seen") == "person"
    assert "person cam0/room" in note.sms
    old = notification(alert={"schema_version": "1.0"})
    assert old.subject == "[Vigil] Intrusion: cam0/room at Lakeside (dev)" and row(old, "Seen") is None


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"schema_version": "1.0", "label": "person", "box": [0.1, 0.2, 0.4, 0.9]}, "schema"),  # 1.0 has no label
        ({"schema_version": "1.1", "label": "person"}, "schema"),  # a label needs its box
        ({"schema_version": "1.1", "label": "person", "box": [0.4, 0.2, 0.1, 0.9]}, "box"),  # corners swapped
        ({"schema_version": "1.1", "label": "Person!", "box": [0.1, 0.2, 0.4, 0.9]}, "schema"),
    ],
)
def test_object_fields_are_validated(changes, reason, start_event):
    from vigil_alerts.validation import InvalidAlertError

    with pytest.raises(InvalidAlertError) as err:
        validate_alert(start_event(**changes))
    assert err.value.code == reason


def test_snapshot_follow_up_of_an_object_event_says_what_was_seen(start_event, event_id, thing):
    key = f"snapshots/{thing}/{event_id}/cam0_1.jpg"
    alert = validate_alert(
        start_event(
            schema_version="1.1",
            event_type="update",
            sequence=1,
            label="person",
            box=[0.1, 0.2, 0.3, 0.4],
            snapshot={"file": "cam0_1.jpg", "s3_key": key},
        )
    )
    note = format_snapshot_update(
        alert, snapshot_url="https://example.test/x?sig", site_name="Lakeside", stage="dev", evidence_bucket="b"
    )
    assert note.subject == "[Vigil] Snapshot of person in zone room: cam0 at Lakeside (dev)"
    assert row(note, "Snapshot") == f"cam0_1.jpg, s3://b/{key}"
    assert row(note, "Link") == "https://example.test/x?sig (valid for up to 24 h 0 min)"
    assert row(note, "Seen") == "person" and row(note, "Event ID") == event_id
    assert note.attributes["severity"] == "snapshot"


def test_snapshot_follow_up_needs_the_uploaded_key(start_event):
    alert = validate_alert(start_event(event_type="update", sequence=1, snapshot={"file": "cam0_1.jpg"}))
    with pytest.raises(ValueError, match=r"snapshot\.s3_key"):
        format_snapshot_update(alert, snapshot_url="https://example.test/x")
