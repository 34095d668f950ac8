"""The events table and the training rows made from a verdict.

Table (``EVENTS_TABLE``): partition key ``thing`` (S), sort key ``event_id`` (S), TTL
attribute ``expiration`` (epoch s). One item per event, written by two functions:

- the alert Lambda, for an ``end`` message: ``camera``, ``zone``, ``started_at``,
  ``ended_at``, ``label`` and ``features`` (the message's ``features`` object as JSON
  text: 32 x 8 numbers stay near 2.5 KB, far below DynamoDB's 400 KB item limit);
- the feedback Lambda: ``verdict`` ("false" or "true"), ``verdict_at`` and, once rows are
  written, ``rows_key``. The verdict is a conditional write (``attribute_not_exists``):
  the first verdict for an event wins, whichever link it came from.

Either may write first (a user may answer while the event is still open: then the end
writes the rows, see :func:`record_end`); each sets
``expiration`` only if absent, the link lifetime plus :data:`TTL_MARGIN_S`, so a verdict
given on a link's last day still finds the event. The training rows in S3 outlive it.

Rows: a verdict plus stored features become a CSV in :mod:`training.dataset`'s format
(``clip, time_s, zone``, the feature columns, ``label``), one row per window, under
``train/feedback/<stage>/v<feature_version>/<thing>/<event_id>.csv`` in the training data
bucket (the ``train`` channel's prefix; training reads the folder of its own feature
version only). "false alarm" labels every window 0 (normal), "correct" 1 (abnormal): the
CSV's label is binary; an object event's detection labels are not a column of it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("vigil.feedback")

TTL_MARGIN_S = 24 * 3600
TRAIN_PREFIX = "train/"
FEEDBACK_PREFIX = f"{TRAIN_PREFIX}feedback/"
# The feature columns per FEATURE_VERSION (edge_component/analysis/features.py), copied
# because the edge package is not in this bundle; tests pin the current one to the
# edge's FEATURE_NAMES, so a version bump fails them until it is added here.
FEATURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "3": (
        "fg_ratio_mean",
        "fg_ratio_max",
        "blob_ratio_max",
        "blob_count_mean",
        "motion_ratio_mean",
        "motion_ratio_max",
        "global_change_max",
        "brightness_delta_max",
    ),
}
META_COLUMNS = ("clip", "time_s", "zone")
LABEL_COLUMN = "label"
LABELS = {"false": 0, "true": 1}  # verdict -> training label
# training.dataset.FLOAT32_OVERFLOW (copied: training is not in this bundle; a test pins
# them equal). The model computes in float32: training refuses a file holding a value at
# or beyond it, so such a window is left out of the rows rather than poisoning them.
FLOAT32_OVERFLOW = (2.0 - 2.0**-24) * 2.0**127


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_end(
    dynamodb: Any,
    table: str,
    alert: Mapping[str, Any],
    *,
    ttl_s: int,
    now: datetime,
    s3: Any = None,
    bucket: str | None = None,
    stage: str = "",
) -> str | None:
    """Store a validated ``end`` alert's details and ``features`` (if any) on its event
    item. Idempotent (a redelivered end writes the same values).

    With ``s3`` and ``bucket`` (the training data bucket), an event whose verdict was
    given while it was still open gets its training rows now (:func:`write_rows`, the
    feedback Lambda's writer: the same key, so a later click or a race with one writes
    the same object). Returns the rows' key when this call wrote them, else None (no
    verdict yet, rows already written, or the item gives none: logged). DynamoDB and S3
    errors propagate."""
    values: dict[str, Any] = {
        ":camera": {"S": alert["camera"]},
        ":zone": {"S": alert["zone"]},
        ":started": {"S": alert["started_at"]},
        ":ended": {"S": alert.get("ended_at") or alert["sent_at"]},
        ":exp": {"N": str(int(now.timestamp()) + ttl_s + TTL_MARGIN_S)},
    }
    sets = ["camera = :camera", "#zone = :zone", "started_at = :started", "ended_at = :ended"]
    sets.append("expiration = if_not_exists(expiration, :exp)")
    if alert.get("features"):
        values[":features"] = {"S": json.dumps(alert["features"], separators=(",", ":"))}
        sets.append("features = :features")
    if alert.get("label"):
        values[":label"] = {"S": alert["label"]}
        sets.append("object_label = :label")
    response = dynamodb.update_item(
        TableName=table,
        Key={"thing": {"S": alert["thing_name"]}, "event_id": {"S": alert["event_id"]}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames={"#zone": "zone"},  # ZONE is a DynamoDB reserved word
        ExpressionAttributeValues=values,
        ReturnValues="ALL_NEW",
    )
    item = response.get("Attributes") or {}
    verdict = item.get("verdict", {}).get("S")
    if s3 is None or not bucket or verdict not in LABELS or item.get("rows_key"):
        return None
    try:
        return write_rows(dynamodb, s3, table, bucket, stage, item, verdict).key
    except NoRows as why:
        logger.info("no training rows for %s/%s: %s", alert["thing_name"], alert["event_id"], why)
        return None


@dataclass(frozen=True)
class Recorded:
    """The outcome of :func:`record_verdict`: ``first`` (this call stored the verdict),
    ``verdict`` (the one stored, maybe an earlier one) and the event ``item`` as
    DynamoDB returned it (attribute -> typed value)."""

    first: bool
    verdict: str
    item: dict[str, Any]


def record_verdict(
    dynamodb: Any, table: str, thing: str, event_id: str, verdict: str, *, ttl_s: int, now: datetime
) -> Recorded:
    """Store ``verdict`` on the event unless it already has one (the first verdict wins).

    A conditional UpdateItem (``attribute_not_exists(verdict)``), so two clicks at once
    cannot both win; on its ConditionalCheckFailedException the stored item is read
    back (consistent read). Other DynamoDB errors propagate.
    """
    key = {"thing": {"S": thing}, "event_id": {"S": event_id}}
    try:
        response = dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET verdict = :v, verdict_at = :t, expiration = if_not_exists(expiration, :exp)",
            ConditionExpression="attribute_not_exists(verdict)",
            ExpressionAttributeValues={
                ":v": {"S": verdict},
                ":t": {"S": _iso(now)},
                ":exp": {"N": str(int(now.timestamp()) + ttl_s + TTL_MARGIN_S)},
            },
            ReturnValues="ALL_NEW",
        )
        return Recorded(first=True, verdict=verdict, item=response["Attributes"])
    except dynamodb.exceptions.ConditionalCheckFailedException:
        item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        return Recorded(first=False, verdict=item["verdict"]["S"], item=item)


def mark_rows(dynamodb: Any, table: str, thing: str, event_id: str, rows_key: str) -> None:
    """Note on the event that its rows are at ``rows_key``."""
    dynamodb.update_item(
        TableName=table,
        Key={"thing": {"S": thing}, "event_id": {"S": event_id}},
        UpdateExpression="SET rows_key = :k",
        ExpressionAttributeValues={":k": {"S": rows_key}},
    )


@dataclass(frozen=True)
class Rows:
    """Training rows written by :func:`write_rows`: their S3 ``key``, ``count`` rows
    and ``skipped`` windows (values beyond float32's range)."""

    key: str
    count: int
    skipped: int


def write_rows(
    dynamodb: Any, s3: Any, table: str, bucket: str, stage: str, item: Mapping[str, Any], verdict: str
) -> Rows:
    """Write the event ``item``'s rows labelled ``verdict`` to ``bucket`` (at
    :func:`rows_key`) and note the key on the item. Raises :class:`NoRows` (nothing
    written) as :func:`training_csv` does; S3 and DynamoDB errors propagate."""
    thing, event_id = item["thing"]["S"], item["event_id"]["S"]
    version, text, count, skipped = training_csv(item, verdict)
    key = rows_key(stage, version, thing, event_id)
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType="text/csv")
    mark_rows(dynamodb, table, thing, event_id, key)
    return Rows(key=key, count=count, skipped=skipped)


