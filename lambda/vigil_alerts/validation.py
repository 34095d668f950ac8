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
5. the alert's rules beyond the schema (finite numbers, no control characters, RFC 3339
   timestamps, ``sequence`` 0 on ``start``, ``ended_at`` only on ``end``).

Steps 4 and 5 are the shared contract, ``alert_rules.py``, whose one home is
``edge_component/contracts/`` (the edge checks its alerts with it before publishing).
Like the schema, the infrastructure copies it into the bundle root at synth time; in
the repository (local runs, tests) both are read from the contract folder. Schema
engine: fastjsonschema, the one Powertools' validation utility uses and the
AWS-managed Powertools layer ships, compiled once (Powertools' ``validate()``
recompiles the schema on every call: about 5 ms here, against 7 us); jsonschema where
fastjsonschema is not installed, and a test runs the malformed corpus through both.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

# The bundle root: /var/task in Lambda, lambda/ in the repository.
BUNDLE_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = "alert.schema.json"
RULES_FILE = "alert_rules.py"
SUPPORTED_SCHEMA_VERSIONS = frozenset({"1.0", "1.1", "1.2"})  # 1.1: label, box; 1.2: end_reason, features
TOPIC_THING_KEY = "topic_thing_name"


def contract_path(name: str) -> Path:
    """Where a file of the alert contract is: the copy in the Lambda bundle root if
    present (the infrastructure puts it next to ``app.py`` at synth time), else its one
    home in ``edge_component/contracts/`` (local runs and tests)."""
    bundled = BUNDLE_ROOT / name
    if bundled.is_file():
        return bundled
    return BUNDLE_ROOT.parent / "edge_component" / "contracts" / name


def schema_path() -> Path:
    """Where the alert schema is (see :func:`contract_path`)."""
    return contract_path(SCHEMA_FILE)


def _load_rules() -> ModuleType:
    path = contract_path(RULES_FILE)
    spec = importlib.util.spec_from_file_location("vigil_alert_rules", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the alert rules from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


rules = _load_rules()
InvalidAlertError = rules.InvalidAlertError
parse_timestamp = rules.parse_timestamp


@cache
def load_schema(path: Path | None = None) -> dict[str, Any]:
    """The alert JSON schema as a dict, read once per path."""
    return json.loads((path or schema_path()).read_text(encoding="utf-8"))


@cache
def schema_validator(path: Path | None = None, engine: str | None = None) -> Callable[[Any], None]:
    """A compiled check for the alert schema that raises :class:`InvalidAlertError`.

    ``engine`` is ``"fastjsonschema"``, ``"jsonschema"`` or None for the first one
    importable, in that order.
    """
    return rules.schema_check(load_schema(path), engine)


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
        raise InvalidAlertError(
            "missing_topic_thing", f"{TOPIC_THING_KEY} is {type(topic_thing).__name__}, not a string"
        )
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
    rules.check_semantics(alert)
    return alert
