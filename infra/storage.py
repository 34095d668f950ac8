"""Buckets: one way to make a secure bucket, the access-log bucket and the evidence bucket;
and one way to make an expiring DynamoDB table."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from edge_component.contracts.alert_rules import SNAPSHOT_PREFIX as EVIDENCE_SNAPSHOT_PREFIX  # noqa: F401 (re-exported)
from infra.nag import acknowledge

# Days a non-current evidence version (an expired or overwritten snapshot) is kept: S3's minimum.
EVIDENCE_NONCURRENT_DAYS = 1


def expiring_table(
    scope: Construct, id_: str, *, partition_key: str, sort_key: str | None = None, removal_policy: cdk.RemovalPolicy
) -> dynamodb.TableV2:
    """An on-demand table of string keys whose items expire at their ``expiration``
    attribute (Unix s), with point-in-time recovery and an AWS managed key."""
    string = dynamodb.AttributeType.STRING
    return dynamodb.TableV2(
        scope,
        id_,
        partition_key=dynamodb.Attribute(name=partition_key, type=string),
        sort_key=dynamodb.Attribute(name=sort_key, type=string) if sort_key else None,
        time_to_live_attribute="expiration",
        billing=dynamodb.Billing.on_demand(),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
        removal_policy=removal_policy,
    )


def secure_bucket(
    scope: Construct,
    id_: str,
    *,
    access_logs: s3.IBucket | None,
    removal_policy: cdk.RemovalPolicy,
    lifecycle_rules: Sequence[s3.LifecycleRule] = (),
    noncurrent_days: int = 90,
    abort_multipart_days: int = 7,
) -> s3.Bucket:
    """A private bucket: SSE-S3, versioned, TLS only, public access blocked, ACLs off, and its
    access logged to ``access_logs`` under ``<id>/`` (None only for the access-log bucket
    itself). No physical name: CloudFormation picks one.

    Non-current versions are deleted ``noncurrent_days`` (>= 1) after they stop being
    current, incomplete multipart uploads ``abort_multipart_days`` after they start."""
    return s3.Bucket(
        scope,
        id_,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"{id_}/" if access_logs else None,
        lifecycle_rules=[
            s3.LifecycleRule(
                noncurrent_version_expiration=cdk.Duration.days(noncurrent_days),
                abort_incomplete_multipart_upload_after=cdk.Duration.days(abort_multipart_days),
            ),
            *lifecycle_rules,
        ],
        removal_policy=removal_policy,
    )


class Storage(Construct):
    """The stage's shared buckets.

    Attributes:
        access_logs: S3 server access logs of every other bucket (kept 365 days).
        evidence: alert snapshots, written by devices under ``snapshots/<thing>/``.
            Nothing in it outlives ``evidence_retention_days`` + 1 day: current versions
            expire after ``evidence_retention_days`` (S3 then makes them non-current
            behind a delete marker), non-current versions are deleted 1 day later, and
            the delete markers left with no version behind them are removed.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        evidence_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        self.access_logs = secure_bucket(
            self,
            "AccessLogs",
            access_logs=None,
            removal_policy=removal_policy,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
        )
        acknowledge(
            self.access_logs,
            {"AwsSolutions-S1": "This is the access-log destination; logging its own access would loop."},
        )
        self.evidence = secure_bucket(
            self,
            "Evidence",
            access_logs=self.access_logs,
            removal_policy=removal_policy,
            # On a versioned bucket, Expiration only hides the current version behind a
            # delete marker; the data stays as a non-current version until
            # NoncurrentVersionExpiration deletes it, and ExpiredObjectDeleteMarker cannot
            # share a rule with Days (S3 User Guide, "Expiring objects":
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html).
            # The expiration covers the whole bucket: snapshots/ is all devices may write,
            # and an object put anywhere else is personal data all the same.
            noncurrent_days=EVIDENCE_NONCURRENT_DAYS,
            abort_multipart_days=EVIDENCE_NONCURRENT_DAYS,
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireEvidence", expiration=cdk.Duration.days(evidence_retention_days)),
                s3.LifecycleRule(id="RemoveExpiredDeleteMarkers", expired_object_delete_marker=True),
            ],
        )
