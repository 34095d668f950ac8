"""The feedback Lambda, behind a function URL (auth type NONE: the link's HMAC is the
authorization, see :mod:`vigil_feedback.links`): ``vigil_feedback.handler.handler``.

Two steps, so a link scanner cannot give the verdict. ``GET`` (the link as clicked)
checks the link and answers a page with one button; the button ``POST`` s the same
query string back, and that records the verdict. Mail security gateways and chat
previews fetch the links in a message to inspect them: with one-step links, such a
fetch of the first link would record "false alarm" before anyone read the mail.

Answers (each a small HTML page, no external assets, every value escaped):

- 200: confirm page (GET); verdict recorded (POST, the first verdict of the event);
  "already recorded" (the same verdict again: a replay changes nothing);
- 400: a malformed link (the page names the parameter); 403: a bad signature;
  410: an expired link; 405: another method;
- 409: the event already has the *other* verdict. The first verdict wins and is not
  changed by link: a second opinion would relabel rows a training run may already
  have read, and two people disagreeing needs a person, not a last-click-wins;
- 500: the function is misconfigured (logged as "config error"): the key's secret is
  missing, unreadable or unusable. Trying again will not help, so the page does not say to;
- 503: AWS failed transiently (logged); the user may try again (the write is idempotent).

A link's shape is checked before the key is fetched, so a malformed link is a 400 even
when the secret cannot be read. A bad variable (say ``FEEDBACK_LINK_S=7d``) fails the
cold start (:class:`ConfigError`, logged as "config error"), not every request.

With the first verdict (or a replay once the end's features have arrived), the stored
features become labelled rows in the training data bucket (:mod:`vigil_feedback.store`);
the page says how many, or why none. A verdict given while the event is still open gets
its rows when the end arrives (the alert Lambda's ``record_end``, the same writer).

Environment: ``EVENTS_TABLE``, ``FEEDBACK_SECRET_ARN``, ``TRAINING_BUCKET``, ``STAGE``,
``SITE_NAME`` (default "Vigil"), ``FEEDBACK_LINK_S`` (link lifetime, for the item's TTL;
default 604800).
"""

from __future__ import annotations

import html
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil_feedback.links import VERDICTS, Link, LinkError, parse_shape, verify
from vigil_feedback.secret import SecretError, hmac_key
from vigil_feedback.store import NoRows, record_verdict, write_rows

logger = logging.getLogger("vigil.feedback")
logger.setLevel(logging.INFO)

DEFAULT_LINK_S = 7 * 24 * 3600
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    # The page loads nothing; its one form posts back here. No referrer: the URL is a credential.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


# GetSecretValue errors no retry mends: a wrong ARN, no permission, a deleted or
# undecryptable secret (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html#API_GetSecretValue_Errors).
# InternalServiceError, throttling and network errors stay 503 ("try again").
PERMANENT_SECRET_ERRORS = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "AccessDeniedFault",
        "DecryptionFailure",
        "InvalidRequestException",
        "InvalidParameterException",
    }
)


class ConfigError(RuntimeError):
    """The function's environment or key secret is unusable; the message names what (never the key)."""


@dataclass(frozen=True)
class Settings:
    """The feedback Lambda's environment (see the module docstring)."""

    events_table: str
    secret_arn: str
    training_bucket: str
    stage: str = ""
    site_name: str = "Vigil"
    link_s: int = DEFAULT_LINK_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [n for n in ("EVENTS_TABLE", "FEEDBACK_SECRET_ARN", "TRAINING_BUCKET") if not env.get(n, "").strip()]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not set")
        raw_link_s = env.get("FEEDBACK_LINK_S", "").strip()
        if raw_link_s and (not raw_link_s.isdigit() or int(raw_link_s) < 1):
            raise ConfigError(f"FEEDBACK_LINK_S must be a whole number of seconds, at least 1; got {raw_link_s!r}")
        return cls(
            events_table=env["EVENTS_TABLE"].strip(),
            secret_arn=env["FEEDBACK_SECRET_ARN"].strip(),
            training_bucket=env["TRAINING_BUCKET"].strip(),
            stage=env.get("STAGE", "").strip(),
            site_name=env.get("SITE_NAME", "").strip() or "Vigil",
            link_s=int(raw_link_s or DEFAULT_LINK_S),
        )


class Clients:
    """boto3 clients, each made on first use (so moto or a test's clients are in place)."""

    def __init__(self, *, dynamodb: Any = None, s3: Any = None, secrets: Any = None):
        self._made = {"dynamodb": dynamodb, "s3": s3, "secretsmanager": secrets}

    def get(self, service: str) -> Any:
        if self._made[service] is None:
            import boto3

            self._made[service] = boto3.client(service)
        return self._made[service]


_clients = Clients()


def use_clients(**clients: Any) -> None:
    """Replace the handler's clients (``dynamodb``, ``s3``, ``secrets``; None: default)."""
    global _clients
    _clients = Clients(**clients)


