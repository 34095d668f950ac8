"""MQTT topic names: the one function used by the IoT policy, the topic rule's SQL,
the Greengrass recipe's access control and the edge publishers.

Topics follow ``vigil/<thing name>/<channel>``; the thing name is the IoT thing the
device connects as, so a device can only ever publish under its own name.
"""

from __future__ import annotations

import re

TOPIC_ROOT = "vigil"
ALERT_CHANNEL = "alerts"
TELEMETRY_CHANNEL = "telemetry"

# AWS IoT thing names: 1..128 of [a-zA-Z0-9:_-].
THING_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


def _check_thing(thing_name: str) -> str:
    if not THING_NAME_PATTERN.match(thing_name or ""):
        raise ValueError(f"invalid thing name {thing_name!r}: must be 1-128 characters of a-z A-Z 0-9 : _ -")
    return thing_name


def alert_topic(thing_name: str) -> str:
    """Topic a device publishes its alert events on, e.g. ``vigil/cam-01/alerts``.

    Raises ValueError if ``thing_name`` is not a valid IoT thing name. Pass a policy
    variable such as ``${iot:Connection.Thing.ThingName}`` through
    :func:`topic_template` instead.
    """
    return f"{TOPIC_ROOT}/{_check_thing(thing_name)}/{ALERT_CHANNEL}"


def telemetry_topic(thing_name: str) -> str:
    """Topic a device publishes heartbeat and stats on, e.g. ``vigil/cam-01/telemetry``."""
    return f"{TOPIC_ROOT}/{_check_thing(thing_name)}/{TELEMETRY_CHANNEL}"


def topic_template(thing_placeholder: str, channel: str) -> str:
    """Topic with an unvalidated placeholder in the thing position.

    For IoT policy variables (``${iot:Connection.Thing.ThingName}``), the rule's
    wildcard (``+``) and Greengrass recipe variables (``{iot:thingName}``).
    """
    if channel not in (ALERT_CHANNEL, TELEMETRY_CHANNEL):
        raise ValueError(f"unknown channel {channel!r}")
    return f"{TOPIC_ROOT}/{thing_placeholder}/{channel}"


# The filter the topic rule selects from: alerts of any thing. The thing name is
# topic segment 2 in the rule SQL's 1-based ``topic(n)``.
ALERT_TOPIC_FILTER = topic_template("+", ALERT_CHANNEL)
ALERT_TOPIC_THING_SEGMENT = 2


def thing_from_topic(topic: str) -> str:
    """The thing name in an alert or telemetry topic; ValueError if it is not one."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_ROOT or parts[2] not in (ALERT_CHANNEL, TELEMETRY_CHANNEL):
        raise ValueError(f"not a Vigil topic: {topic!r}")
    return _check_thing(parts[1])
