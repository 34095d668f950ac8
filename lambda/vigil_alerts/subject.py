"""E-mail subjects in ASCII that still say where.

SNS subjects are kept ASCII (e-mail headers are 7-bit unless encoded, and SNS replaces a
subject with non-ASCII characters by an error text), so names are transliterated with
anyascii (ISC licence; Unidecode, the better-known one, is GPL): "Großen" -> "Grossen",
"Łódź" -> "Lodz", "Москва" -> "Moskva". Two kinds of script are not transliterated,
because the result would not be a name the reader knows: Han and kana (a reading in
one language: anyascii turns Japanese 東京 into Chinese "DongJing", not "Tokyo") and the
abjads (Hebrew, Arabic: vowels are not written, so "בית" comes out "vyt"). A name in
those, or one of only emoji, has no ASCII form here, and the subject names the thing.
"""

from __future__ import annotations

import unicodedata

from anyascii import anyascii

# Scripts not transliterated (see above), by the start of their characters' Unicode names.
UNTRANSLITERATED = ("CJK ", "HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA", "HEBREW", "ARABIC", "SYRIAC", "THAANA")
# Categories dropped before transliterating: symbols (emoji, flags), format characters
# (bidi overrides, zero-width joiners), surrogates, private use, unassigned.
DROPPED_CATEGORIES = ("So", "Sk", "Cf", "Cs", "Co", "Cn")


def _untransliterated(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(UNTRANSLITERATED)


def ascii_name(name: str) -> str:
    """``name`` in printable ASCII, spaces collapsed; "" when it has no readable ASCII
    form (empty, only emoji, or in a script listed in :data:`UNTRANSLITERATED`)."""
    text = unicodedata.normalize("NFC", name)
    if any(_untransliterated(ch) for ch in text):
        return ""
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in DROPPED_CATEGORIES)
    folded = "".join(ch if ch.isprintable() else " " for ch in anyascii(kept) if ch.isascii())
    single = " ".join(folded.split())
    return single if any(ch.isalnum() for ch in single) else ""


def place(site_name: str, stage: str, fallback: str) -> str:
    """Where, for a subject: "<site> (<stage>)" in ASCII; the site replaced by
    ``fallback`` (the thing's name) when it has no ASCII form, the stage left out when
    it has none. Never empty while ``fallback`` is not."""
    site = ascii_name(site_name) or fallback
    shown_stage = ascii_name(stage)
    return f"{site} ({shown_stage})" if shown_stage else site
