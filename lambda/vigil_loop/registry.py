"""Step 3, register: the candidate as a version of the stage's model package group
(``vigil-<stage>``) in the SageMaker Model Registry, with its figures; then, where the
stage asks a person to approve (prod: ``PendingManualApproval``), the wait for approval.

The wait is a ``.waitForTaskToken`` task: :func:`store_token` keeps the task token keyed
by model package ARN in DynamoDB; the registry's EventBridge event "SageMaker Model
Package State Change" (detail ``ModelPackageArn``, ``ModelApprovalStatus``;
https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-model-package)
runs :func:`resume`, which sends SendTaskSuccess on Approved and SendTaskFailure on
Rejected. Approval before the token is stored is caught by :func:`store_token` reading
the package's status after storing.
"""

from __future__ import annotations

import json
from typing import Any

REJECTED_ERROR = "ModelRejected"


def _figure(value: Any) -> str:
    return "" if value is None else str(value)


def metadata(comparison: dict[str, Any]) -> dict[str, str]:
    """CustomerMetadataProperties: the candidate's and current model's total figures and
    the candidate's per label, as strings (the registry's values are strings)."""
    props = {"job_name": str(comparison.get("job_name", "")), "sha256": comparison["candidate"]["sha256"]}
    for side in ("candidate", "current"):
        model = comparison.get(side)
        if model is None:
            continue
        for name, value in model["total"].items():
            props[f"{side}.{name}"] = _figure(value)
    for label, figures in sorted((comparison["candidate"].get("by_label") or {}).items()):
        for name in ("recall", "false_alerts_per_hour"):
            props[f"candidate.{label}.{name}"] = _figure(figures.get(name))
    return props


def register(sm: Any, group: str, approval: str, image: str, comparison: dict[str, Any]) -> dict[str, Any]:
    """Create the model package group if it is missing, then the candidate's version.

    Returns ``{"model_package_arn", "approval"}``. ``image`` is the container image the
    package names (the training image: the edge, not SageMaker, runs the model).
    """
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except sm.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("ValidationException", "ResourceNotFound"):
            raise
        sm.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription="Vigil edge models")
    response = sm.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"trained by {comparison.get('job_name', '?')}",
        ModelApprovalStatus=approval,
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": comparison["model_data_url"]}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/x-tar", "S3Uri": comparison["comparison_url"]}}
        },
        CustomerMetadataProperties=metadata(comparison),
    )
    return {"model_package_arn": response["ModelPackageArn"], "approval": approval}


def store_token(table: Any, sm: Any, sfn: Any, model_package_arn: str, token: str) -> str:
    """Keep ``token`` for ``model_package_arn`` until its approval event; if the package was
    already approved or rejected, resume at once. Returns the status read after storing."""
    table.put_item(Item={"model_package_arn": model_package_arn, "task_token": token})
    status = sm.describe_model_package(ModelPackageName=model_package_arn)["ModelApprovalStatus"]
    if status != "PendingManualApproval":
        resume(table, sfn, model_package_arn, status)
    return status


def resume(table: Any, sfn: Any, model_package_arn: str, status: str) -> str:
    """Continue (Approved) or fail (Rejected) the run waiting on ``model_package_arn``.

    Returns what was done: "resumed", "rejected", "ignored" (still pending) or "unknown"
    (no run waits on it: approved outside the loop, or already resumed).
    """
    if status not in ("Approved", "Rejected"):
        return "ignored"
    item = table.get_item(Key={"model_package_arn": model_package_arn}, ConsistentRead=True).get("Item")
    if item is None:
        return "unknown"
    if status == "Approved":
        sfn.send_task_success(
            taskToken=item["task_token"],
            output=json.dumps({"model_package_arn": model_package_arn, "approval": "Approved"}),
        )
    else:
        sfn.send_task_failure(
            taskToken=item["task_token"],
            error=REJECTED_ERROR,
            cause=f"model package {model_package_arn} was rejected in the model registry",
        )
    table.delete_item(Key={"model_package_arn": model_package_arn})
    return "resumed" if status == "Approved" else "rejected"
