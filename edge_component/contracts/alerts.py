"""The alert message contract on the edge: the JSON schema and the rules beyond it.

The schema file ``alert.schema.json`` next to this module is the single source of
truth, and :mod:`.alert_rules` holds the rules the schema cannot say and the one schema
validator; the Lambda bundle carries byte-identical copies of both, made at synth time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .alert_rules import SCHEMA_FILE, InvalidAlertError, check_semantics, schema_check

SCHEMA_PATH = Path(__file__).with_name(SCHEMA_FILE)
SCHEMA_VERSION = "1.2"  # 1.1: an object's label and box; 1.2: an end's end_reason and features; older still valid


class AlertValidationError(ValueError):
    """An alert does not follow the contract; ``reason`` says which field and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@cache
def load_schema(path: str | None = None) -> dict[str, Any]:
    """The alert JSON schema as a dict (JSON Schema draft-07, so both jsonschema and
    fastjsonschema, which Powertools uses, read it)."""
    schema: dict[str, Any] = json.loads(Path(path or SCHEMA_PATH).read_text(encoding="utf-8"))
    return schema


@cache
def _validator(path: str | None = None) -> Callable[[Any], None]:
    # jsonschema: the edge's requirements pin it; fastjsonschema is the Lambda's.
    return schema_check(load_schema(path), engine="jsonschema")


def validate_alert(message: Mapping[str, Any], schema_path: str | None = None) -> None:
    """Raise AlertValidationError naming the first offending field if ``message`` is
    invalid: the schema first, then the rules beyond it (:func:`.alert_rules.check_semantics`)."""
    try:
        _validator(schema_path)(message)
        check_semantics(message)
    except InvalidAlertError as exc:
        raise AlertValidationError(exc.reason) from None
