"""Buckets: one way to make a secure bucket, the access-log bucket and the evidence bucket."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from edge_component.contracts.alert_rules import SNAPSHOT_PREFIX as EVIDENCE_SNAPSHOT_PREFIX
from infra.nag import acknowledge


def secure_bucket(
    scope: Construct,
    id_: str,
    *,
    access_logs: s3.IBucket | None,
    removal_policy: cdk.RemovalPolicy,
    lifecycle_rules: Sequence[s3.LifecycleRule] = (),
) -> s3.Bucket:
    """A private bucket: SSE-S3, versioned, TLS only, public access blocked, ACLs off, and its
    access logged to ``access_logs`` under ``<id>/`` (None only for the access-log bucket
    itself). No physical name: CloudFormation picks one."""
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
                noncurrent_version_expiration=cdk.Duration.days(90),
                abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
            ),
            *lifecycle_rules,
        ],
        removal_policy=removal_policy,
    )


class Storage(Construct):
    """The stage's shared buckets.

    Attributes:
        access_logs: S3 server access logs of every other bucket (kept 365 days).
        evidence: alert snapshots, written by devices under ``snapshots/<thing>/``,
            expired after ``evidence_retention_days``.
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
            lifecycle_rules=[
                s3.LifecycleRule(
                    prefix=f"{EVIDENCE_SNAPSHOT_PREFIX}/",
                    expiration=cdk.Duration.days(evidence_retention_days),
                )
            ],
        )
