"""The alert contract as the Lambda enforces it.

The IoT topic rule ``SELECT *, topic(2) AS topic_thing_name FROM 'vigil/+/alerts'``
hands the Lambda the device's alert plus ``topic_thing_name``. :func:`validate_alert`
takes that event apart and returns the bare alert, or raises :class:`InvalidAlertError`
with a reason. The checks, in order:

1. the event is a JSON object carrying ``topic_thing_name`` (a string);
2. the alert's ``thing_name`` equals the thing in the topic: IoT policies pin a device
   to its own topic, so a mismatch is a device lying about who it is;
3. ``schema_version`` is one this Lambda knows (a clearer reason than the schema's
   ``const`` error when the edge moves on to 2.x first);
4. the JSON schema (``alert.schema.json``, draft-07), compiled once;
5. what the schema cannot say or engines disagree on: finite numbers (Python's json
   accepts NaN and Infinity, which pass ``minimum``/``maximum``), no control characters
   in any string (jsonschema's ``$`` matches before a trailing newline, which would put
   a line break in an e-mail subject), RFC 3339 timestamps with an offset (jsonschema
   checks ``date-time`` only with an optional package), ``sequence`` 0 on ``start`` and
   ``ended_at`` only on ``end`` (both stated in the schema's descriptions).

Schema engine: fastjsonschema, the one Powertools' validation utility uses and the
AWS-managed Powertools layer ships. Powertools' ``validate()`` recompiles the schema on
every call (about 5 ms here, against 7 us for a compiled validator), so the validator
is compiled once with the same library. Where fastjsonschema is not installed (a bare
development environment) jsonschema is used instead; step 5 keeps the two equivalent,
and a test runs the malformed corpus through both.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = "alert.schema.json"
# The bundle root: /var/task in Lambda, lambda/ in the repository.
BUNDLE_ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_SCHEMA_VERSIONS = frozenset({"1.0"})
TOPIC_THING_KEY = "topic_thing_name"

# RFC 3339 date-time with a mandatory offset; fromisoformat() alone also takes
# date-only, offset-less and basic-format strings.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_TIMESTAMP_FIELDS = ("started_at", "sent_at", "ended_at")
# A UTC offset is always less than a day, so an instant at least a day inside
# datetime's range (years 1..9999) can be shown in every time zone without
# OverflowError; one closer to either end cannot ("0001-01-01T00:30:00+01:00" is
# before year 1 in UTC).
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=1)
_NUMBER_FIELDS = ("score", "threshold", "media_offset_s")


class InvalidAlertError(ValueError):
    """An event the Lambda refuses: nothing is published for it.

    ``code`` is a short, stable category for metrics (``not_an_object``,
    ``missing_topic_thing``, ``thing_mismatch``, ``schema_version``, ``schema``,
    ``non_finite``, ``control_character``, ``timestamp``, ``sequence``, ``ended_at``);
    ``reason`` says which field and why, for logs and the dead-letter trail.
    """

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def schema_path() -> Path:
    """Where the alert schema is: the copy in the Lambda bundle root if present
    (the infrastructure puts it next to ``app.py`` at synth time), else the one source
    of truth in ``edge_component/contracts/`` (local runs and tests)."""
    bundled = BUNDLE_ROOT / SCHEMA_FILE
    if bundled.is_file():
        return bundled
    return BUNDLE_ROOT.parent / "edge_component" / "contracts" / SCHEMA_FILE


@lru_cache(maxsize=None)
def load_schema(path: Path | None = None) -> dict[str, Any]:
    """The alert JSON schema as a dict, read once per path."""
    return json.loads((path or schema_path()).read_text(encoding="utf-8"))


def _fastjsonschema_validator(schema: dict[str, Any]) -> Callable[[Any], None]:
    import fastjsonschema

    compiled = fastjsonschema.compile(schema)

    def check(data: Any) -> None:
        try:
            compiled(data)
        except fastjsonschema.JsonSchemaValueException as err:
            where = "/".join(str(p) for p in err.path[1:]) or "(message)"
            # err.message starts with the path ("data.camera must ..."); keep the rule.
            message = err.message.split(" ", 1)[1] if err.message.startswith("data") else err.message
            raise InvalidAlertError("schema", f"{where}: {message}") from None

    return check


def _jsonschema_validator(schema: dict[str, Any]) -> Callable[[Any], None]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def check(data: Any) -> None:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(message)"
            raise InvalidAlertError("schema", f"{where}: {errors[0].message}")

    return check


@lru_cache(maxsize=None)
def schema_validator(path: Path | None = None, engine: str | None = None) -> Callable[[Any], None]:
    """A compiled check for the alert schema that raises :class:`InvalidAlertError`.

    ``engine`` is ``"fastjsonschema"``, ``"jsonschema"`` or None for the first one
    importable, in that order.
    """
    schema = load_schema(path)
    if engine == "jsonschema":
        return _jsonschema_validator(schema)
    if engine == "fastjsonschema":
        return _fastjsonschema_validator(schema)
    try:
        return _fastjsonschema_validator(schema)
    except ModuleNotFoundError:
        return _jsonschema_validator(schema)


def parse_timestamp(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time with offset as an aware datetime that every time zone can
    show; InvalidAlertError naming ``field`` if not (never ValueError or OverflowError)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise InvalidAlertError("timestamp", f"{field}: {str(value)[:40]!r} is not an RFC 3339 date-time with offset")
    try:
        # Python 3.11 fromisoformat takes "Z" but at most 6 fraction digits.
        text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("z", "Z").replace("t", "T"))
        moment = datetime.fromisoformat(text)
        utc = moment.astimezone(timezone.utc)
    except (ValueError, OverflowError) as err:
        raise InvalidAlertError("timestamp", f"{field}: {value!r}: {err}") from None
    if not _EARLIEST <= utc <= _LATEST:
        raise InvalidAlertError(
            "timestamp", f"{field}: {value!r} is too close to the year 1 or 9999 limit to show in every time zone"
        )
    return moment


def _strings(value: Any, where: str):
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{where}/{key}" if where else str(key))


def _check_semantics(alert: Mapping[str, Any]) -> None:
    for field in _NUMBER_FIELDS:
        if field in alert and not math.isfinite(alert[field]):
            raise InvalidAlertError("non_finite", f"{field}: {alert[field]!r} is not a finite number")
    for where, text in _strings(alert, ""):
        if any(unicodedata.category(ch) == "Cc" for ch in text):
            raise InvalidAlertError("control_character", f"{where}: contains a control character")
    for field in _TIMESTAMP_FIELDS:
        if field in alert:
            parse_timestamp(alert[field], field)
    if alert["event_type"] == "start" and alert["sequence"] != 0:
        raise InvalidAlertError("sequence", f"sequence: a start message has sequence 0, got {alert['sequence']!r}")
    if "ended_at" in alert and alert["event_type"] != "end":
        raise InvalidAlertError("ended_at", f"ended_at: only an end message carries it, this is {alert['event_type']!r}")


def validate_alert(event: Any, *, validator: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """The alert in a topic-rule event, checked; raises :class:`InvalidAlertError`.

    ``event`` is what the rule delivers: the alert's fields plus ``topic_thing_name``.
    Returns a new dict, the alert without ``topic_thing_name`` and ``received_at_ms``
    (:func:`vigil_alerts.receipt.split_receipt` reads that); ``event`` is not changed.
    ``validator`` defaults to :func:`schema_validator` for the bundled schema.
    """
    if not isinstance(event, Mapping):
        raise InvalidAlertError("not_an_object", f"event is {type(event).__name__}, not a JSON object")
    from vigil_alerts.receipt import split_receipt  # here: receipt.py builds on this module

    alert, _ = split_receipt(dict(event))  # the rule's received_at_ms: checked, then set aside
    if TOPIC_THING_KEY not in alert:
        raise InvalidAlertError("missing_topic_thing", f"{TOPIC_THING_KEY} missing: the topic rule's SELECT adds it")
    topic_thing = alert.pop(TOPIC_THING_KEY)
    if not isinstance(topic_thing, str):
        raise InvalidAlertError("missing_topic_thing", f"{TOPIC_THING_KEY} is {type(topic_thing).__name__}, not a string")
    if alert.get("thing_name") != topic_thing:
        raise InvalidAlertError(
            "thing_mismatch",
            f"thing_name {str(alert.get('thing_name'))[:140]!r} differs from topic thing {topic_thing[:140]!r}",
        )
    version = alert.get("schema_version")
    if isinstance(version, str) and version not in SUPPORTED_SCHEMA_VERSIONS:
        known = ", ".join(sorted(SUPPORTED_SCHEMA_VERSIONS))
        raise InvalidAlertError("schema_version", f"schema_version {version[:20]!r} is not supported (known: {known})")
    (validator or schema_validator())(alert)
    _check_semantics(alert)
    return alert
