"""Register in the Model Registry (moto SageMaker) and the approval wait: the task token
kept per model package, resumed by the "SageMaker Model Package State Change" event
(https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-model-package);
Step Functions' SendTaskSuccess/SendTaskFailure behind botocore's Stubber."""

from __future__ import annotations

import json

import boto3
from vigil_loop.registry import REJECTED_ERROR, register, resume, store_token

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/vigil-training:1"


def _registered(comparison, approval):
    sm = boto3.client("sagemaker", region_name="us-east-1")
    c = {**comparison(), "job_name": "job-1", "model_data_url": "s3://b/m.tar.gz", "comparison_url": "s3://b/o.tar.gz"}
    return sm, register(sm, "vigil-dev", approval, IMAGE, c)


def test_dev_registers_approved_with_its_figures(aws, comparison):
    sm, result = _registered(comparison, "Approved")
    package = sm.describe_model_package(ModelPackageName=result["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelPackageGroupName"] == "vigil-dev"
    props = package["CustomerMetadataProperties"]
    assert props["candidate.recall"] == "0.9" and props["current.false_alerts_per_hour"] == "1.0"
    assert props["candidate.person.recall"] == "0.9" and props["sha256"] == "c" * 64
    # a second candidate becomes version 2 of the same group
    _, second = _registered(comparison, "Approved")
    assert sm.describe_model_package(ModelPackageName=second["model_package_arn"])["ModelPackageVersion"] == 2


def test_prod_waits_and_approval_resumes_the_run(aws, comparison, approval_table, stubbed):
    sm, result = _registered(comparison, "PendingManualApproval")
    arn = result["model_package_arn"]
    sfn, stub = stubbed("stepfunctions")
    assert store_token(approval_table, sm, sfn, arn, "token-1") == "PendingManualApproval"
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    output = json.dumps({"model_package_arn": arn, "approval": "Approved"})
    stub.add_response("send_task_success", {}, {"taskToken": "token-1", "output": output})
    assert resume(approval_table, sfn, arn, "Approved") == "resumed"
    assert "Item" not in approval_table.get_item(Key={"model_package_arn": arn})
    # a repeated event finds no waiting run
    assert resume(approval_table, sfn, arn, "Approved") == "unknown"


def test_rejection_fails_the_waiting_run(aws, comparison, approval_table, stubbed):
    sm, result = _registered(comparison, "PendingManualApproval")
    arn = result["model_package_arn"]
    sfn, stub = stubbed("stepfunctions")
    store_token(approval_table, sm, sfn, arn, "token-2")
    stub.add_response(
        "send_task_failure",
        {},
        {
            "taskToken": "token-2",
            "error": REJECTED_ERROR,
            "cause": f"model package {arn} was rejected in the model registry",
        },
    )
    assert resume(approval_table, sfn, arn, "Rejected") == "rejected"
    assert resume(approval_table, sfn, arn, "PendingManualApproval") == "ignored"


def test_an_approval_before_the_token_is_stored_resumes_at_once(aws, comparison, approval_table, stubbed):
    sm, result = _registered(comparison, "PendingManualApproval")
    arn = result["model_package_arn"]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sfn, stub = stubbed("stepfunctions")
    output = json.dumps({"model_package_arn": arn, "approval": "Approved"})
    stub.add_response("send_task_success", {}, {"taskToken": "token-3", "output": output})
    assert store_token(approval_table, sm, sfn, arn, "token-3") == "Approved"
