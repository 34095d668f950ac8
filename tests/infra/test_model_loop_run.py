"""The dev loop's definition run by moto's Step Functions interpreter (moto 5.2.5,
``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``; see
docs/research/model-loop-design.md section 3): the data each step's Lambda receives is what
``lambda/vigil_loop/handlers.py`` reads, and each outcome ends in the right state.

The step Lambdas are stand-ins (Greengrass has no moto backend): the interpreter's
Lambda client is replaced by one that records each event and returns the step's
canned result. Training is stood in for (moto cannot run createTrainingJob.sync) by a
Lambda step ``train`` whose event is the value of the path the training task's
``current`` channel reads (``current_s3_uri``) and whose result is the training task's
output (``TrainingJobName``), so a run shows the job would read the current step's
bundle; the Watch waits 0 s.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

pytest.importorskip("antlr4")
from moto import mock_aws  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: E402

REGION = "eu-west-1"
CURRENT = {
    "current_model_uri": "s3://models/components/com.vigil.Model.dev/1.0.0/model-bundle.zip",
    "current_version": "1.0.0",
}
COMPARISON = {
    "job_name": "vigil-dev-1",
    "model_data_url": "s3://models/models/vigil-dev-1/output/model.tar.gz",
    "comparison_url": "s3://models/models/vigil-dev-1/output/output.tar.gz",
    "gates": {"recall": {"passed": True, "failures": []}},
    "candidate": {"sha256": "ab" * 32, "total": {"recall": 1.0, "false_alerts_per_hour": 0.0, "delay_s_mean": 1.0}},
    "current": None,
}


class FakeLambda:
    """Lambda.Invoke for the interpreter: ``results[step]`` is a result, a list of
    results (one per call) or an exception message (the function fails)."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = {k: list(v) if isinstance(v, list) else v for k, v in results.items()}
        self.calls: list[tuple[str, Any]] = []

    def invoke(self, **params: Any) -> dict[str, Any]:
        step = params["FunctionName"].rsplit(":", 1)[-1]
        payload = params.get("Payload")
        event = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
        self.calls.append((step, event))
        result = self.results[step]
        if isinstance(result, list):
            result = result.pop(0)
        if isinstance(result, Exception):
            body = {"errorType": type(result).__name__, "errorMessage": str(result)}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}


def _local_definition(cfn, stage, topic_arn: str) -> dict:
    machine = cfn.properties(stage.template_json, stage.stage.stack.training.state_machine)
    definition = json.loads(cfn.render(machine["DefinitionString"]))
    loop = stage.stage.stack.model_loop
    names = {
        f"<{cfn.lid(f)}.Arn>": f"arn:aws:lambda:{REGION}:123456789012:function:{step}"
        for step, f in loop.functions.items()
    }
    text = json.dumps(definition)
    for placeholder, arn in names.items():
        text = text.replace(placeholder, arn)
    text = text.replace(cfn.ref(stage.stage.stack.operations.topic), topic_arn).replace("<AWS::Partition>", "aws")
    definition = json.loads(text)
    (train,) = [n for n, s in definition["States"].items() if s.get("Resource", "").endswith("createTrainingJob.sync")]
    (current,) = [
        c["DataSource"]["S3DataSource"]["S3Uri.$"]
        for c in definition["States"][train]["Parameters"]["InputDataConfig"]
        if c["ChannelName"] == "current"
    ]
    definition["States"][train] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": f"arn:aws:lambda:{REGION}:123456789012:function:train",
            "Payload": {"current_s3_uri.$": current},
        },
        "ResultSelector": {"TrainingJobName.$": "$.Payload.TrainingJobName"},
        "Next": definition["States"][train]["Next"],
    }
    definition["States"]["Watch"]["Seconds"] = 0
    definition.pop("TimeoutSeconds", None)
    return definition


def _run(
    cfn, stage, monkeypatch, results: dict[str, Any], fake_class: Callable[[dict], FakeLambda] = FakeLambda
) -> tuple[dict, FakeLambda, list[str]]:
    fake = fake_class(results)
    real_client = lambda_eval_utils.boto_client_for

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        return (
            fake
            if service == "lambda"
            else real_client(region=region, service=service, state_credentials=state_credentials)
        )

    monkeypatch.setattr(lambda_eval_utils, "boto_client_for", client_for)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="ops")["TopicArn"]
        queue = sqs.create_queue(QueueName="ops")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="loop",
            definition=json.dumps(_local_definition(cfn, stage, topic)),
            roleArn="arn:aws:iam::123456789012:role/loop",
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, input="{}")
        for _ in range(600):  # the interpreter runs in a background thread
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if described["status"] != "RUNNING":
                break
            time.sleep(0.05)
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return described, fake, [m["Body"] for m in messages]


OK = {
    "current": CURRENT,
    "train": {"TrainingJobName": "vigil-dev-1"},
    "evaluate": COMPARISON,
    "gate": {"passed": True, "reasons": []},
    "register": {
        "model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/g/1",
        "approval": "Approved",
    },
    "component": {
        "component_name": "com.vigil.Model.dev",
        "component_version": "1.0.1",
        "sha256": "cd" * 32,
        "model_sha256": "ef" * 32,
        "arn": "x",
    },
    "canary": {"deployment_id": "d-1", "started_at": "2026-01-01T00:00:00+00:00", "previous_model_version": "1.0.0"},
    "check": [{"state": "WAITING", "reasons": ["a"]}, {"state": "HEALTHY", "reasons": ["b"]}],
    "promote": {"deployment_id": "d-2", "promoted_version": "1.0.1"},
    "rollback": {"deployment_id": "d-3", "reasons": []},
}


