"""CloudFormation custom resources that make a stage's redeploy and destroy work.

``Custom::VigilLogGroup`` (``LogGroupName``, ``RetentionInDays``, ``DeleteOnStackDelete``
"true"/"false"): creates the log group if it is absent and sets its retention. A
fixed-name ``AWS::Logs::LogGroup`` fails a deploy with "already exists" when the group
survived a destroy (retained) or a device's LogManager created it first; this one adopts
it. On stack delete it deletes the group only when asked (stages that keep no data).

``Custom::VigilPolicyCleanup`` (``PolicyNames``, ``ThingNames``): on stack delete,
detaches each listed thing's principals (DeleteThing refuses a thing that still has
any), then detaches each IoT
policy from every target (certificates attached by fleet provisioning or by hand are not
in the stack, and DeletePolicy on an attached policy fails with DeleteConflictException:
https://docs.aws.amazon.com/iot/latest/apireference/API_DeletePolicy.html), deletes its
non-default versions, then the policy, retrying the conflict for up to
``DELETE_WAIT_S`` ("it can take up to five minutes after a policy is detached before
it's ready to be deleted": https://docs.aws.amazon.com/iot/latest/apireference/API_DetachPolicy.html).
The policies themselves are retained by CloudFormation, so only this deletes them.

``Custom::VigilPromotedModelVersion`` (``ParameterName``, ``SeedVersion``): the model
component version the stage's deployment uses. On Create and Update it returns
(``Data.Version``) the version in the SSM parameter the model loop writes on promotion,
and writes ``SeedVersion`` there when the parameter does not exist yet (first deploy)
or still holds an older seed (``<major>.0.<n>``; the loop's versions are
``<major>.<minor >= 1>.0``); a later ``cdk deploy`` so keeps the promoted model instead of
putting the seed back, and a new seed replaces the old one, whose component version
CloudFormation deletes, until the loop promotes a model. On Delete it leaves the
parameter (the loop owns it from then on).

``Custom::VigilModelSeedArtifact`` (``SourceBucket``, ``SourceKey``, ``Bucket``, ``Key``):
copies the seed model bundle from the CDK asset (an object named by its hash) to ``Key``,
which ends in ``model-bundle.zip``: Greengrass unpacks an archive into a folder named after
the artifact's file, and every model version must unpack to the same ``model-bundle/``
the detector reads. On Delete it leaves the object (a deployed version's artifact).

Runs on the Lambda runtime's boto3; responds to CloudFormation's pre-signed URL.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

DELETE_WAIT_S = 360
RETRY_EVERY_S = 15


def ensure_log_group(logs: Any, name: str, retention_days: int) -> None:
    """Create ``name`` unless it exists, then set ``retention_days``."""
    try:
        logs.create_log_group(logGroupName=name)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)


def delete_log_group(logs: Any, name: str) -> None:
    try:
        logs.delete_log_group(logGroupName=name)
    except logs.exceptions.ResourceNotFoundException:
        pass


def detach_thing_principals(iot: Any, thing: str) -> list[str]:
    """Detach every certificate from ``thing`` (a thing already gone has none)."""
    try:
        pages = iot.get_paginator("list_thing_principals").paginate(thingName=thing)
        principals = [p for page in pages for p in page["principals"]]
    except iot.exceptions.ResourceNotFoundException:
        return []
    for principal in principals:
        iot.detach_thing_principal(thingName=thing, principal=principal)
    return principals


def delete_policy(
    iot: Any,
    name: str,
    *,
    wait_s: float = DELETE_WAIT_S,
    every_s: float = RETRY_EVERY_S,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Detach ``name`` from all its targets, delete its other versions and itself.

    Returns the targets it was detached from. A policy already gone is not an error;
    a conflict still there after ``wait_s`` propagates."""
    try:
        targets = [
            t
            for page in iot.get_paginator("list_targets_for_policy").paginate(policyName=name)
            for t in page["targets"]
        ]
    except iot.exceptions.ResourceNotFoundException:
        return []
    for target in targets:
        iot.detach_policy(policyName=name, target=target)
    for version in iot.list_policy_versions(policyName=name)["policyVersions"]:
        if not version["isDefaultVersion"]:
            iot.delete_policy_version(policyName=name, policyVersionId=version["versionId"])
    waited = 0.0
    while True:
        try:
            iot.delete_policy(policyName=name)
            return targets
        except iot.exceptions.ResourceNotFoundException:
            return targets
        except iot.exceptions.DeleteConflictException:
            if waited >= wait_s:
                raise
            sleep(every_s)
            waited += every_s


