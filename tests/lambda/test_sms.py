"""One SMS per alert that always says what, where and when (issue 16, item 7).

A site or stage name outside GSM-7 switches the whole text to UCS-2 (70 units), and
long names overflow GSM-7's 160; the text used to be cut from the end, dropping camera,
zone and time, and could cut a flag emoji in half. Names now shorten first, at grapheme
boundaries (UAX #29 clusters from wcwidth), and the camera, zone and time stay whole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from wcwidth import iter_graphemes

from vigil_alerts.notify import Suppressed, format_notification
from vigil_alerts.sms import sms_length, without_symbols
from vigil_alerts.validation import validate_alert

STARTED = datetime(2024, 7, 1, 12, 3, 7, tzinfo=UTC)
WHEN = "14:03 CEST"  # 12:03 UTC in Berlin, summer time

FLAGS = "🇩🇪🇫🇷🇮🇹🇪🇸🇵🇱🇨🇿🇦🇹🇨🇭🇳🇱🇧🇪"  # ten flags: two regional indicators each
CASES = {
    "emoji in site": ("Lakeside 🏡 Cottage", "dev", "garage-door-left", "driveway_north"),
    # CJK stage: stays UCS-2 whatever happens to the flags, so the cut falls among them
    "flag emoji at the cut": (f"{FLAGS}{FLAGS} Ferienhaus", "本番", "cam0", "room"),
    "long site and stage, GSM-7": (
        "Ferienwohnung am Grossen Garten, Hinterhaus links, zweites Obergeschoss, Wohnung 14b",
        "production-eu-central-1-blue",
        "c" * 40,
        "z" * 40,
    ),
    "CJK names": ("東京都渋谷区神宮前五丁目の事務所ビル三階南側", "本番環境", "entrance", "lobby"),
    "combining accents": (
        # decomposed Vietnamese (base letter + two combining marks) and Devanagari
        # vowel signs; the emoji keeps it in UCS-2 so the marks cannot be folded away
        "Nha\u0300 Nguye\u0323\u0302n 🌿 हिन्दी भवन नगर",
        "thu\u031b\u0309 nghie\u0323\u0302m",
        "porch",
        "steps",
    ),
    "longest camera and zone": ("Home 🏠", "dev", "c" * 64, "z" * 64),
}


@pytest.fixture
def notification(start_event):
    """``notification(site, stage, camera, zone, **options)``: the start alert from
    ``camera``/``zone`` formatted for ``site`` and ``stage`` in Europe/Berlin."""

    def build(site: str, stage: str, camera: str, zone: str, **kwargs):
        alert = validate_alert(start_event(camera=camera, zone=zone))
        return format_notification(
            alert, site_name=site, stage=stage, time_zone="Europe/Berlin", now=STARTED + timedelta(seconds=2), **kwargs
        )

    return build


def graphemes(text: str) -> list[str]:
    return list(iter_graphemes(text))


def assert_whole_prefix(shown: str, name: str) -> None:
    """``shown`` is ``name`` itself, or its first graphemes (cut mark "." removed), or nothing."""
    if shown in (name, without_symbols(name)):
        return
    cut = shown.removesuffix(".")
    assert graphemes(name)[: len(graphemes(cut))] == graphemes(cut), (shown, name)


@pytest.mark.parametrize("case", CASES)
def test_every_sms_keeps_what_where_and_when_in_one_message(case, notification):
    site, stage, camera, zone = CASES[case]
    sms = notification(site, stage, camera, zone).sms

    encoding, used, limit = sms_length(sms)
    assert used <= limit, (case, encoding, used, sms)
    assert "intrusion" in sms
    assert f"{camera}/{zone}" in sms or camera == "c" * 64  # the one case whose names cannot all fit
    assert WHEN in sms, sms


def test_longest_camera_and_zone_shorten_only_when_nothing_else_is_left(notification):
    # Dropping the emoji site name brings the text back to GSM-7, where 64 + 64 fit...
    sms = notification(*CASES["longest camera and zone"]).sms
    assert sms == f"Vigil: intrusion {'c' * 64}/{'z' * 64} {WHEN}"
    # ...and with the held count too they do not: only then are camera and zone cut.
    held = Suppressed(12, since=STARTED - timedelta(minutes=5), max_per_window=3, window_s=600)
    sms = notification(*CASES["longest camera and zone"], suppressed=held).sms
    where = sms.partition(" intrusion ")[2].split(f" {WHEN}")[0]
    camera, zone = where.split("/")
    assert camera.startswith("c" * 60) and zone.startswith("z" * 60) and camera.endswith(".")
    assert sms.endswith(f"{WHEN} +12 held") and sms_length(sms) == ("GSM-7", 160, 160)


@pytest.mark.parametrize("case", ["emoji in site", "flag emoji at the cut", "CJK names", "combining accents"])
def test_names_are_cut_at_grapheme_boundaries(case, notification):
    site, stage, camera, zone = CASES[case]
    sms = notification(site, stage, camera, zone).sms
    where = sms.split(": intrusion ")[0].removeprefix("Vigil").strip()
    shown_site, _, shown_stage = where.partition(" (")
    assert_whole_prefix(shown_site, site)
    if shown_stage:
        assert_whole_prefix(shown_stage.removesuffix(")"), stage)
    # No lone regional indicator (half a flag) anywhere.
    for cluster in graphemes(sms):
        indicators = [ch for ch in cluster if 0x1F1E6 <= ord(ch) <= 0x1F1FF]
        assert len(indicators) in (0, 2), (cluster, sms)


def test_emoji_are_dropped_before_letters_to_stay_in_gsm7(notification):
    sms = notification(*CASES["emoji in site"]).sms
    assert sms.startswith("Vigil Lakeside Cottage (dev): intrusion garage-door-left/driveway_north 14:03 CEST")
    assert sms_length(sms)[0] == "GSM-7"
    # Where the text is UCS-2 anyway (a CJK stage), the emoji stays.
    assert (
        notification("Home 🏠", "本番", "cam0", "room").sms
        == "Vigil Home 🏠 (本番): intrusion cam0/room 14:03 CEST, score 0.93"
    )


def test_short_names_are_kept_whole_and_extras_stay(notification):
    sms = notification("Lakeside", "dev", "cam0", "room").sms
    assert sms == "Vigil Lakeside (dev): intrusion cam0/room 14:03 CEST, score 0.93. Event 01234567"


def test_names_shorten_before_the_score_and_event_go(notification):
    # 160 GSM-7 characters leave room for the score and event id next to shortened names.
    site, stage, *_ = CASES["long site and stage, GSM-7"]
    sms = notification(site, stage, "cam0", "room").sms
    assert sms_length(sms) == ("GSM-7", len(sms), 160) and len(sms) <= 160
    assert "score 0.93" in sms and "Event 01234567" in sms
    assert "Ferienwohnung am Grossen Garten" in sms


def test_held_count_is_kept(notification):
    held = Suppressed(4, since=STARTED - timedelta(minutes=20), max_per_window=3, window_s=600)
    sms = notification(*CASES["CJK names"], suppressed=held).sms
    assert "+4 held" in sms and WHEN in sms and sms_length(sms)[1] <= 70
