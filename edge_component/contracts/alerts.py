"""The alert message contract: loading the JSON schema and validating against it.

The schema file ``alert.schema.json`` next to this module is the single source of
truth; the Lambda bundle carries a byte-identical copy made at synth time.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("alert.schema.json")
SCHEMA_VERSION = "1.0"


class AlertValidationError(ValueError):
    """An alert does not follow the schema; ``reason`` says which field and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@lru_cache(maxsize=None)
def load_schema(path: str | None = None) -> dict[str, Any]:
    """The alert JSON schema as a dict (JSON Schema draft-07, so both jsonschema and fastjsonschema, which Powertools uses, read it)."""
    return json.loads(Path(path or SCHEMA_PATH).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(path: str | None = None) -> jsonschema.protocols.Validator:
    schema = load_schema(path)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_alert(message: Mapping[str, Any], schema_path: str | None = None) -> None:
    """Raise AlertValidationError naming the first offending field if ``message`` is invalid."""
    errors = sorted(_validator(schema_path).iter_errors(message), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(message)"
        raise AlertValidationError(f"{where}: {err.message}")