@pytest.fixture
def dev(synthesized):
    return synthesized["dev"]


def test_a_healthy_canary_is_promoted_and_each_step_gets_what_its_handler_reads(cfn, dev, monkeypatch):
    described, fake, _ = _run(cfn, dev, monkeypatch, OK)
    assert described["status"] == "SUCCEEDED", described
    steps = [step for step, _ in fake.calls]
    assert steps == [
        "current",
        "train",
        "evaluate",
        "gate",
        "register",
        "component",
        "canary",
        "check",
        "check",
        "promote",
    ]
    events = dict(fake.calls)
    assert events["current"] == {}
    # The training job's "current" channel reads the current step's bundle.
    assert events["train"] == {"current_s3_uri": CURRENT["current_model_uri"]}
    assert events["evaluate"] == {"job_name": "vigil-dev-1"}
    assert events["gate"] == COMPARISON and events["register"] == COMPARISON  # the comparison itself
    assert events["component"] == {"model_data_url": COMPARISON["model_data_url"]}
    assert events["canary"] == {"component_version": "1.0.1"}
    assert events["check"] == {
        "deployment_id": "d-1",
        "model_sha256": "ef" * 32,
        "started_at": OK["canary"]["started_at"],
    }
    assert events["promote"] == {"component_version": "1.0.1"}


def test_a_failed_gate_ends_the_run(cfn, dev, monkeypatch):
    described, fake, _ = _run(cfn, dev, monkeypatch, {**OK, "gate": {"passed": False, "reasons": ["recall lower"]}})
    assert described["status"] == "FAILED"
    assert [step for step, _ in fake.calls] == ["current", "train", "evaluate", "gate"]


def test_a_failed_canary_is_rolled_back_with_the_reasons(cfn, dev, monkeypatch):
    results = {**OK, "check": [{"state": "FAILED", "reasons": ["cam: model load error"]}]}
    described, fake, _ = _run(cfn, dev, monkeypatch, results)
    assert described["status"] == "FAILED"
    assert fake.calls[-1] == ("rollback", {"reasons": ["cam: model load error"]})
    assert "promote" not in [step for step, _ in fake.calls]


def test_a_canary_never_judged_is_rolled_back_after_the_bounded_polls(cfn, dev, monkeypatch):
    polls = dev.config.model_loop.max_canary_polls
    results = {**OK, "check": [{"state": "WAITING", "reasons": ["a"]}] * polls}
    described, fake, _ = _run(cfn, dev, monkeypatch, results)
    assert described["status"] == "FAILED"
    assert [step for step, _ in fake.calls].count("check") == polls
    assert fake.calls[-1] == ("rollback", {"reasons": [f"the canary was still not judged after {polls} checks"]})


def test_no_current_model_notifies_operations_and_fails_before_training(cfn, dev, monkeypatch):
    error = RuntimeError("SSM parameter /vigil/dev/model/promoted-version does not exist")
    described, fake, messages = _run(cfn, dev, monkeypatch, {**OK, "current": error})
    assert described["status"] == "FAILED"
    assert [step for step, _ in fake.calls] == ["current"]  # training and evaluate never run
    assert len(messages) == 1 and "promoted-version does not exist" in messages[0]


def test_a_failing_step_notifies_operations_and_fails(cfn, dev, monkeypatch):
    described, fake, messages = _run(cfn, dev, monkeypatch, {**OK, "component": RuntimeError("bundle has no manifest")})
    assert described["status"] == "FAILED"
    assert [step for step, _ in fake.calls][-1] == "component"
    assert len(messages) == 1 and "bundle has no manifest" in messages[0]


class ApprovingLambda(FakeLambda):
    """Also stands in for the registry's decision: on wait_for_approval it sends the task
    token back as the resume handler does (vigil_loop.registry.resume)."""

    def __init__(self, results: dict[str, Any], decision: str) -> None:
        super().__init__(results)
        self.decision = decision

    def invoke(self, **params: Any) -> dict[str, Any]:
        response = super().invoke(**params)
        step, event = self.calls[-1]
        if step == "wait_for_approval":
            threading.Thread(target=self._decide, args=(event["task_token"],)).start()
        return response

    def _decide(self, token: str) -> None:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        if self.decision == "Approved":
            sfn.send_task_success(taskToken=token, output=json.dumps({"approval": "Approved"}))
        else:
            sfn.send_task_failure(taskToken=token, error="ModelRejected", cause="rejected in the registry")


@pytest.mark.parametrize("decision", ["Approved", "Rejected"])
def test_prod_waits_for_the_registry_decision(cfn, synthesized, monkeypatch, decision):
    prod = synthesized["prod"]
    results = {
        **OK,
        "register": {**OK["register"], "approval": "PendingManualApproval"},
        "wait_for_approval": {"status": "PendingManualApproval"},
    }
    described, fake, messages = _run(cfn, prod, monkeypatch, results, fake_class=lambda r: ApprovingLambda(r, decision))
    steps = [step for step, _ in fake.calls]
    arn = OK["register"]["model_package_arn"]
    assert (
        "wait_for_approval",
        {"model_package_arn": arn, "task_token": fake.calls[5][1]["task_token"]},
    ) == fake.calls[5]
    if decision == "Approved":
        assert described["status"] == "SUCCEEDED", described
        assert steps[-1] == "promote"
    else:
        assert described["status"] == "FAILED"
        assert steps == ["current", "train", "evaluate", "gate", "register", "wait_for_approval"]
        assert messages == [arn]  # NotifyRejected
