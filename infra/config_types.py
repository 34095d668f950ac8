"""The building blocks of the stage configuration models: their strict, frozen base and
the field types several models share (thing names, e-mail addresses, phone numbers)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from edge_component.contracts.topics import THING_NAME_PATTERN

ThingName = Annotated[str, StringConstraints(pattern=THING_NAME_PATTERN.pattern)]
# Deliberately simple: one @, no spaces, a dot in the domain. SNS confirms the address anyway.
# No control characters either (\s covers only the whitespace ones).
Email = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$", max_length=254),
]
# E.164: a plus, a non-zero country digit, at most 15 digits in all.
E164Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
SemVer = Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]


class Frozen(BaseModel):
    """Base of every stage configuration model: frozen, unknown keys refused, no coercion."""

    # strict: a number must be a JSON number and a flag a JSON boolean ("14", 14.0 and
    # true are not 14; "false" is not false), so a mistyped value fails naming its key.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def list_field() -> Any:
    """A tuple field that takes cdk.json's lists (strict mode would take only tuples)."""
    return Field(default=(), strict=False)


def no_control_characters(value: str) -> str:
    """Refuse control, format and line/paragraph separator characters (a newline in a
    site name would end an e-mail subject and start another line of the body)."""
    for index, char in enumerate(value):
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            raise ValueError(f"contains a control character (U+{ord(char):04X} at position {index})")
    return value
