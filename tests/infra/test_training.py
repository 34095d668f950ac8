"""infra/training.py: the training job in Step Functions, its channels, its role and its state machine."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import aws_cdk as cdk
import pytest

from infra.config import STAGES_CONTEXT_KEY, load_stage
from infra.stage import build_app
from infra.training_job import DLC_ACCOUNTS

TRAINING_JOB = "arn:<AWS::Partition>:states:::sagemaker:createTrainingJob.sync"


def _definition(cfn, stage) -> dict:
    machine = cfn.properties(stage.template_json, stage.stage.stack.training.state_machine)
    return json.loads(cfn.render(machine["DefinitionString"]))


def _train_state(cfn, stage) -> dict:
    (state,) = [s for s in _definition(cfn, stage)["States"].values() if s.get("Resource") == TRAINING_JOB]
    return state


def _current_channel() -> dict:
    return {
        "ChannelName": "current",
        "DataSource": {"S3DataSource": {"S3Uri.$": "$.current.current_model_uri", "S3DataType": "S3Prefix"}},
        "InputMode": "File",
    }


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


def test_training_job_task(cfn, stage):
    training, config = stage.stage.stack.training, stage.config
    state = _train_state(cfn, stage)
    assert state["Resource"] == "arn:<AWS::Partition>:states:::sagemaker:createTrainingJob.sync"  # RUN_JOB
    params = state["Parameters"]
    assert params["RoleArn"] == f"<{cfn.lid(training.role)}.Arn>"
    assert params["TrainingJobName.$"] == f"States.Format('vigil-{config.name}-{{}}', States.UUID())"
    image = params["AlgorithmSpecification"]["TrainingImage"]
    assert image == (
        f"{DLC_ACCOUNTS[config.region]}.dkr.ecr.{config.region}.<AWS::URLSuffix>/tensorflow-training:"
        f"{config.training.image_tag}"
    )
    assert params["InputDataConfig"] == [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {"S3Uri": f"s3://{cfn.ref(training.data_bucket)}/train/", "S3DataType": "S3Prefix"}
            },
        },
        _current_channel(),
    ]
    assert params["OutputDataConfig"] == {"S3OutputPath": f"s3://{cfn.ref(training.model_bucket)}/models/"}
    assert params["ResourceConfig"]["InstanceType"] == config.training.instance_type


def test_test_channel_is_opt_in_and_off_in_every_stage_of_cdk_json(cfn, stage):
    # CreateTrainingJob refuses a channel whose S3 prefix is empty, so it is not on by default.
    assert stage.config.training.test_channel is False
    assert [c["ChannelName"] for c in _train_state(cfn, stage)["Parameters"]["InputDataConfig"]] == ["train", "current"]
    statements = cfn.policy_statements(stage.template_json, stage.stage.stack.training.role)
    assert "test/" not in json.dumps(statements)


def test_optional_test_channel_reads_the_test_prefix(cfn, with_test_channel):
    training = with_test_channel.stage.stack.training
    channels = _train_state(cfn, with_test_channel)["Parameters"]["InputDataConfig"]
    assert channels == [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {"S3Uri": f"s3://{cfn.ref(training.data_bucket)}/{name}/", "S3DataType": "S3Prefix"}
            },
        }
        for name in ("train", "test")  # SageMaker sets SM_CHANNEL_TRAIN and SM_CHANNEL_TEST, which train.py reads
    ] + [_current_channel()]
    statements = cfn.policy_statements(with_test_channel.template_json, training.role)
    (read_data,) = [
        s for s in cfn.statements_allowing(statements, "s3:GetObject") if s.get("Sid") == "ReadTrainingData"
    ]
    bucket = f"<{cfn.lid(training.data_bucket)}.Arn>"
    assert sorted(cfn.as_list(read_data["Resource"])) == [f"{bucket}/test/*", f"{bucket}/train/*"]
    (list_data,) = [
        s for s in cfn.statements_allowing(statements, "s3:ListBucket") if s.get("Sid") == "ListTrainingData"
    ]
    assert list_data["Resource"] == bucket
    assert list_data["Condition"] == {"StringLike": {"s3:prefix": ["train/*", "test/*"]}}
    for statement in cfn.statements_allowing(statements, "s3:PutObject"):
        assert not any(r.startswith(bucket) for r in cfn.as_list(statement["Resource"])), statement  # read-only data


def test_execution_role_is_least_privilege(cfn, stage):
    training = stage.stage.stack.training
    trust = cfn.properties(stage.template_json, training.role)["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    statements = cfn.policy_statements(stage.template_json, training.role)
    for action in cfn.actions_of(statements):
        assert "*" not in action, action
    for statement in cfn.statements_allowing(statements, "s3:PutObject"):
        for resource in cfn.as_list(statement["Resource"]):
            assert resource.startswith(f"<{cfn.lid(training.model_bucket)}.Arn>/"), resource
    (read_data,) = [
        s for s in cfn.statements_allowing(statements, "s3:GetObject") if s.get("Sid") == "ReadTrainingData"
    ]
    assert read_data["Resource"] == f"<{cfn.lid(training.data_bucket)}.Arn>/train/*"


def test_execution_role_has_no_access_to_the_dropped_checkpoint_prefix(cfn, stage):
    # The job has no CheckpointConfig (test_training_job.py), so SageMaker never syncs
    # s3://<models>/checkpoints/ (CreateTrainingJob CheckpointConfig.S3Uri,
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CheckpointConfig.html):
    # no statement of the training role may name that prefix, as an object or a list prefix.
    training = stage.stage.stack.training
    statements = cfn.policy_statements(stage.template_json, training.role)
    models_arn = f"<{cfn.lid(training.model_bucket)}.Arn>"
    for statement in statements:
        for resource in cfn.as_list(statement["Resource"]):
            assert not resource.startswith(f"{models_arn}/checkpoints"), statement
            if resource.startswith(f"{models_arn}/"):
                assert resource in {
                    f"{models_arn}/models/*",
                    f"{models_arn}/models/*/model-bundle.zip",
                    f"{models_arn}/components/com.vigil.Model.{stage.config.name}/*/model-bundle.zip",
                }, statement
        prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])
        assert not [p for p in cfn.as_list(prefixes) if p.startswith("checkpoints")], statement
    assert "checkpoints/" not in json.dumps(statements)


def test_state_machine_passes_only_its_role_and_logs_everything(cfn, stage):
    training = stage.stage.stack.training
    machine_role = training.state_machine.role
    statements = cfn.policy_statements(stage.template_json, machine_role)
    (pass_role,) = cfn.statements_allowing(statements, "iam:PassRole")
    assert pass_role["Resource"] == f"<{cfn.lid(training.role)}.Arn>"
    machine = cfn.properties(stage.template_json, training.state_machine)
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["TracingConfiguration"] == {"Enabled": True}


def test_the_current_step_runs_first_and_the_job_reads_its_bundle_as_channel_current(cfn, stage):
    """The loop's first state locates the promoted bundle (vigil_loop.current) at
    ``$.current``; the job reads that one object as channel ``current`` (train.py's
    SM_CHANNEL_CURRENT). S3Prefix with an object's key: "SageMaker uses all objects that
    match the specified key name prefix for model training", and a key is a prefix of
    itself (S3DataSource, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html)."""
    definition = _definition(cfn, stage)
    first = definition["States"][definition["StartAt"]]
    loop = stage.stage.stack.model_loop
    assert first["Resource"] == "arn:<AWS::Partition>:states:::lambda:invoke"
    assert first["Parameters"]["FunctionName"] == f"<{cfn.lid(loop.functions['current'])}.Arn>"
    assert first["ResultPath"] == "$.current"
    assert first["ResultSelector"] == {
        "current_model_uri.$": "$.Payload.current_model_uri",
        "current_version.$": "$.Payload.current_version",
    }
    assert definition["States"][first["Next"]] == _train_state(cfn, stage)
    channels = _train_state(cfn, stage)["Parameters"]["InputDataConfig"]
    assert channels[-1] == _current_channel()


def test_the_job_reads_only_bundle_zips_of_the_model_bucket_for_channel_current(cfn, stage):
    training = stage.stage.stack.training
    statements = cfn.policy_statements(stage.template_json, training.role)
    models_arn = f"<{cfn.lid(training.model_bucket)}.Arn>"
    keys = [f"components/com.vigil.Model.{stage.config.name}/*/model-bundle.zip", "models/*/model-bundle.zip"]
    (read,) = [s for s in statements if s.get("Sid") == "ReadCurrentModel"]
    assert cfn.as_list(read["Action"]) == ["s3:GetObject"]
    assert sorted(cfn.as_list(read["Resource"])) == sorted(f"{models_arn}/{key}" for key in keys)
    # SageMaker lists an S3Prefix channel's prefix before it downloads.
    (listing,) = [s for s in statements if s.get("Sid") == "ListCurrentModel"]
    assert listing["Resource"] == models_arn
    assert listing["Condition"] == {"StringLike": {"s3:prefix": keys}}
    for statement in statements:
        for resource in cfn.as_list(statement["Resource"]):
            assert not resource.startswith(f"{models_arn}/components/") or resource.endswith("/model-bundle.zip")
