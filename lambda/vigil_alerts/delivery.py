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
- :class:`CameraThrottle`: at most N notifications per camera per fixed window; the
  number held back is reported in the next notification that goes out.

Items: Powertools writes ``<prefix>#<md5>``; the throttle writes
``throttle#<thing>#<camera>#w<window index>`` (one counter per window) and
``throttle#<thing>#<camera>#held`` (alerts held back, and since when).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from vigil_alerts.notify import Suppressed

# Long enough to cover a device that was offline for days and replays its outbox.
IDEMPOTENCY_TTL_S = 7 * 24 * 3600
IDEMPOTENCY_KEY_PREFIX = "vigil-alert-notify"
# JMESPath over the validated alert: the idempotency key is the hash of this list.
IDEMPOTENCY_KEY_JMESPATH = "[thing_name, event_id]"
HELD_TTL_S = 7 * 24 * 3600


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


@dataclass(frozen=True)
class Admission:
    """The throttle's answer for one start alert."""

    allowed: bool
    counter_id: str
    held: Suppressed


class CameraThrottle:
    """At most ``max_per_window`` notifications per (thing, camera) per ``window_s`` seconds.

    Fixed windows aligned to the epoch, counted with atomic ``ADD`` updates, so
    concurrent invocations never both take the last slot.
    """

    def __init__(self, table_name: str, *, dynamodb_client: Any, max_per_window: int, window_s: int):
        if max_per_window < 1 or window_s < 1:
            raise ValueError("max_per_window and window_s must be at least 1")
        self.table_name = table_name
        self.client = dynamodb_client
        self.max_per_window = max_per_window
        self.window_s = window_s

    def _update(self, item_id: str, expression: str, values: dict[str, Any], names: dict[str, str] | None = None) -> dict:
        kwargs = {"ExpressionAttributeNames": names} if names else {}
        response = self.client.update_item(
            TableName=self.table_name,
            Key={"id": {"S": item_id}},
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            **kwargs,
        )
        return response.get("Attributes", {})

    def admit(self, thing: str, camera: str, now: datetime | None = None) -> Admission:
        """Count one start alert for this camera; ``allowed`` False once the window is full.

        When allowed, ``held`` says how many earlier alerts were held back (to report);
        call :meth:`settle` after publishing, or :meth:`release` if publishing failed.
        """
        now = now or datetime.now(timezone.utc)
        epoch = int(now.timestamp())
        window = epoch // self.window_s
        base = f"throttle#{thing}#{camera}"
        counter_id = f"{base}#w{window}"
        counted = self._update(
            counter_id,
            "ADD #n :one SET expiration = :exp",
            {":one": {"N": "1"}, ":exp": {"N": str((window + 2) * self.window_s)}},
            {"#n": "n"},
        )
        if int(counted["n"]["N"]) > self.max_per_window:
            self._update(
                f"{base}#held",
                "ADD held :one SET since = if_not_exists(since, :now), expiration = :exp",
                {":one": {"N": "1"}, ":now": {"N": str(epoch)}, ":exp": {"N": str(epoch + HELD_TTL_S)}},
            )
            return Admission(False, counter_id, Suppressed(0))
        item = self.client.get_item(TableName=self.table_name, Key={"id": {"S": f"{base}#held"}}, ConsistentRead=True)
        held = item.get("Item", {})
        count = int(held.get("held", {}).get("N", "0"))
        since = datetime.fromtimestamp(int(held["since"]["N"]), timezone.utc) if count and "since" in held else None
        return Admission(True, counter_id, Suppressed(count, since, self.max_per_window, self.window_s))

    def settle(self, thing: str, camera: str, admission: Admission) -> None:
        """After a notification went out: subtract the held alerts it reported (others
        may have been held meanwhile, so subtract rather than reset)."""
        if not admission.held.count:
            return
        left = self._update(
            f"throttle#{thing}#{camera}#held",
            "ADD held :minus",
            {":minus": {"N": str(-admission.held.count)}},
        )
        if int(left.get("held", {}).get("N", "0")) <= 0:
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": f"throttle#{thing}#{camera}#held"}},
                    UpdateExpression="REMOVE since",
                    ConditionExpression="held <= :zero",
                    ExpressionAttributeValues={":zero": {"N": "0"}},
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                pass  # another alert was held meanwhile; its since stays

    def release(self, admission: Admission) -> None:
        """Give back the slot of an admitted alert whose publish failed, so Lambda's
        retry of the same event is not throttled by its own first attempt."""
        self._update(admission.counter_id, "ADD #n :minus", {":minus": {"N": "-1"}}, {"#n": "n"})
