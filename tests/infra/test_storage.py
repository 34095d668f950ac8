"""infra/storage.py: every bucket is encrypted, versioned, private and logged."""

from __future__ import annotations


def test_every_bucket_is_encrypted_versioned_private_and_logged(cfn, stage):
    storage = stage.stage.stack.storage
    buckets = cfn.resources(stage.template_json, "AWS::S3::Bucket")
    assert len(buckets) == 4
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        if logical_id != cfn.lid(storage.access_logs):
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": cfn.lid(storage.access_logs)}
    policies = cfn.resources(stage.template_json, "AWS::S3::BucketPolicy").values()
    tls_only = {
        p["Properties"]["Bucket"]["Ref"]
        for p in policies
        if any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    assert tls_only == set(buckets)


def test_nothing_in_the_evidence_bucket_outlives_the_retention_by_more_than_a_day(cfn, stage):
    """On a versioned bucket Expiration only puts a delete marker over the current version:
    the picture stays as a non-current version until NoncurrentVersionExpiration removes
    it (S3 User Guide, "Expiring objects":
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html).
    With the 90-day default a 7-day retention kept snapshots ~97 days; here at most
    retention + 1 day, and the delete markers left behind are removed too
    (ExpiredObjectDeleteMarker, which may not share a rule with Days)."""
    props = cfn.properties(stage.template_json, stage.stage.stack.storage.evidence)
    rules = props["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    retention = stage.config.evidence_retention_days
    # Current versions: one bucket-wide rule (no Prefix), at the stage's retention.
    expiring = [r for r in rules if "ExpirationInDays" in r]
    assert [(r.get("Prefix"), r.get("TagFilters"), r["ExpirationInDays"]) for r in expiring] == [
        (None, None, retention)
    ]
    # Every other version goes one day after it stops being current, bucket-wide.
    noncurrent = [r for r in rules if "NoncurrentVersionExpiration" in r]
    assert [(r.get("Prefix"), r["NoncurrentVersionExpiration"]) for r in noncurrent] == [(None, {"NoncurrentDays": 1})]
    assert [r for r in rules if r.get("ExpiredObjectDeleteMarker")] == [
        {"Id": "RemoveExpiredDeleteMarkers", "ExpiredObjectDeleteMarker": True, "Status": "Enabled"}
    ]
    # Parts of an upload that never completed are pictures too.
    aborts = [
        r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        for r in rules
        if "AbortIncompleteMultipartUpload" in r
    ]
    assert aborts == [1]


def test_other_buckets_keep_noncurrent_versions_90_days(cfn, stage):
    props = cfn.properties(stage.template_json, stage.stage.stack.storage.access_logs)
    noncurrent = [
        r["NoncurrentVersionExpiration"]
        for r in props["LifecycleConfiguration"]["Rules"]
        if "NoncurrentVersionExpiration" in r
    ]
    assert noncurrent == [{"NoncurrentDays": 90}]
