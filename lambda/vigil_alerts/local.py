"""Running the handler outside Lambda (the local demo, tests, benchmarks).

``handler(event, context)`` needs a context object: Powertools' Logger reads
``function_name``, ``memory_limit_in_mb``, ``invoked_function_arn`` and
``aws_request_id`` from it, and idempotency calls ``get_remaining_time_in_millis()``.
:class:`LocalContext` has exactly those. :func:`sample_event` makes a valid event and
:func:`rule_event` turns a device's message into what the topic rule delivers. :func:`load_handler_module` imports
``lambda/app.py`` by path under its own name, because ``import app`` at the repository
root finds the CDK app.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import uuid4

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"
# The alert topic rule's SELECT (infra/alert_rule.py RULE_SQL; a test checks they agree):
# SELECT *, topic(2) AS topic_thing_name, timestamp() AS received_at_ms FROM 'vigil/+/alerts'
TOPIC_THING_KEY = "topic_thing_name"
RECEIVED_AT_KEY = "received_at_ms"
TOPIC_THING_SEGMENT = 2


def rule_event(message: Mapping[str, Any], topic: str, *, received_at: datetime | None = None) -> dict[str, Any]:
    """What the topic rule hands the Lambda for ``message`` published on ``topic``: the
    message's fields, the thing from the topic's 2nd segment, and the receipt time
    (``received_at``, default now) in milliseconds as IoT's ``timestamp()`` gives it."""
    moment = received_at or datetime.now(UTC)
    return {
        **message,
        TOPIC_THING_KEY: topic.split("/")[TOPIC_THING_SEGMENT - 1],
        RECEIVED_AT_KEY: int(moment.timestamp() * 1000),
    }


def sample_event(**overrides: Any) -> dict[str, Any]:
    """A valid ``start`` alert of thing ``cam-01`` as the topic rule delivers it (with
    ``topic_thing_name`` and ``received_at_ms``, 150 ms after ``sent_at``), a fresh
    ``event_id`` each call; ``overrides`` replace fields."""
    event = {
        "schema_version": "1.0",
        "event_id": uuid4().hex,
        "event_type": "start",
        "sequence": 0,
        "thing_name": "cam-01",
        "camera": "cam0",
        "zone": "room",
        "started_at": "2024-07-01T12:03:07Z",
        "sent_at": "2024-07-01T12:03:08.250Z",
        "score": 0.93,
        "threshold": 0.8,
        "topic_thing_name": "cam-01",
        "received_at_ms": 1719835388400,  # 2024-07-01T12:03:08.400Z
    }
    event.update(overrides)
    return event


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that Powertools uses."""

    function_name: str = "vigil-alert-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:vigil-alert-local"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid4()))
    log_group_name: str = "/aws/lambda/vigil-alert-local"
    log_stream_name: str = "local"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler_module(name: str = "vigil_alert_app") -> ModuleType:
    """``lambda/app.py`` imported as module ``name`` (once; later calls return it)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