class NoRows(ValueError):
    """The event's stored item cannot give training rows; the message says why (for the
    page), ``later`` whether they may still come (the end message has not arrived)."""

    def __init__(self, message: str, *, later: bool = False):
        super().__init__(message)
        self.later = later


def rows_key(stage: str, feature_version: str, thing: str, event_id: str) -> str:
    """Where an event's rows go in the training data bucket."""
    return f"{FEEDBACK_PREFIX}{stage or 'default'}/v{feature_version}/{thing}/{event_id}.csv"


def _cells(window: list[Any]) -> list[str] | None:
    """The window's values as CSV cells (``%.6g``), or None if one is not a finite
    number training can read back within float32's range (checked on the written text,
    which is what training reads)."""
    cells = []
    for v in window:
        try:
            cell = f"{float(v):.6g}"
        except (OverflowError, TypeError, ValueError):  # an int beyond float64, a non-number
            return None
        if not math.isfinite(float(cell)) or abs(float(cell)) >= FLOAT32_OVERFLOW:
            return None
        cells.append(cell)
    return cells


def training_csv(item: Mapping[str, Any], verdict: str) -> tuple[str, str, int, int]:
    """``(feature_version, CSV text, row count, windows skipped)`` for the event
    ``item`` (typed DynamoDB attributes) labelled by ``verdict``. A window holding a value
    beyond float32's range (:data:`FLOAT32_OVERFLOW`) or not finite is skipped (counted):
    training would refuse the file. Raises :class:`NoRows` when the item has no features
    (the end message has not arrived, or came from an older device), a feature version
    this function has no columns for, windows of the wrong length, or every window skipped.

    ``time_s`` is the window's approximate offset from the event's start (the sampled
    windows are evenly spaced between ``started_at`` and ``ended_at``); ``clip`` is
    ``feedback/<thing>/<camera>``, so an event's windows group with its camera's.
    """
    raw = item.get("features", {}).get("S")
    if not raw and "ended_at" in item:
        raise NoRows("the device sent no feature vectors with the event's end (an edge older than schema 1.2)")
    if not raw:
        raise NoRows("the event's feature vectors have not arrived (the event may still be open)", later=True)
    features = json.loads(raw)
    version = str(features.get("feature_version"))
    columns = FEATURE_COLUMNS.get(version)
    if columns is None:
        raise NoRows(f"the device sent feature version {version}, which this service has no columns for")
    windows = features.get("windows") or []
    bad = [i for i, w in enumerate(windows) if len(w) != len(columns)]
    if not windows or bad:
        raise NoRows(f"the feature vectors do not have the {len(columns)} values of version {version}")
    span = _span_s(item)
    step = span / (len(windows) - 1) if len(windows) > 1 else 0.0
    clip = f"feedback/{item['thing']['S']}/{item.get('camera', {}).get('S', 'camera')}"
    zone = item.get("zone", {}).get("S", "")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*META_COLUMNS, *columns, LABEL_COLUMN))
    count = 0
    for i, window in enumerate(windows):
        cells = _cells(window)
        if cells is None:
            continue
        writer.writerow([clip, f"{i * step:.3f}", zone, *cells, LABELS[verdict]])
        count += 1
    if not count:
        raise NoRows(f"every one of the {len(windows)} feature vector(s) holds a value beyond float32's range")
    return version, out.getvalue(), count, len(windows) - count


def _span_s(item: Mapping[str, Any]) -> float:
    try:
        started = datetime.fromisoformat(item["started_at"]["S"].replace("Z", "+00:00"))
        ended = datetime.fromisoformat(item["ended_at"]["S"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return max(0.0, (ended - started).total_seconds())
