"""Training: secure buckets, the script-mode job in Step Functions, its role and its code archive."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tarfile
from types import SimpleNamespace

import aws_cdk as cdk
import pytest
from infra_testlib import actions_of, as_list, lid, policy_statements, properties, ref, render, resources, statements_allowing

from infra.config import STAGES_CONTEXT_KEY, load_stage
from infra.stage import build_app
from infra.training_job import DLC_ACCOUNTS


def _train_state(stage) -> dict:
    machine = properties(stage.template_json, stage.stage.stack.training.state_machine)
    definition = json.loads(render(machine["DefinitionString"]))
    return definition["States"][definition["StartAt"]]


@pytest.fixture(scope="module")
def with_test_channel(tmp_path_factory, context):
    """The dev stage with ``training.test_channel`` on, synthesized as app.py does (cdk-nag
    on: synth raises on any unacknowledged finding, such as an unexplained wildcard)."""
    raw = copy.deepcopy(context[STAGES_CONTEXT_KEY]["dev"])
    raw["training"]["test_channel"] = True
    outdir = tmp_path_factory.mktemp("cdk.out.test-channel")
    app = cdk.App(context=context, outdir=str(outdir))
    stage = build_app(app, {"dev": load_stage("dev", raw)})["dev"]
    app.synth()
    template = json.loads((outdir / "assembly-dev" / stage.stack.template_file).read_text())
    return SimpleNamespace(stage=stage, template_json=template, config=stage.config)


def test_every_bucket_is_encrypted_versioned_private_and_logged(stage):
    storage = stage.stage.stack.storage
    buckets = resources(stage.template_json, "AWS::S3::Bucket")
    assert len(buckets) == 4
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        }, logical_id
        if logical_id != lid(storage.access_logs):
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": lid(storage.access_logs)}
    policies = resources(stage.template_json, "AWS::S3::BucketPolicy").values()
    tls_only = {
        p["Properties"]["Bucket"]["Ref"]
        for p in policies
        if any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    assert tls_only == set(buckets)


def test_training_job_task(stage):
    training, config = stage.stage.stack.training, stage.config
    state = _train_state(stage)
    assert state["Resource"] == "arn:<AWS::Partition>:states:::sagemaker:createTrainingJob.sync"  # RUN_JOB
    params = state["Parameters"]
    assert params["RoleArn"] == f"<{lid(training.role)}.Arn>"
    assert params["TrainingJobName.$"] == f"States.Format('vigil-{config.name}-{{}}', States.UUID())"
    image = params["AlgorithmSpecification"]["TrainingImage"]
    assert image == (
        f"{DLC_ACCOUNTS[config.region]}.dkr.ecr.{config.region}.<AWS::URLSuffix>/tensorflow-training:"
        f"{config.training.image_tag}"
    )
    assert params["InputDataConfig"] == [
        {
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3Uri": f"s3://{ref(training.data_bucket)}/train/", "S3DataType": "S3Prefix"}},
        }
    ]
    assert params["OutputDataConfig"] == {"S3OutputPath": f"s3://{ref(training.model_bucket)}/models/"}
    assert params["ResourceConfig"]["InstanceType"] == config.training.instance_type


def test_test_channel_is_opt_in_and_off_in_every_stage_of_cdk_json(stage):
    # CreateTrainingJob refuses a channel whose S3 prefix is empty, so it is not on by default.
    assert stage.config.training.test_channel is False
    assert [c["ChannelName"] for c in _train_state(stage)["Parameters"]["InputDataConfig"]] == ["train"]
    statements = policy_statements(stage.template_json, stage.stage.stack.training.role)
    assert "test/" not in json.dumps(statements)


def test_optional_test_channel_reads_the_test_prefix(with_test_channel):
    training = with_test_channel.stage.stack.training
    channels = _train_state(with_test_channel)["Parameters"]["InputDataConfig"]
    assert channels == [
        {
            "ChannelName": name,
            "DataSource": {"S3DataSource": {"S3Uri": f"s3://{ref(training.data_bucket)}/{name}/", "S3DataType": "S3Prefix"}},
        }
        for name in ("train", "test")  # SageMaker sets SM_CHANNEL_TRAIN and SM_CHANNEL_TEST, which train.py reads
    ]
    statements = policy_statements(with_test_channel.template_json, training.role)
    (read_data,) = [s for s in statements_allowing(statements, "s3:GetObject") if s.get("Sid") == "ReadTrainingData"]
    bucket = f"<{lid(training.data_bucket)}.Arn>"
    assert sorted(as_list(read_data["Resource"])) == [f"{bucket}/test/*", f"{bucket}/train/*"]
    (list_data,) = [s for s in statements_allowing(statements, "s3:ListBucket") if s.get("Sid") == "ListTrainingData"]
    assert list_data["Resource"] == bucket
    assert list_data["Condition"] == {"StringLike": {"s3:prefix": ["train/*", "test/*"]}}
    for statement in statements_allowing(statements, "s3:PutObject"):
        assert not any(r.startswith(bucket) for r in as_list(statement["Resource"])), statement  # read-only data


def test_script_mode_hyperparameters(stage):
    training, config = stage.stage.stack.training, stage.config
    hyper = {k: json.loads(v) for k, v in _train_state(stage)["Parameters"]["HyperParameters"].items()}
    assert hyper["sagemaker_program"] == "train.py"
    assert hyper["sagemaker_region"] == config.region
    assert hyper["sagemaker_submit_directory"].startswith("s3://cdk-")
    assert hyper["sagemaker_submit_directory"].endswith(f"/{training.sourcedir.asset_hash}.gz")
    assert hyper["epochs"] == config.training.epochs
    for key, value in config.training.hyperparameters.items():
        assert hyper[key] == value


def test_managed_spot_training_with_checkpoints(stage):
    training, config = stage.stage.stack.training, stage.config
    params = _train_state(stage)["Parameters"]
    assert params["StoppingCondition"]["MaxRuntimeInSeconds"] == config.training.max_runtime_s
    if config.training.use_spot:
        assert params["EnableManagedSpotTraining"] is True
        assert params["StoppingCondition"]["MaxWaitTimeInSeconds"] == config.training.max_wait_s
        assert params["CheckpointConfig"] == {
            "S3Uri": f"s3://{ref(training.model_bucket)}/checkpoints/",
            "LocalPath": "/opt/ml/checkpoints",
        }
    else:
        assert "EnableManagedSpotTraining" not in params


def test_execution_role_is_least_privilege(stage):
    training = stage.stage.stack.training
    trust = properties(stage.template_json, training.role)["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    statements = policy_statements(stage.template_json, training.role)
    for action in actions_of(statements):
        assert "*" not in action, action
    for statement in statements_allowing(statements, "s3:PutObject"):
        for resource in as_list(statement["Resource"]):
            assert resource.startswith(f"<{lid(training.model_bucket)}.Arn>/"), resource
    (read_data,) = [s for s in statements_allowing(statements, "s3:GetObject") if s.get("Sid") == "ReadTrainingData"]
    assert read_data["Resource"] == f"<{lid(training.data_bucket)}.Arn>/train/*"


def test_state_machine_passes_only_its_role_and_logs_everything(stage):
    training = stage.stage.stack.training
    machine_role = training.state_machine.role
    statements = policy_statements(stage.template_json, machine_role)
    (pass_role,) = statements_allowing(statements, "iam:PassRole")
    assert pass_role["Resource"] == f"<{lid(training.role)}.Arn>"
    machine = properties(stage.template_json, training.state_machine)
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["TracingConfiguration"] == {"Enabled": True}


def test_sourcedir_is_runnable_script_mode_code(stage, tmp_path):
    archive = stage.asset_path(f"asset.{stage.stage.stack.training.sourcedir.asset_hash}.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert {m.mtime for m in tar.getmembers()} == {0}
        tar.extractall(tmp_path, filter="data")
    assert {"train.py", "requirements.txt", "training/__init__.py", "edge_component/features.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    # As SageMaker runs it: `python train.py` in /opt/ml/code, nothing else on the path.
    done = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "--epochs" in done.stdout
