"""At most N notifications per camera in any window of W seconds, and the count of what
was held back sent when the window closes.

A sliding window: each camera's item keeps the times of its last N notifications, and
an alert is admitted only while fewer than N of them are younger than W. (Fixed windows
aligned to the epoch let 2N through across a boundary; a token bucket of N refilled
over W lets 2N through in any W after a quiet spell.) The list is replaced with a
conditional write on a revision number, so two concurrent invocations never both take
the last slot; the loser reads again.

A held alert adds one to the camera's ``held`` count and, in the same transaction, puts
the camera in the pending set of the registry item. The count is reported by the next
admitted alert of that camera, or else by :meth:`CameraThrottle.flush_due`, which the
schedule runs every minute: once the camera's window has a free slot again (``due``),
one summary goes out. A summary does not take a slot: it says alerts were held, it is
not one of them, and there is at most one per held spell.

Items (in the idempotency table, partition key ``id``, TTL ``expiration``):
``throttle#<thing>#<camera>``: ``sent`` (list of epoch ms), ``rev``, ``held``,
``since`` and ``due`` (epoch s); ``throttle#pending``: ``cameras``, a string set of
``<thing>#<camera>`` (``#`` is in neither name's alphabet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil_alerts.notify import Suppressed

HELD_TTL_S = 7 * 24 * 3600
REGISTRY_ID = "throttle#pending"
MAX_ATTEMPTS = 8


class ThrottleContention(RuntimeError):
    """The camera's item changed under every attempt; the invocation fails and is retried."""


@dataclass(frozen=True)
class Admission:
    """The throttle's answer for one start alert (``sent_ms``: the slot it took)."""

    allowed: bool
    counter_id: str
    held: Suppressed
    sent_ms: int = 0


def _n(item: dict, name: str, default: int = 0) -> int:
    value = item.get(name, {}).get("N")
    return int(value) if value is not None else default