def page(status: int, title: str, *paragraphs: str, form: str = "") -> dict[str, Any]:
    """A function URL response: a small HTML page. ``title`` and ``paragraphs`` are
    plain text (escaped here); ``form`` is markup built by the caller from escaped parts."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em}"
        "button{font-size:1.1em;padding:.5em 1.2em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}{form}</body></html>"
    )
    return {"statusCode": status, "headers": dict(HEADERS), "body": document}


def _method(event: Mapping[str, Any]) -> str:
    return str(((event.get("requestContext") or {}).get("http") or {}).get("method", "GET")).upper()


def _query(event: Mapping[str, Any]) -> str:
    raw = event.get("rawQueryString")
    return raw if isinstance(raw, str) else ""


def _what(link: Link) -> str:
    return f"event {link.event_id} of {link.thing}"


def handle(event: Mapping[str, Any], *, settings: Settings, clients: Clients, now: float | None = None) -> dict:
    """One function URL request (payload format 2.0) -> response dict (see the module docstring)."""
    method = _method(event)
    if method not in ("GET", "HEAD", "POST"):
        return page(405, "Method not allowed", f"{method} is not used here: open the link from the notification.")
    now = time.time() if now is None else now
    try:
        shape = parse_shape(_query(event))  # before the key: a malformed link is 400 whatever the secret
        link = verify(shape, _key(settings, clients), now)
    except LinkError as err:
        logger.info("feedback link refused: %d %s", err.status, err)
        titles = {400: "This link is not valid", 403: "This link is not genuine", 410: "This link has expired"}
        return page(err.status, titles[err.status], str(err))
    what = VERDICTS[link.verdict]
    if method != "POST":
        # The query is already URL-encoded; escaped again for the attribute.
        form = (
            f'<form method="post" action="?{html.escape(_query(event), quote=True)}">'
            f"<button type=\"submit\">Record '{html.escape(what)}'</button></form>"
        )
        return page(
            200,
            f"{settings.site_name}: mark this alert as '{what}'?",
            f"This records your verdict on {_what(link)}. The first verdict given for an event is the one kept.",
            form=form,
        )
    moment = datetime.fromtimestamp(now, UTC)
    recorded = record_verdict(
        clients.get("dynamodb"),
        settings.events_table,
        link.thing,
        link.event_id,
        link.verdict,
        ttl_s=settings.link_s,
        now=moment,
    )
    log = (link.thing, link.event_id, link.verdict, recorded.first)
    if recorded.verdict != link.verdict:
        logger.info("feedback refused, other verdict stored: %s/%s %s (first %s)", *log)
        return page(
            409,
            "A different verdict is already recorded",
            f"Event {link.event_id} of {link.thing} was already marked '{VERDICTS[recorded.verdict]}'. "
            "The first verdict is kept and not changed by link; ask the administrator to correct it.",
        )
    rows_note = _write_rows(link, recorded.item, settings, clients)
    logger.info("feedback %s: %s/%s %s (first %s)", "recorded" if recorded.first else "replayed", *log)
    title = f"Recorded: '{what}'" if recorded.first else f"Already recorded: '{what}'"
    return page(200, title, f"Thank you. Your verdict on {_what(link)} is recorded.", rows_note)


def _key(settings: Settings, clients: Clients) -> bytes:
    """The HMAC key; ConfigError for a secret no retry mends (missing, denied, deleted,
    undecryptable, unusable). Other errors (transient) propagate."""
    from botocore.exceptions import ClientError

    try:
        return hmac_key(clients.get("secretsmanager"), settings.secret_arn)
    except SecretError as err:
        raise ConfigError(str(err)) from None
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in PERMANENT_SECRET_ERRORS:
            raise ConfigError(f"the key secret {settings.secret_arn} cannot be read: {code}") from None
        raise


def _write_rows(link: Link, item: Mapping[str, Any], settings: Settings, clients: Clients) -> str:
    """Write the event's training rows unless already written; the page's sentence about them."""
    if item.get("rows_key"):
        return "Its feature vectors are already in the training data."
    try:
        rows = write_rows(
            clients.get("dynamodb"),
            clients.get("s3"),
            settings.events_table,
            settings.training_bucket,
            settings.stage,
            item,
            link.verdict,
        )
    except NoRows as why:
        later = " They are added when the event ends." if why.later else ""
        return f"No training rows were written: {why}.{later}"
    count, skipped = rows.count, rows.skipped
    label = "normal (0)" if link.is_false_alarm else "abnormal (1)"
    left_out = f" {skipped} were left out: they hold values beyond float32's range." if skipped else ""
    return f"{count} feature vector(s) of the event were added to the training data, labelled {label}.{left_out}"


def _cold_start() -> None:
    """In Lambda, read the settings once at import: a bad variable then fails the cold
    start (an init error, logged) instead of answering each request."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        try:
            Settings.from_env()
        except ConfigError as err:
            logger.error("config error: %s", err)
            raise


_cold_start()


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (function URL, payload format 2.0; the POST's form body carries
    nothing: the query string is the link)."""
    try:
        return handle(event, settings=Settings.from_env(), clients=_clients)
    except ConfigError as err:
        logger.error("config error: %s", err)
        return page(
            500,
            "This service is not set up correctly",
            "The administrator must fix its configuration; "
            "trying again will not help until then. Your verdict was not recorded.",
        )
    except Exception:
        # Never the key or the signature: only the exception's type and trace.
        logger.exception("feedback failed")
        return page(503, "Something went wrong", "The verdict could not be recorded just now; please try again.")
