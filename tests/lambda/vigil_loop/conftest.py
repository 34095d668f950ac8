"""Fixtures for the model loop's tests: a comparison as the training job writes it
(``comparison``), the job's archives in moto S3 (``job_output``), the DeviceStatus and
approval tables in moto DynamoDB, and Greengrass v2 clients behind botocore's Stubber
(moto has no Greengrass v2; the Stubber checks each request against the service model).
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

REGION = "us-east-1"
BUCKET = "vigil-models"
JOB = "vigil-dev-20261202-1800"
ACCOUNT = "123456789012"
STAGE_GROUP = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/vigil-dev"
CANARY_GROUP = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/vigil-dev-canary"

FIGURES = {"recall": 0.9, "false_alerts_per_hour": 1.0, "delay_s_mean": 0.8}


@pytest.fixture
def comparison() -> Callable[..., dict[str, Any]]:
    """``comparison(candidate=..., current=..., gates=...)``: comparison.json with the
    candidate and the current model equal (0.9 recall, 1 false alert/h, 0.8 s) overall
    and for ``person``; keyword arguments are merged into the candidate's / current's
    ``total`` or ``by_label`` (``{"total": {...}, "person": {...}}``) or replace ``gates``."""

    def build(candidate=None, current=None, gates=None, no_current=False) -> dict[str, Any]:
        def model(sha: str, changes: dict[str, Any] | None) -> dict[str, Any]:
            out = {"sha256": sha, "total": dict(FIGURES), "by_label": {"person": dict(FIGURES)}}
            for where, values in (changes or {}).items():
                target = out["total"] if where == "total" else out["by_label"].setdefault(where, dict(FIGURES))
                target.update(values)
            return out

        return {
            "gates": copy.deepcopy(gates)
            if gates is not None
            else {
                "compatibility": {"passed": True, "failures": []},
                "quality": {"passed": True, "failures": []},
            },
            "candidate": model("c" * 64, candidate),
            "current": None if no_current else model("a" * 64, current),
        }

    return build


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def make_tar_gz() -> Callable[[dict[str, bytes]], bytes]:
    """``make_tar_gz({name: bytes})``: a tar.gz as SageMaker writes its archives."""
    return tar_gz


@pytest.fixture
def job_output(aws, comparison) -> Callable[..., Any]:
    """``job_output(comparison_dict | None)``: upload the job's model.tar.gz (a bundle with
    manifest.json and model.tflite) and output.tar.gz (with comparison.json unless None)
    to moto S3; returns the S3 client."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)

    def upload(content: dict[str, Any] | None) -> Any:
        prefix = f"models/{JOB}/output"
        bundle = {"manifest.json": b'{"threshold": 0.5}', "model.tflite": b"TFL3" + bytes(64)}
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/model.tar.gz", Body=tar_gz(bundle))
        files = {"evaluation.json": b"{}"}
        if content is not None:
            files["comparison.json"] = json.dumps(content).encode()
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/output.tar.gz", Body=tar_gz(files))
        return s3

    return upload


@pytest.fixture
def device_table(aws) -> Any:
    """The DeviceStatus table (key ``thing_name``) as a boto3 Table in moto."""
    ddb = boto3.resource("dynamodb", region_name=REGION)
    return ddb.create_table(
        TableName="vigil-dev-device-status",
        KeySchema=[{"AttributeName": "thing_name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "thing_name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def approval_table(aws) -> Any:
    """The approval tokens table (key ``model_package_arn``) as a boto3 Table in moto."""
    ddb = boto3.resource("dynamodb", region_name=REGION)
    return ddb.create_table(
        TableName="vigil-dev-approvals",
        KeySchema=[{"AttributeName": "model_package_arn", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "model_package_arn", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def stubbed() -> Iterator[Callable[[str], tuple[Any, Stubber]]]:
    """``stubbed(service)``: (client, active Stubber); every queued response must be used."""
    stubbers: list[Stubber] = []

    def make(service: str) -> tuple[Any, Stubber]:
        client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        stubber = Stubber(client)
        stubber.activate()
        stubbers.append(stubber)
        return client, stubber

    yield make
    for stubber in stubbers:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


@pytest.fixture
def groups() -> dict[str, str]:
    """The stage's thing group ARN (``stage``) and its canary group's (``canary``)."""
    return {"stage": STAGE_GROUP, "canary": CANARY_GROUP}


@pytest.fixture
def bucket() -> str:
    """The model bucket: ``vigil-models``."""
    return BUCKET


@pytest.fixture
def job() -> str:
    """The training job whose archives ``job_output`` uploads."""
    return JOB