def is_seed_version(version: str) -> bool:
    """``<major>.0.<n>``: a stack's seed (``seed_version`` in
    edge_component/contracts/model_component.py), never a version the loop promotes."""
    parts = version.split(".")
    return len(parts) == 3 and all(p.isdigit() for p in parts) and parts[1] == "0"


def promoted_version(ssm: Any, name: str, seed_version: str) -> str:
    """The version in parameter ``name``; ``seed_version`` written there if it is absent
    or holds another seed (no model promoted yet).

    ``Overwrite=False`` when absent, so a promotion written between the read and the write
    wins (PutParameter then fails with ParameterAlreadyExists and the parameter is read again)."""
    try:
        current = str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        current = None
    if current is not None:
        if current == seed_version or not (is_seed_version(current) and is_seed_version(seed_version)):
            return current
        # An older seed (the bundle in the repository changed, or a stack rollback sends the
        # old one back): the stack's seed is what runs until a promotion.
        ssm.put_parameter(Name=name, Value=seed_version, Type="String", Overwrite=True)
        return seed_version
    try:
        ssm.put_parameter(
            Name=name,
            Value=seed_version,
            Type="String",
            Overwrite=False,
            Description="Vigil: the model component version this stage runs (the model loop writes it on promotion)",
        )
    except ssm.exceptions.ParameterAlreadyExists:
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    return seed_version


def copy_seed_artifact(s3: Any, source_bucket: str, source_key: str, bucket: str, key: str) -> str:
    """Copy ``s3://source_bucket/source_key`` to ``s3://bucket/key``; returns the target URI."""
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key})
    return f"s3://{bucket}/{key}"


def handle(event: dict[str, Any], clients: Callable[[str], Any]) -> tuple[str, dict[str, Any]]:
    """The physical resource id and data for one CloudFormation request; raises on failure."""
    kind, request = event["ResourceType"], event["RequestType"]
    props = event.get("ResourceProperties", {})
    if kind == "Custom::VigilLogGroup":
        name = props["LogGroupName"]
        if request in ("Create", "Update"):
            ensure_log_group(clients("logs"), name, int(props["RetentionInDays"]))
        elif str(props.get("DeleteOnStackDelete")).lower() == "true":
            delete_log_group(clients("logs"), name)
        return name, {}
    if kind == "Custom::VigilPolicyCleanup":
        names = list(props["PolicyNames"])
        detached: dict[str, list[str]] = {}
        if request == "Delete":
            iot = clients("iot")
            for thing in props.get("ThingNames", []):
                detach_thing_principals(iot, thing)
            detached = {name: delete_policy(iot, name) for name in names}
        return "policies:" + ",".join(names), {"Detached": json.dumps(detached)[:1000]}
    if kind == "Custom::VigilPromotedModelVersion":
        name = props["ParameterName"]
        if request == "Delete":
            return name, {}
        return name, {"Version": promoted_version(clients("ssm"), name, props["SeedVersion"])}
    if kind == "Custom::VigilModelSeedArtifact":
        uri = f"s3://{props['Bucket']}/{props['Key']}"
        if request in ("Create", "Update"):
            copy_seed_artifact(clients("s3"), props["SourceBucket"], props["SourceKey"], props["Bucket"], props["Key"])
        return uri, {"Uri": uri}
    raise ValueError(f"unknown resource type {kind!r}")


def _respond(event: dict[str, Any], status: str, physical_id: str, reason: str, data: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 (CloudFormation's pre-signed https URL)
        pass


def handler(event: dict[str, Any], context: Any) -> None:
    import boto3  # the runtime's; imported here so tests can use the module without it

    physical_id = event.get("PhysicalResourceId") or event["LogicalResourceId"]
    try:
        physical_id, data = handle(event, boto3.client)
    except Exception as err:  # CloudFormation must hear of every failure, or it waits an hour
        print(json.dumps({"failed": event["ResourceType"], "error": repr(err)}))
        _respond(event, "FAILED", physical_id, f"{type(err).__name__}: {err}", {})
        return
    _respond(event, "SUCCESS", physical_id, "", data)
