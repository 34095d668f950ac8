"""Text that fits one SMS: 160 GSM-7 characters, or 70 UCS-2 ones if any character is
outside the GSM 03.38 alphabet (one such character switches the whole message).

SNS splits a longer message into several texts (and bills each); an alert should be one.
:func:`compose_sms` builds that one text from parts of different weight: names shorten
first (at grapheme-cluster boundaries, so a flag or an accented letter is never cut in
half), optional extras go next, and the parts that say what, where and when stay whole.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence

# UAX #29 extended grapheme clusters. wcwidth runs its pure-Python implementation where
# its optional C extension is absent (the Lambda bundle carries the Python code only).
from wcwidth import iter_graphemes

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
        ch
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION
        else "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        for ch in text
    )
    return folded if is_gsm7(folded) else text


def fits(text: str) -> bool:
    """True if ``text`` is one SMS (in whichever encoding it needs)."""
    _, used, limit = sms_length(text)
    return used <= limit


CUT_MARK = "."  # GSM-7, so shortening a name never forces UCS-2
NAME_FLOOR = 8  # graphemes a name keeps before optional extras are dropped


def shorten(clusters: Sequence[str], cap: int) -> str:
    """The name made of ``clusters`` (its grapheme clusters) in at most ``cap`` clusters:
    whole if it fits, else its first ``cap - 1`` clusters and :data:`CUT_MARK`, or ""
    (left out) for ``cap`` below 2."""
    if len(clusters) <= cap:
        return "".join(clusters)
    if cap < 2:
        return ""
    return "".join(clusters[: cap - 1]).rstrip(" ,;:-_/") + CUT_MARK


def without_symbols(name: str) -> str:
    """``name`` without emoji and other symbol clusters (flags, pictographs), spaces
    collapsed: "Lakeside 🏡 Cottage" -> "Lakeside Cottage"."""
    kept = (c for c in iter_graphemes(name) if unicodedata.category(c[0]) not in ("So", "Sk", "Cs"))
    return " ".join("".join(kept).split())


def compose_sms(
    render: Callable[[list[str], list[str], int], str],
    *,
    names: Sequence[str],
    keys: Sequence[str] = (),
    extras: int = 0,
) -> str:
    """The richest text ``render(names, keys, n_extras)`` gives that fits one SMS.

    ``names`` (site, stage) shorten first, the longest first, down to
    :data:`NAME_FLOOR` clusters; then the last of the ``extras`` optional parts
    (score, event id) are dropped one by one, the names growing back where that
    frees room; then names shorten to nothing; only then do ``keys`` (camera, zone)
    shorten. What ``render`` writes around them (what happened and when) never
    changes. Before any of that, names are folded to GSM-7 (accents, then symbols
    such as emoji dropped) where the text then fits whole or at least stays GSM-7.
    Every cut falls between grapheme clusters. ``render`` gets "" for a name left out.
    """
    names, keys = list(names), list(keys)
    for variant in (names, [to_gsm7(n) for n in names], [to_gsm7(without_symbols(n)) for n in names]):
        if fits(candidate := render(variant, keys, extras)):
            return candidate
        if is_gsm7(candidate):
            names = variant  # the first variant that keeps GSM-7's 160 is the one to shorten
            break
    name_clusters = [list(iter_graphemes(name)) for name in names]
    key_clusters = [list(iter_graphemes(key)) for key in keys]
    longest = max((len(c) for c in name_clusters), default=0)

    def text(cap: int, key_cap: int, kept: int) -> str:
        return render([shorten(c, cap) for c in name_clusters], [shorten(c, key_cap) for c in key_clusters], kept)

    whole_keys = max((len(c) for c in key_clusters), default=0)
    for kept in range(extras, -1, -1):
        for cap in range(longest, min(NAME_FLOOR, longest) - 1, -1):
            if fits(candidate := text(cap, whole_keys, kept)):
                return candidate
    for cap in range(min(NAME_FLOOR, longest) - 1, -1, -1):
        if fits(candidate := text(cap, whole_keys, 0)):
            return candidate
    for key_cap in range(whole_keys - 1, 1, -1):
        if fits(candidate := text(0, key_cap, 0)):
            return candidate
    return fit_sms(text(0, 2, 0))


def fit_sms(text: str) -> str:
    """``text`` folded to GSM-7 where possible and cut to fit one SMS, between grapheme
    clusters. Cuts from the end: for alerts use :func:`compose_sms`."""
    text = to_gsm7(text)
    _, used, limit = sms_length(text)
    if used <= limit:
        return text
    gsm = is_gsm7(text)
    out, total = [], 0
    for cluster in iter_graphemes(text):
        total += sum(_units(ch, gsm) for ch in cluster)
        if total > limit:
            break
        out.append(cluster)
    return "".join(out)
