"""Optional guards around the notify step, both stored in one DynamoDB table
(partition key ``id`` S, TTL attribute ``expiration``, the ``IDEMPOTENCY_TABLE``).

- :class:`EventDeduplicator`: Powertools idempotency keyed on ``(thing_name, event_id)``.
  The edge delivers at least once (its outbox resends until acknowledged); a start
  message seen again returns the first result instead of notifying twice. The thing is
  part of the key because each device makes its own event ids: keyed on ``event_id``
  alone, a device could silence another by reusing that one's ids (the Lambda has
  already checked that ``thing_name`` is the thing in the topic the message came on). A copy arriving while the
  first is still being handled raises ``IdempotencyAlreadyInProgressError``: that
  invocation fails and Lambda's retry finds the finished record.
- :class:`CameraThrottle` (:mod:`vigil_alerts.throttle`): at most N notifications per
  camera in any window of W seconds; the number held back goes out with the next
  notification of that camera, or when the window closes (the flush schedule).

Items: Powertools writes ``<prefix>#<md5>``; the throttle writes ``throttle#...``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigil_alerts.throttle import Admission, CameraThrottle  # noqa: F401 (re-exported)

# Long enough to cover a device that was offline for days and replays its outbox.
IDEMPOTENCY_TTL_S = 7 * 24 * 3600
IDEMPOTENCY_KEY_PREFIX = "vigil-alert-notify"
# JMESPath over the validated alert: the idempotency key is the hash of this list.
IDEMPOTENCY_KEY_JMESPATH = "[thing_name, event_id]"


class EventDeduplicator:
    """Runs a function at most once per ``(alert["thing_name"], alert["event_id"])`` within the TTL.

    ``dynamodb_client`` is a boto3 DynamoDB client (created by the caller, so tests
    and the demo choose where it points).
    """

    def __init__(self, table_name: str, *, dynamodb_client: Any, expires_after_s: int = IDEMPOTENCY_TTL_S):
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self.config = IdempotencyConfig(
            event_key_jmespath=IDEMPOTENCY_KEY_JMESPATH,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_s,
            response_hook=self._mark_duplicate,
        )
        self.store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb_client)

    @staticmethod
    def _mark_duplicate(response: Any, _record: Any) -> Any:
        # Called only when the result comes from the store, i.e. for a repeat.
        return {**response, "duplicate": True} if isinstance(response, dict) else response

    def register_lambda_context(self, context: Any) -> None:
        """Let Powertools expire an in-progress record when this invocation times out."""
        self.config.register_lambda_context(context)

    def first_result(self, *, alert: dict[str, Any]) -> dict[str, Any] | None:
        """The stored result of the completed first run for this thing's event_id, or None
        (never run, still in progress, or expired). Reads only; runs nothing."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError

        # The same prefix and key run() uses; configuring again is a no-op but for the prefix.
        self.store.configure(self.config, key_prefix=IDEMPOTENCY_KEY_PREFIX)
        try:
            record = self.store.get_record({"thing_name": alert["thing_name"], "event_id": alert["event_id"]})
        except IdempotencyItemNotFoundError:
            return None
        if record is None or record.status != "COMPLETED":
            return None
        return record.response_json_as_dict()

    def run(self, function: Callable[..., dict[str, Any]], *, alert: dict[str, Any]) -> dict[str, Any]:
        """``function(alert=alert)`` the first time this thing's event_id is seen; the stored
        result with ``"duplicate": True`` after that. Exceptions propagate and leave no
        record, so a retry runs ``function`` again."""
        from aws_lambda_powertools.utilities.idempotency import idempotent_function

        guarded = idempotent_function(
            function,
            data_keyword_argument="alert",
            persistence_store=self.store,
            config=self.config,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )
        return guarded(alert=alert)
