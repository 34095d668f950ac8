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
