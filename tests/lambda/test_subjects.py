"""E-mail subjects in ASCII that still name the place (issue 16, item 8).

SNS's Publish API: "Subjects must be UTF-8 text with no line breaks or control
characters, and less than 100 characters long" (botocore's SNS model,
``PublishInput.Subject``; https://docs.aws.amazon.com/sns/latest/api/API_Publish.html),
and SNS replaces a subject with control or non-ASCII characters by an error text
(https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-alertmanager-receiver-validation-truncation.html);
e-mail headers are 7-bit unless encoded. Subjects are therefore kept ASCII. Folding
with NFKD alone dropped letters without a decomposition ("Großen" -> "Groen",
"Łódź" -> "odz") and a CJK site name entirely, leaving "at " with nothing after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil_alerts.notify import SUBJECT_MAX, format_notification
from vigil_alerts.processing import process_alert
from vigil_alerts.validation import validate_alert

STARTED = datetime(2024, 7, 1, 12, 3, 7, tzinfo=UTC)
PREFIX = "[Vigil] Intrusion: cam0/room at "

CASES = [
    # (site, stage, subject after PREFIX; ``{thing}``: the thing of start_event)
    ("Ferienhaus am Großen Garten", "dev", "Ferienhaus am Grossen Garten (dev)"),
    ("Straße 7, Zürich", "prod", "Strasse 7, Zurich (prod)"),
    ("Château d'Éternité", "dev", "Chateau d'Eternite (dev)"),
    ("Łódź, ul. Żółkiewskiego", "dev", "Lodz, ul. Zolkiewskiego (dev)"),
    ("Ærøskøbing Havn", "dev", "Aeroskobing Havn (dev)"),
    ("東京の家", "dev", "{thing} (dev)"),  # readings differ by language: the thing instead
    ("北京办公室", "本番", "{thing}"),  # a stage with no ASCII form is left out, not "()"
    ("🏠🌲", "dev", "{thing} (dev)"),  # emoji only
    ("Lakeside 🏡", "dev", "Lakeside (dev)"),  # emoji dropped, letters kept
    ("בית הכרם", "dev", "{thing} (dev)"),  # Hebrew (RTL): consonants only, not a name
    ("منزل دبي", "dev", "{thing} (dev)"),  # Arabic (RTL)
    ("\u202eevil\u202c Home", "dev", "evil Home (dev)"),  # bidi override removed
    ("Москва, дача", "dev", "Moskva, dacha (dev)"),
    ("", "", "{thing}"),
]


@pytest.fixture
def subject(start_event):
    """``subject(site, stage)``: the start alert's subject for ``site`` and ``stage``."""

    def build(site: str, stage: str) -> str:
        alert = validate_alert(start_event())
        return format_notification(alert, site_name=site, stage=stage, now=STARTED + timedelta(seconds=2)).subject

    return build


@pytest.mark.parametrize("site, stage, expected", CASES)
def test_subject_transliterates_or_falls_back_to_the_thing(site, stage, expected, subject, thing):
    expected = expected.format(thing=thing)
    text = subject(site, stage)
    assert text == PREFIX + expected
    assert text.isascii() and text.isprintable() and len(text) <= SUBJECT_MAX


@pytest.mark.parametrize("site, stage, expected", CASES[:8])
def test_sns_takes_the_subject(topic, site, stage, expected, start_event, thing):
    expected = expected.format(thing=thing)
    result = process_alert(
        start_event(), sns_client=topic.sns, topic_arn=topic.arn, site_name=site, stage=stage, now=STARTED
    )
    [envelope] = topic.received()
    assert result["status"] == "notified" and envelope["Subject"] == PREFIX + expected


def test_ascii_name_is_empty_when_nothing_readable_is_left():
    from vigil_alerts.subject import ascii_name

    assert ascii_name("🏠") == ""
    assert ascii_name("   ") == ""
    assert ascii_name("Cafe\u0301") == "Cafe"  # decomposed accent
    assert ascii_name("ﬁve ½") == "five 1/2"


def test_long_transliterated_site_is_cut_at_a_word_and_keeps_the_camera(subject):
    text = subject("Ferienwohnung Großer Garten " * 6, "dev")
    assert text.startswith(PREFIX + "Ferienwohnung Grosser Garten") and len(text) <= SUBJECT_MAX
    assert text.endswith("...")
