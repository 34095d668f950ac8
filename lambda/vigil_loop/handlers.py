"""The loop's Lambda handlers (``vigil_loop.handlers.<step>``): Powertools logging, the
stage's settings (:class:`vigil_loop.settings.Settings`) and boto3 clients around the
steps' functions. Each handler's event is the state machine's input for that task
(``infra/model_loop.py`` shapes it) and its return value the task's result.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from vigil_loop import canary, component, current, deployments, evaluate, gate, registry
from vigil_loop.settings import Settings

logger = Logger(service="vigil-model-loop")


def _client(name: str) -> Any:
    return boto3.client(name)  # type: ignore[call-overload]


def _table(name: str) -> Any:
    return boto3.resource("dynamodb").Table(name)


def model_component_name(stage: str) -> str:
    """The stage's model component name: the shared builder's when it defines one."""
    builder = component.load_builder()
    return str(builder.model_component_name(stage))


@logger.inject_lambda_context
def current_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Any event -> ``{"current_model_uri", "current_version"}``: the stage's promoted
    model bundle (:func:`vigil_loop.current.current_model`), the training job's
    ``current`` channel."""
    settings = Settings.from_env()
    result = current.current_model(
        _client("ssm"), _client("greengrassv2"), settings.promoted_version_parameter, _component_arn(settings.stage)
    )
    logger.info("current model", extra=result)
    return result


@logger.inject_lambda_context
def evaluate_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"job_name"}`` -> the comparison (:func:`vigil_loop.evaluate.evaluate`)."""
    settings = Settings.from_env()
    result = evaluate.evaluate(_client("s3"), settings.model_bucket, event["job_name"])
    logger.info("comparison read", extra={"job_name": event["job_name"], "sha256": result["candidate"]["sha256"]})
    return result


@logger.inject_lambda_context
def gate_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The comparison -> ``{"passed", "reasons"}``; failures go to the operations topic."""
    settings = Settings.from_env()
    result = gate.gate(_client("sns"), settings.operations_topic_arn, settings.stage, event, settings.delay_tolerance_s)
    logger.info("gate", extra=result)
    return result


@logger.inject_lambda_context
def register_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The comparison -> ``{"model_package_arn", "approval"}``."""
    settings = Settings.from_env()
    result = registry.register(
        _client("sagemaker"), settings.model_package_group, settings.approval, settings.inference_image, event
    )
    logger.info("registered", extra=result)
    return result


@logger.inject_lambda_context
def wait_for_approval_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"model_package_arn", "task_token"}`` (a waitForTaskToken task): store the token."""
    settings = Settings.from_env()
    status = registry.store_token(
        _table(settings.approval_table),
        _client("sagemaker"),
        _client("stepfunctions"),
        event["model_package_arn"],
        event["task_token"],
    )
    logger.info("waiting for approval", extra={"model_package_arn": event["model_package_arn"], "status": status})
    return {"status": status}


@logger.inject_lambda_context
def resume_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The EventBridge "SageMaker Model Package State Change" event -> resume or fail."""
    settings = Settings.from_env()
    detail = event.get("detail") or {}
    done = registry.resume(
        _table(settings.approval_table),
        _client("stepfunctions"),
        detail["ModelPackageArn"],
        detail.get("ModelApprovalStatus", ""),
    )
    logger.info("approval event", extra={"model_package_arn": detail["ModelPackageArn"], "done": done})
    return {"done": done}


def _component_arn(stage: str) -> str:
    region = os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    account = _client("sts").get_caller_identity()["Account"]
    return f"arn:aws:greengrass:{region}:{account}:components:{model_component_name(stage)}"


@logger.inject_lambda_context
def component_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"model_data_url"}`` -> the new model component version."""
    settings = Settings.from_env()
    result = component.create_component(
        _client("s3"),
        _client("greengrassv2"),
        component.load_builder(),
        settings.stage,
        _component_arn(settings.stage),
        event["model_data_url"],
    )
    logger.info("component version created", extra=result)
    return result


@logger.inject_lambda_context
def canary_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"component_version"}`` -> the canary deployment, with ``started_at``."""
    settings = Settings.from_env()
    result = deployments.deploy_canary(
        _client("greengrassv2"),
        settings.stage_thing_group_arn,
        settings.canary_thing_group_arn,
        settings.stage,
        model_component_name(settings.stage),
        event["component_version"],
    )
    result["started_at"] = datetime.now(UTC).isoformat()
    logger.info("canary deployed", extra={"deployment_id": result["deployment_id"]})
    return result


@logger.inject_lambda_context
def check_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"deployment_id", "model_sha256", "started_at"}`` -> ``{"state", "reasons"}``.

    ``model_sha256``: the component step's (the model file's digest, which the edge
    reports), not its ``sha256`` (the zip's, which no device reports)."""
    settings = Settings.from_env()
    result = canary.check(
        _client("greengrassv2"),
        _table(settings.device_status_table),
        settings.canary_things,
        event["deployment_id"],
        event["model_sha256"],
        event["started_at"],
        settings.watch_minutes,
        datetime.now(UTC),
    )
    logger.info("canary check", extra=result)
    return result


@logger.inject_lambda_context
def promote_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"component_version"}`` -> the stage deployment and the promoted version."""
    settings = Settings.from_env()
    result = deployments.promote(
        _client("greengrassv2"),
        _client("ssm"),
        settings.stage_thing_group_arn,
        settings.promoted_version_parameter,
        settings.stage,
        model_component_name(settings.stage),
        event["component_version"],
    )
    logger.info("promoted", extra=result)
    return result


@logger.inject_lambda_context
def rollback_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"reasons"}`` -> the canary back on the stage's model; reasons published."""
    settings = Settings.from_env()
    result = deployments.rollback(
        _client("greengrassv2"),
        _client("sns"),
        settings.operations_topic_arn,
        settings.stage_thing_group_arn,
        settings.canary_thing_group_arn,
        settings.stage,
        model_component_name(settings.stage),
        list(event.get("reasons") or []),
    )
    logger.info("canary rolled back", extra=result)
    return result
