"""The Lambda's configuration: its environment, read into one frozen dataclass.

Variables (names fixed with the infrastructure):

=========================  ========  ==================================================
``ALERT_TOPIC_ARN``        required  SNS topic notifications go to
``SITE_NAME``              "Vigil"   shown in subject, body and SMS
``TIME_ZONE``              "UTC"     IANA zone that times are shown in
``STAGE``                  ""        shown in the subject, e.g. "dev"
``IDEMPOTENCY_TABLE``      unset     DynamoDB table (key ``id`` S, TTL ``expiration``);
                                     unset = no deduplication and no throttle
``THROTTLE_MAX_PER_WINDOW`` unset    notifications per camera in any window (at most
                                     1000); unset or 0 = no throttle (needs
                                     ``IDEMPOTENCY_TABLE``)
``THROTTLE_WINDOW_S``      600       window length in seconds
``EVIDENCE_BUCKET``        unset     bucket the device uploads snapshots to; shown as
                                     ``s3://`` location in the body
``CLOCK_SKEW_MAX_S``       300       an alert time later than IoT Core's receipt by
                                     more is a wrong device clock
``MAX_DELIVERY_DELAY_S``   604800    an alert time earlier than receipt by more (7 days)
                                     is too (the outbox delays delivery legitimately)
``STAGE_THING_PREFIX``     unset     the stage's things: names starting with it ...
``STAGE_THINGS``           unset     ... and these (comma-separated); an alert of any
                                     other thing is refused (another stage's camera).
                                     Both unset = every thing (the local demo)
``EVENTS_TABLE``           unset     DynamoDB table of events (keys ``thing``,
                                     ``event_id``): an end's features are stored there
``TRAINING_BUCKET``        unset     with ``EVENTS_TABLE``: an end whose verdict came
                                     first writes its training rows there
``FEEDBACK_URL``           unset     the feedback function's URL; with
``FEEDBACK_SECRET_ARN``    unset     the HMAC key's secret, each notification carries
                                     "false alarm" and "correct" links
``FEEDBACK_LINK_S``        604800    how long the links work (7 days)
=========================  ========  ==================================================

``POWERTOOLS_SERVICE_NAME`` and ``POWERTOOLS_METRICS_NAMESPACE`` are read by Powertools.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MAX_THROTTLE_LIMIT = 1000


class ConfigError(RuntimeError):
    """The environment is missing a required variable or has an unusable value."""


def _positive_int(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise ConfigError(f"{name}={value} must not be negative")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the handler needs from its environment; hashable, so it can key caches."""

    alert_topic_arn: str
    site_name: str = "Vigil"
    time_zone: str = "UTC"
    stage: str = ""
    idempotency_table: str | None = None
    throttle_max_per_window: int | None = None
    throttle_window_s: int = 600
    evidence_bucket: str | None = None
    clock_skew_max_s: int = 300
    max_delivery_delay_s: int = 7 * 24 * 3600
    thing_prefix: str | None = None
    things: frozenset[str] = frozenset()
    events_table: str | None = None
    training_bucket: str | None = None
    feedback_url: str | None = None
    feedback_secret_arn: str | None = None
    feedback_link_s: int = 7 * 24 * 3600

    def owns_thing(self, thing_name: str) -> bool:
        """Whether ``thing_name`` is one of this stage's things (always, when neither is set)."""
        if self.thing_prefix is None and not self.things:
            return True
        return thing_name in self.things or (self.thing_prefix is not None and thing_name.startswith(self.thing_prefix))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the variables above from ``environ`` (default ``os.environ``); ConfigError if unusable."""
        env = os.environ if environ is None else environ
        topic = env.get("ALERT_TOPIC_ARN", "").strip()
        if not topic:
            raise ConfigError("ALERT_TOPIC_ARN is not set")
        limit = _positive_int(env, "THROTTLE_MAX_PER_WINDOW", None) or None
        if limit and limit > MAX_THROTTLE_LIMIT:
            # The throttle keeps one timestamp per slot in one DynamoDB item (400 KB at most).
            raise ConfigError(f"THROTTLE_MAX_PER_WINDOW={limit} is more than {MAX_THROTTLE_LIMIT}")
        window = _positive_int(env, "THROTTLE_WINDOW_S", 600)
        if window == 0:
            raise ConfigError("THROTTLE_WINDOW_S must be at least 1")
        feedback_url = env.get("FEEDBACK_URL", "").strip() or None
        feedback_secret = env.get("FEEDBACK_SECRET_ARN", "").strip() or None
        if bool(feedback_url) != bool(feedback_secret):
            raise ConfigError("FEEDBACK_URL and FEEDBACK_SECRET_ARN go together: set both or neither")
        link_s = _positive_int(env, "FEEDBACK_LINK_S", cls.feedback_link_s)
        if not link_s:
            raise ConfigError("FEEDBACK_LINK_S must be at least 1")
        return cls(
            alert_topic_arn=topic,
            site_name=env.get("SITE_NAME", "").strip() or "Vigil",
            time_zone=env.get("TIME_ZONE", "").strip() or "UTC",
            stage=env.get("STAGE", "").strip(),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", "").strip() or None,
            throttle_max_per_window=limit,
            throttle_window_s=window,
            evidence_bucket=env.get("EVIDENCE_BUCKET", "").strip() or None,
            clock_skew_max_s=_positive_int(env, "CLOCK_SKEW_MAX_S", cls.clock_skew_max_s),
            max_delivery_delay_s=_positive_int(env, "MAX_DELIVERY_DELAY_S", cls.max_delivery_delay_s),
            thing_prefix=env.get("STAGE_THING_PREFIX", "").strip() or None,
            things=frozenset(t.strip() for t in env.get("STAGE_THINGS", "").split(",") if t.strip()),
            events_table=env.get("EVENTS_TABLE", "").strip() or None,
            training_bucket=env.get("TRAINING_BUCKET", "").strip() or None,
            feedback_url=feedback_url,
            feedback_secret_arn=feedback_secret,
            feedback_link_s=link_s,
        )
