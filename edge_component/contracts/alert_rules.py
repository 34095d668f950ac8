"""The alert's rules beyond its JSON schema, and the one schema validator: used by the
edge before it publishes (``edge_component.contracts.alerts``) and by the alert Lambda
before it notifies (``lambda/vigil_alerts/validation.py``).

Standard library only at import: the Lambda bundle carries a byte-identical copy of
this file, made at synth time (``infra/alerting.py``) like ``alert.schema.json``.

- :func:`schema_check`: the schema compiled once with fastjsonschema (what Powertools'
  validation utility uses and the AWS-managed Powertools layer ships) or jsonschema
  (the edge's, and where fastjsonschema is not installed); both raise
  :class:`InvalidAlertError` with code ``schema`` naming the field.
- :func:`check_semantics`: what the schema cannot say or engines disagree on. Finite
  numbers (Python's json accepts NaN and Infinity, which pass ``minimum``/``maximum``),
  no control characters in any string (jsonschema's ``$`` matches before a trailing
  newline, which would put a line break in an e-mail subject), RFC 3339 timestamps with
  an offset (jsonschema checks ``date-time`` only with an optional package),
  ``sequence`` 0 on ``start`` and ``ended_at`` only on ``end`` (both stated in the
  schema's descriptions).
- :data:`SNAPSHOT_PREFIX`: evidence snapshots live under ``snapshots/<thing>/`` in the
  evidence bucket (the device's credentials role pins them there; the Lambda signs
  links only there).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

SCHEMA_FILE = "alert.schema.json"
RULES_FILE = "alert_rules.py"
SNAPSHOT_PREFIX = "snapshots"

# RFC 3339 date-time with a mandatory offset; fromisoformat() alone also takes
# date-only, offset-less and basic-format strings.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_TIMESTAMP_FIELDS = ("started_at", "sent_at", "ended_at")
# A UTC offset is always less than a day, so an instant at least a day inside
# datetime's range (years 1..9999) can be shown in every time zone without
# OverflowError; one closer to either end cannot ("0001-01-01T00:30:00+01:00" is
# before year 1 in UTC).
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
_NUMBER_FIELDS = ("score", "threshold", "media_offset_s")


class InvalidAlertError(ValueError):
    """An alert that breaks the contract: the edge does not publish it, the Lambda
    refuses it (nothing is notified).

    ``code`` is a short, stable category for metrics (``not_an_object``,
    ``missing_topic_thing``, ``thing_mismatch``, ``schema_version``, ``schema``,
    ``non_finite``, ``control_character``, ``timestamp``, ``sequence``, ``ended_at``, ``box``);
    ``reason`` says which field and why, for logs and the dead-letter trail.
    """

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


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
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def check(data: Any) -> None:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(message)"
            raise InvalidAlertError("schema", f"{where}: {errors[0].message}")

    return check


def schema_check(schema: dict[str, Any], engine: str | None = None) -> Callable[[Any], None]:
    """A compiled check for ``schema`` that raises :class:`InvalidAlertError` (code
    ``schema``, the reason naming the first offending field).

    ``engine`` is ``"fastjsonschema"``, ``"jsonschema"`` or None for the first one
    importable, in that order.
    """
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
        utc = moment.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidAlertError("timestamp", f"{field}: {value!r}: {err}") from None
    if not _EARLIEST <= utc <= _LATEST:
        raise InvalidAlertError(
            "timestamp", f"{field}: {value!r} is too close to the year 1 or 9999 limit to show in every time zone"
        )
    return moment


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{where}/{key}" if where else str(key))


def _finite(value: Any) -> bool:
    """math.isfinite, False for an integer beyond float64 (JSON allows 10**400; isfinite
    raises OverflowError on it)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_semantics(alert: Mapping[str, Any]) -> None:
    """What the schema cannot say or engines disagree on (an alert that passed the
    schema): finite numbers, no control characters, RFC 3339 timestamps with an offset,
    ``sequence`` 0 on ``start``, ``ended_at`` only on ``end``, an object's ``box`` finite
    with its corners in order, an end's ``features`` finite."""
    for field in _NUMBER_FIELDS:
        if field in alert and not _finite(alert[field]):
            raise InvalidAlertError("non_finite", f"{field}: {alert[field]!r} is not a finite number")
    for where, text in _strings(alert, ""):
        if any(unicodedata.category(ch) == "Cc" for ch in text):
            raise InvalidAlertError("control_character", f"{where}: contains a control character")
    for field in _TIMESTAMP_FIELDS:
        if field in alert:
            parse_timestamp(alert[field], field)
    if alert["event_type"] == "start" and alert["sequence"] != 0:
        raise InvalidAlertError("sequence", f"sequence: a start message has sequence 0, got {alert['sequence']!r}")
    box = alert.get("box")
    if box is not None:
        if not all(_finite(v) for v in box):
            raise InvalidAlertError("non_finite", f"box: {box!r} holds a number that is not finite")
        if not (box[0] < box[2] and box[1] < box[3]):
            raise InvalidAlertError("box", f"box: {box!r} is not (x0, y0, x1, y1) with x0 < x1 and y0 < y1")
    features = alert.get("features")
    if features is not None:
        for i, row in enumerate(features["windows"]):
            if not all(_finite(v) for v in row):
                raise InvalidAlertError("non_finite", f"features/windows/{i}: holds a number that is not finite")
    if "ended_at" in alert and alert["event_type"] != "end":
        raise InvalidAlertError(
            "ended_at", f"ended_at: only an end message carries it, this is {alert['event_type']!r}"
        )
