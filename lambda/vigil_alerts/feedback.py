"""The alert Lambda's half of feedback: signing each notification's two links, and
storing an end message's features on its event (:mod:`vigil_feedback`).

The links (:func:`vigil_feedback.links.make_link`) carry the event, the verdict
(``false``: false alarm, ``true``: correct) and their expiry, signed with the stage's
HMAC key (a Secrets Manager secret, read once per cold start by
:func:`vigil_feedback.secret.hmac_key`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from vigil_feedback.links import make_link


@dataclass(frozen=True)
class FeedbackLinks:
    """The two links of one notification and when they stop working."""

    false_alarm: str
    correct: str
    expires: datetime


@dataclass(frozen=True)
class FeedbackSigner:
    """Signs links to ``url`` with the key ``key()`` returns (called per notification;
    the secret module caches it), each valid for ``link_s`` seconds."""

    url: str
    key: Callable[[], bytes]
    link_s: int = 7 * 24 * 3600

    def links(self, thing: str, event_id: str, now: datetime) -> FeedbackLinks:
        expires = int(now.timestamp()) + self.link_s
        key = self.key()
        return FeedbackLinks(
            false_alarm=make_link(self.url, key, thing, event_id, "false", expires),
            correct=make_link(self.url, key, thing, event_id, "true", expires),
            expires=datetime.fromtimestamp(expires, now.tzinfo),
        )