class CameraThrottle:
    """At most ``max_per_window`` notifications per (thing, camera) in any ``window_s`` seconds.

    ``dynamodb_client`` is a boto3 DynamoDB client; ``table_name`` the idempotency table.
    """

    def __init__(self, table_name: str, *, dynamodb_client: Any, max_per_window: int, window_s: int):
        if max_per_window < 1 or window_s < 1:
            raise ValueError("max_per_window and window_s must be at least 1")
        self.table_name = table_name
        self.client = dynamodb_client
        self.max_per_window = max_per_window
        self.window_s = window_s

    @staticmethod
    def _id(thing: str, camera: str) -> str:
        return f"throttle#{thing}#{camera}"

    def _get(self, item_id: str) -> dict:
        return self.client.get_item(TableName=self.table_name, Key={"id": {"S": item_id}}, ConsistentRead=True).get(
            "Item", {}
        )

    def _suppressed(self, item: dict) -> Suppressed:
        count = _n(item, "held")
        since = datetime.fromtimestamp(_n(item, "since"), UTC) if count and "since" in item else None
        return Suppressed(count, since, self.max_per_window, self.window_s)

    def admit(self, thing: str, camera: str, now: datetime | None = None) -> Admission:
        """Take a slot for one start alert of this camera, or hold it (``allowed`` False).

        When allowed, ``held`` is what was held back before it (to report); call
        :meth:`settle` after publishing, or :meth:`release` if publishing failed.
        Raises :class:`ThrottleContention` if the item kept changing.
        """
        now = now or datetime.now(UTC)
        now_ms = int(now.timestamp() * 1000)
        item_id = self._id(thing, camera)
        for _ in range(MAX_ATTEMPTS):
            item = self._get(item_id)
            live = sorted(
                t for t in (int(v["N"]) for v in item.get("sent", {}).get("L", [])) if t > now_ms - self.window_s * 1000
            )
            if len(live) >= self.max_per_window:
                self._hold(thing, camera, now, due_s=math.ceil((live[0] + self.window_s * 1000) / 1000))
                return Admission(False, item_id, Suppressed(0))
            rev = _n(item, "rev")
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": item_id}},
                    UpdateExpression="SET sent = :sent, rev = :next, expiration = :exp",
                    ConditionExpression="attribute_not_exists(rev) OR rev = :rev",
                    ExpressionAttributeValues={
                        ":sent": {"L": [{"N": str(t)} for t in [*live, now_ms]]},
                        ":rev": {"N": str(rev)},
                        ":next": {"N": str(rev + 1)},
                        ":exp": {"N": str(int(now.timestamp()) + self.window_s + HELD_TTL_S)},
                    },
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                continue  # another invocation took a slot meanwhile: count again
            return Admission(True, item_id, self._suppressed(item), now_ms)
        raise ThrottleContention(f"{item_id}: changed under {MAX_ATTEMPTS} attempts")

    def _hold(self, thing: str, camera: str, now: datetime, *, due_s: int) -> None:
        epoch = int(now.timestamp())
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"id": {"S": self._id(thing, camera)}},
                        "UpdateExpression": "ADD held :one SET since = if_not_exists(since, :now), "
                        "due = if_not_exists(due, :due), expiration = :exp",
                        "ExpressionAttributeValues": {
                            ":one": {"N": "1"},
                            ":now": {"N": str(epoch)},
                            ":due": {"N": str(due_s)},
                            ":exp": {"N": str(epoch + HELD_TTL_S)},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"id": {"S": REGISTRY_ID}},
                        "UpdateExpression": "ADD cameras :camera",
                        "ExpressionAttributeValues": {":camera": {"SS": [f"{thing}#{camera}"]}},
                    }
                },
            ]
        )

    def _report(self, thing: str, camera: str, count: int) -> None:
        """Subtract ``count`` reported alerts (others may have been held meanwhile, so
        subtract rather than reset); clear ``since`` and ``due`` when none are left."""
        item_id = self._id(thing, camera)
        left = self.client.update_item(
            TableName=self.table_name,
            Key={"id": {"S": item_id}},
            UpdateExpression="ADD held :minus",
            ExpressionAttributeValues={":minus": {"N": str(-count)}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        if _n(left, "held") <= 0:
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": item_id}},
                    UpdateExpression="REMOVE since, due",
                    ConditionExpression="held <= :zero",
                    ExpressionAttributeValues={":zero": {"N": "0"}},
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                pass  # another alert was held meanwhile; its since and due stay

    def settle(self, thing: str, camera: str, admission: Admission) -> None:
        """After a notification went out: the held alerts it reported are reported."""
        if admission.held.count:
            self._report(thing, camera, admission.held.count)

    def release(self, admission: Admission) -> None:
        """Give back the slot of an admitted alert whose publish failed, so Lambda's
        retry of the same event is not throttled by its own first attempt."""
        for _ in range(MAX_ATTEMPTS):
            item = self._get(admission.counter_id)
            sent = [int(v["N"]) for v in item.get("sent", {}).get("L", [])]
            if admission.sent_ms not in sent:
                return
            sent.remove(admission.sent_ms)
            rev = _n(item, "rev")
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": admission.counter_id}},
                    UpdateExpression="SET sent = :sent, rev = :next",
                    ConditionExpression="rev = :rev",
                    ExpressionAttributeValues={
                        ":sent": {"L": [{"N": str(t)} for t in sent]},
                        ":rev": {"N": str(rev)},
                        ":next": {"N": str(rev + 1)},
                    },
                )
                return
            except self.client.exceptions.ConditionalCheckFailedException:
                continue
        raise ThrottleContention(f"{admission.counter_id}: changed under {MAX_ATTEMPTS} attempts")

    def flush_due(
        self, send: Callable[[str, str, Suppressed], Any], now: datetime | None = None
    ) -> list[tuple[str, str, int]]:
        """Send one summary per camera whose held alerts are due (its window has a free
        slot again and no admitted alert reported them): ``send(thing, camera,
        suppressed)``. Returns ``(thing, camera, count)`` per summary sent.

        A camera leaves the pending set before its count is read, so an alert held
        meanwhile puts it back; if ``send`` raises, it goes back too and the error
        propagates (the schedule's next run tries again).
        """
        now = now or datetime.now(UTC)
        epoch = int(now.timestamp())
        pending = self._get(REGISTRY_ID).get("cameras", {}).get("SS", [])
        sent = []
        for member in sorted(pending):
            thing, camera = member.split("#", 1)
            item = self._get(self._id(thing, camera))
            if _n(item, "held") > 0 and _n(item, "due", epoch) > epoch:
                continue  # its window is still full: the summary waits
            self._pending("DELETE", member)
            item = self._get(self._id(thing, camera))
            held = self._suppressed(item)
            if held.count <= 0:
                continue
            try:
                send(thing, camera, held)
            except Exception:
                self._pending("ADD", member)
                raise
            self._report(thing, camera, held.count)
            sent.append((thing, camera, held.count))
        return sent

    def _pending(self, action: str, member: str) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key={"id": {"S": REGISTRY_ID}},
            UpdateExpression=f"{action} cameras :camera",
            ExpressionAttributeValues={":camera": {"SS": [member]}},
        )
