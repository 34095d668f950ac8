"""Text that fits one SMS: 160 GSM-7 characters, or 70 UCS-2 ones if any character is
outside the GSM 03.38 alphabet (one such character switches the whole message).

SNS splits a longer message into several texts (and bills each); an alert should be one.
"""

from __future__ import annotations

import unicodedata

# GSM 03.38 default alphabet (one septet each) and its extension table (escape + one
# septet, so two each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_LIMIT = 160
UCS2_LIMIT = 70


def is_gsm7(text: str) -> bool:
    """True if every character of ``text`` is in the GSM-7 alphabet or its extension."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _units(ch: str, gsm: bool) -> int:
    if gsm:
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1  # UTF-16 surrogate pair


def sms_length(text: str) -> tuple[str, int, int]:
    """``(encoding, units used, units allowed in one SMS)`` with encoding "GSM-7" or "UCS-2"."""
    gsm = is_gsm7(text)
    used = sum(_units(ch, gsm) for ch in text)
    return ("GSM-7", used, GSM7_LIMIT) if gsm else ("UCS-2", used, UCS2_LIMIT)


def to_gsm7(text: str) -> str:
    """``text`` with accents dropped where that alone makes it GSM-7 ("Tōkyō" -> "Tokyo");
    unchanged if other characters are outside the alphabet (they then need UCS-2 anyway)."""
    if is_gsm7(text):
        return text
    folded = "".join(
        ch if ch in GSM7_BASIC or ch in GSM7_EXTENSION else
        "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        for ch in text
    )
    return folded if is_gsm7(folded) else text


def fit_sms(text: str) -> str:
    """``text`` folded to GSM-7 where possible and cut to fit one SMS."""
    text = to_gsm7(text)
    _, used, limit = sms_length(text)
    if used <= limit:
        return text
    gsm = is_gsm7(text)
    out, total = [], 0
    for ch in text:
        total += _units(ch, gsm)
        if total > limit:
            break
        out.append(ch)
    return "".join(out)
