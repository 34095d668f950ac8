"""The device's clock, checked against when IoT Core received the alert.

The topic rule adds ``timestamp() AS received_at_ms``: milliseconds since the Unix
epoch as observed by the AWS IoT rules engine (AWS IoT SQL reference, ``timestamp()``).
:func:`split_receipt` takes it out of the event before the alert is validated (the alert
schema allows no extra fields); :func:`check_clock` compares the device's times with it.

Which direction is wrong, and by how much:

- ahead of receipt by more than ``max_ahead`` (default 5 min, ``CLOCK_SKEW_MAX_S``):
  no correct clock stamps a message after it arrived; the bound covers clock error on
  both sides;
- behind receipt: normal up to ``max_age`` (default 7 days, ``MAX_DELIVERY_DELAY_S``),
  because the outbox holds alerts while the device is offline and sends them late. 7
  days is how long the Lambda deduplicates, so an older delivery could not be told
  from a repeat anyway; older than that is a clock that was never set (a device booted
  without a real-time clock starts in 1970 or at its image's build date);
- ``started_at`` after ``sent_at`` by more than a second: the device stamped both, so
  its clock stepped back between them.

A wrong clock is reported, not refused: the intrusion still happened, and the receipt
time is the best time there is for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil_alerts.validation import InvalidAlertError, parse_timestamp

RECEIVED_AT_KEY = "received_at_ms"
CLOCK_SKEW_MAX_S = 300
MAX_DELIVERY_DELAY_S = 7 * 24 * 3600
START_AFTER_SENT = timedelta(seconds=1)
# A receipt time the rules engine could have produced: years 2001..2286 in milliseconds.
_RECEIPT_RANGE_MS = (10**12, 10**13)
RULE_REFERENCE = "IoT Core's receipt time"
LAMBDA_REFERENCE = "the Lambda's clock"


def split_receipt(event: Any) -> tuple[Any, datetime | None]:
    """``(event without received_at_ms, receipt time as aware UTC datetime or None)``.

    ``event`` is returned as it is when it is not an object or has no receipt time (an
    event from before the rule added it). InvalidAlertError ``received_at`` if the value
    is not an integer count of milliseconds in the rules engine's range.
    """
    if not isinstance(event, Mapping) or RECEIVED_AT_KEY not in event:
        return event, None
    raw = event[RECEIVED_AT_KEY]
    low, high = _RECEIPT_RANGE_MS
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw < high:
        raise InvalidAlertError(
            "received_at", f"{RECEIVED_AT_KEY}: {str(raw)[:40]!r} is not the rule's timestamp() in milliseconds"
        )
    rest = {key: value for key, value in event.items() if key != RECEIVED_AT_KEY}
    return rest, datetime.fromtimestamp(raw / 1000, UTC)


def describe_gap(delta: timedelta) -> str:
    """A positive time span in words: "42 s", "12 min", "5 h 3 min", "3 days", "7974 years"."""
    seconds = int(abs(delta).total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 72:
        return f"{hours} h {minutes % 60} min"
    days = hours // 24
    return f"{days} days" if days < 730 else f"{days // 365} years"


@dataclass(frozen=True)
class ClockCheck:
    """The verdict on one alert's times.

    ``received_at``: the reference (aware UTC); ``reference``: what it is, in words;
    ``problems``: one sentence per wrong time, empty when the clock looks right.
    """

    received_at: datetime
    reference: str = RULE_REFERENCE
    problems: tuple[str, ...] = ()

    @property
    def wrong(self) -> bool:
        return bool(self.problems)


def check_clock(
    alert: Mapping[str, Any],
    received_at: datetime | None,
    *,
    now: datetime | None = None,
    max_ahead_s: int = CLOCK_SKEW_MAX_S,
    max_age_s: int = MAX_DELIVERY_DELAY_S,
) -> ClockCheck:
    """Check a validated alert's ``started_at``, ``sent_at`` (and ``ended_at``) against
    ``received_at``, or against ``now`` (the Lambda's clock) when that is None."""
    reference = RULE_REFERENCE if received_at else LAMBDA_REFERENCE
    base = received_at or now or datetime.now(UTC)
    ahead, age = timedelta(seconds=max_ahead_s), timedelta(seconds=max_age_s)
    times = {
        field: parse_timestamp(alert[field], field) for field in ("started_at", "sent_at", "ended_at") if field in alert
    }
    problems = []
    for field, moment in times.items():
        if moment - base > ahead:
            problems.append(f"{field} {alert[field]} is {describe_gap(moment - base)} after {reference}")
        elif base - moment > age:
            problems.append(
                f"{field} {alert[field]} is {describe_gap(base - moment)} before {reference}, longer than an alert "
                f"waits for delivery ({describe_gap(age)})"
            )
    if times["started_at"] - times["sent_at"] > START_AFTER_SENT:
        problems.append(f"started_at is {describe_gap(times['started_at'] - times['sent_at'])} after sent_at")
    return ClockCheck(received_at=base, reference=reference, problems=tuple(problems))
