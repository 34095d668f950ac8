"""Signed feedback links: ``<url>?e=<thing>/<event_id>&v=false|true&x=<expiry>&s=<hmac>``.

The signature is HMAC-SHA256 (lower-case hex) over the canonical string
``vigil-feedback/1\\n<thing>/<event_id>\\n<verdict>\\n<expiry>`` (:func:`canonical`), keyed
with the stage's secret. Each parameter is part of the signed string, so changing any of
them (another event, the other verdict, a later expiry) breaks the signature; the
version prefix keeps the key from signing anything else by accident. ``v=false`` is
"false alarm" (the event was not an intrusion), ``v=true`` "correct".

:func:`parse_link` checks the parameters' shape (:class:`LinkError`, HTTP 400), then the
signature with :func:`hmac.compare_digest` (403), then the expiry (410): an expired
link with a bad signature is a forgery, not a late click.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

SCHEME = "vigil-feedback/1"
VERDICTS = {"false": "false alarm", "true": "correct"}
PARAMS = ("e", "v", "x", "s")
THING_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")  # the alert schema's thing_name
EVENT_ID_RE = re.compile(r"^[0-9a-f]{32}$")  # the alert schema's event_id
EXPIRY_RE = re.compile(r"^[0-9]{1,12}$")  # epoch seconds, no sign, no fraction
SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_QUERY = 1024  # a real link is ~250 characters


class LinkError(ValueError):
    """A feedback link that cannot be honoured: ``status`` is the HTTP status (400 bad
    shape, 403 bad signature, 410 expired) and the message says what is wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Link:
    """A verified link: the event (``thing``, ``event_id``), ``verdict`` ("false" or
    "true") and ``expires`` (epoch seconds)."""

    thing: str
    event_id: str
    verdict: str
    expires: int

    @property
    def is_false_alarm(self) -> bool:
        return self.verdict == "false"


def canonical(thing: str, event_id: str, verdict: str, expires: int) -> str:
    """The exact string the signature covers (see the module docstring)."""
    return f"{SCHEME}\n{thing}/{event_id}\n{verdict}\n{expires}"


def sign(key: bytes, thing: str, event_id: str, verdict: str, expires: int) -> str:
    """HMAC-SHA256 of :func:`canonical` under ``key``, 64 lower-case hex digits."""
    return hmac.new(key, canonical(thing, event_id, verdict, expires).encode("utf-8"), hashlib.sha256).hexdigest()


def make_link(base_url: str, key: bytes, thing: str, event_id: str, verdict: str, expires: int) -> str:
    """The link for one verdict on one event; ValueError for a verdict other than
    "false"/"true" or a thing or event id outside the alert schema's patterns."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be 'false' or 'true', got {verdict!r}")
    if not THING_RE.match(thing) or not EVENT_ID_RE.match(event_id):
        raise ValueError(f"not a thing name and event id: {thing!r}, {event_id!r}")
    query = urlencode(
        {"e": f"{thing}/{event_id}", "v": verdict, "x": str(expires), "s": sign(key, thing, event_id, verdict, expires)}
    )
    return f"{base_url.rstrip('/')}/?{query}"


def _one(params: dict[str, list[str]], name: str, what: str) -> str:
    values = params.get(name)
    if not values:
        raise LinkError(400, f"the link has no '{name}' parameter ({what}); it may have been cut short: copy it whole")
    if len(values) > 1:
        raise LinkError(400, f"the link has {len(values)} '{name}' parameters; it must have exactly one")
    return values[0]


@dataclass(frozen=True)
class Shape:
    """A link's parameters, well formed but not yet verified (:func:`parse_shape`)."""

    thing: str
    event_id: str
    verdict: str
    expires: int
    signature: str


def parse_shape(query: str) -> Shape:
    """The raw query string's parameters, checked for shape only (no key needed):
    :class:`LinkError` 400 naming a missing, repeated, unknown or malformed parameter."""
    if len(query) > MAX_QUERY:
        raise LinkError(400, f"the link's query is {len(query)} characters; a feedback link has at most {MAX_QUERY}")
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise LinkError(400, "the link's query string is malformed (not name=value pairs)") from None
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise LinkError(400, f"the link has unknown parameters {unknown}; expected only e, v, x and s")
    event = _one(params, "e", "the event, <thing>/<event id>")
    verdict = _one(params, "v", "the verdict, false or true")
    expiry = _one(params, "x", "the expiry time")
    signature = _one(params, "s", "the signature")
    thing, _, event_id = event.rpartition("/")
    if not THING_RE.match(thing) or not EVENT_ID_RE.match(event_id):
        raise LinkError(400, "parameter 'e' must be <thing>/<event id> (a thing name and 32 hex digits)")
    if verdict not in VERDICTS:
        raise LinkError(400, "parameter 'v' must be 'false' (false alarm) or 'true' (correct)")
    if not EXPIRY_RE.match(expiry):
        raise LinkError(400, "parameter 'x' must be the expiry time in whole seconds since 1970")
    if not SIGNATURE_RE.match(signature):
        raise LinkError(400, "parameter 's' must be the signature, 64 lower-case hex digits")
    return Shape(thing=thing, event_id=event_id, verdict=verdict, expires=int(expiry), signature=signature)


def verify(shape: Shape, key: bytes, now: float) -> Link:
    """The :class:`Link` of a well-formed ``shape`` whose signature matches under
    ``key`` (else :class:`LinkError` 403) and whose expiry is not before epoch ``now``
    (else 410)."""
    expected = sign(key, shape.thing, shape.event_id, shape.verdict, shape.expires)
    if not hmac.compare_digest(expected, shape.signature):
        raise LinkError(403, "the link's signature does not match: it was changed or was not sent by Vigil")
    if shape.expires < now:
        raise LinkError(410, "the link has expired; feedback on this event can no longer be given by link")
    return Link(thing=shape.thing, event_id=shape.event_id, verdict=shape.verdict, expires=shape.expires)


def parse_link(query: str, key: bytes, now: float) -> Link:
    """Check the raw query string of a request against ``key`` at epoch ``now``.

    Returns the :class:`Link`; raises :class:`LinkError` with status 400 (a missing,
    repeated, unknown or malformed parameter, named), 403 (the signature does not match)
    or 410 (a genuine link past its expiry). :func:`parse_shape` then :func:`verify`.
    """
    return verify(parse_shape(query), key, now)
