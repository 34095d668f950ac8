"""infra/model_loop.py: the loop after the training task, synthesized for dev (auto
approval) and prod (manual approval): its states, retries and catches, each function's
IAM, the model package group, the canary thing group and the approval rule."""

from __future__ import annotations

import ast
import copy
import json

import pytest

from infra.config import STAGES_CONTEXT_KEY, ConfigError, load_stage, load_stages
from infra.lambda_bundle import LAMBDA_DIR
from infra.model_loop import LAMBDA_SERVICE_ERRORS, NOT_YET_DEPLOYABLE, STEPS

LAMBDA_INVOKE = "arn:<AWS::Partition>:states:::lambda:invoke"
SNS_PUBLISH = "arn:<AWS::Partition>:states:::sns:publish"
# What a Lambda's own role always holds: its log group (grant_write) and X-Ray tracing.
BASE_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
DEPLOYING = {
    "greengrass:ListDeployments",
    "greengrass:GetDeployment",
    "greengrass:CreateDeployment",
    "iot:CreateJob",
    "iot:DescribeJob",
    "iot:UpdateJob",
    "iot:CancelJob",
    "iot:DescribeThingGroup",
}
# Each step's API calls, read from lambda/vigil_loop (handlers.py and the step modules);
# CreateDeployment's IoT job actions: awsdocs/aws-iot-greengrass-v2-developer-guide
# doc_source/provision-minimal-iam-policy.md ("DeployDevTools").
EXPECTED_ACTIONS = {
    "current": {"ssm:GetParameter", "greengrass:GetComponent"},
    "evaluate": {"s3:GetObject"},
    "gate": {"sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"},
    "register": {
        "sagemaker:DescribeModelPackageGroup",
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:CreateModelPackage",
    },
    "wait_for_approval": {
        "dynamodb:PutItem",
        "sagemaker:DescribeModelPackage",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
    },
    "resume": {"dynamodb:GetItem", "dynamodb:DeleteItem", "states:SendTaskSuccess", "states:SendTaskFailure"},
    "component": {
        "s3:GetObject",
        "s3:PutObject",
        "greengrass:ListComponentVersions",
        "greengrass:CreateComponentVersion",
    },
    "canary": DEPLOYING,
    "check": {"greengrass:ListEffectiveDeployments", "greengrass:GetCoreDevice", "dynamodb:GetItem"},
    "promote": DEPLOYING | {"ssm:PutParameter"},
    "rollback": DEPLOYING | {"sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"},
}


def _definition(cfn, stage) -> dict:
    machine = cfn.properties(stage.template_json, stage.stage.stack.training.state_machine)
    return json.loads(cfn.render(machine["DefinitionString"]))


def _fn(cfn, stage, step: str) -> str:
    return f"<{cfn.lid(stage.stage.stack.model_loop.functions[step])}.Arn>"


def _statements(cfn, stage, step: str) -> list[dict]:
    return cfn.policy_statements(stage.template_json, stage.stage.stack.model_loop.roles[step])


def test_current_then_train_then_every_step_in_order(cfn, stage):
    states = _definition(cfn, stage)["States"]
    first = states[_definition(cfn, stage)["StartAt"]]
    # vigil_loop.current: the promoted bundle's location for the job's channel "current".
    assert first["Parameters"]["FunctionName"] == _fn(cfn, stage, "current")
    assert first["Parameters"]["Payload"] == {}
    assert first["ResultPath"] == "$.current"
    train = states[first["Next"]]
    assert train["Resource"].endswith("sagemaker:createTrainingJob.sync")
    approval = "AutoApproved" if stage.config.model_loop.approval == "auto" else "WaitForApproval"
    assert train["Next"] == "Evaluate"
    assert states["Evaluate"]["Parameters"]["Payload"] == {"job_name.$": "$.TrainingJobName"}
    assert states["Evaluate"]["Next"] == "Gate"
    assert states["Gate"]["Next"] == "GatePassed?"
    # gate_handler and register_handler take the comparison itself as their event.
    assert states["Gate"]["Parameters"]["Payload.$"] == "$.comparison"
    assert states["Register"]["Parameters"]["Payload.$"] == "$.comparison"
    assert states["Component"]["Parameters"]["Payload"] == {"model_data_url.$": "$.comparison.model_data_url"}
    assert states["Canary"]["Parameters"]["Payload"] == {"component_version.$": "$.component.component_version"}
    assert states["Promote"]["Parameters"]["Payload"] == {"component_version.$": "$.component.component_version"}
    assert states["Rollback"]["Parameters"]["Payload"] == {"reasons.$": "$.check.reasons"}
    assert states["Register"]["Next"] == approval
    assert states[approval]["Next"] == "Component"
    assert states["Component"]["Next"] == "Canary"
    assert states["Canary"]["Next"] == "StartWatch"
    assert states["StartWatch"]["Next"] == "Watch"
    assert states["Watch"]["Next"] == "CountPoll"
    assert states["CountPoll"]["Next"] == "Check"
    assert states["Check"]["Next"] == "CanaryHealthy?"
    assert states["Promote"]["Next"] == "Promoted" and states["Promoted"]["Type"] == "Succeed"
    assert states["Rollback"]["Next"] == "CanaryFailed" and states["CanaryFailed"]["Type"] == "Fail"
    for step, state in [
        ("current", "CurrentModel"),
        ("evaluate", "Evaluate"),
        ("gate", "Gate"),
        ("register", "Register"),
        ("component", "Component"),
        ("canary", "Canary"),
        ("check", "Check"),
        ("promote", "Promote"),
        ("rollback", "Rollback"),
    ]:
        assert states[state]["Resource"] == LAMBDA_INVOKE, state
        assert states[state]["Parameters"]["FunctionName"] == _fn(cfn, stage, step), state


def test_gate_failure_ends_the_run_with_the_reasons(cfn, stage):
    states = _definition(cfn, stage)["States"]
    choice = states["GatePassed?"]
    assert choice["Choices"] == [{"Variable": "$.gate.passed", "BooleanEquals": True, "Next": "Register"}]
    assert choice["Default"] == "GateFailed"
    # The gate Lambda publishes the reasons to the operations topic (vigil_loop.gate.gate).
    assert states["GateFailed"] == {
        "Type": "Fail",
        "Error": "GateFailed",
        "CausePath": "States.JsonToString($.gate.reasons)",
    }
    assert EXPECTED_ACTIONS["gate"] <= cfn.actions_of(_statements(cfn, stage, "gate"))


def test_every_lambda_task_retries_service_errors_and_catches_to_notify_and_fail(cfn, stage):
    states = _definition(cfn, stage)["States"]
    loop = stage.stage.stack.model_loop
    tasks = {name: s for name, s in states.items() if s.get("Resource", "").startswith(LAMBDA_INVOKE)}
    assert len(tasks) == len(loop.functions) - (1 if "resume" in loop.functions else 0)  # resume: the rule's
    for name, state in tasks.items():
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert set(LAMBDA_SERVICE_ERRORS) <= retried, name
        assert all(r["MaxAttempts"] >= 1 for r in state["Retry"]), name
        assert {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"} in state["Catch"]
    # The canary also waits out a component version Greengrass has not finished creating.
    (late,) = [r for r in states["Canary"]["Retry"] if r["ErrorEquals"] == list(NOT_YET_DEPLOYABLE)]
    assert late["IntervalSeconds"] * (1 + 2 + 4) >= 180 and late["MaxAttempts"] == 4
    notify = states["NotifyFailure"]
    assert notify["Resource"] == SNS_PUBLISH
    assert notify["Parameters"]["TopicArn"] == cfn.ref(stage.stage.stack.operations.topic)
    assert notify["Next"] == "LoopFailed" and states["LoopFailed"]["Type"] == "Fail"


def test_the_state_machine_may_publish_to_the_encrypted_operations_topic(cfn, stage):
    stack = stage.stage.stack
    statements = cfn.policy_statements(stage.template_json, stack.training.state_machine.role)
    (publish,) = cfn.statements_allowing(statements, "sns:Publish")
    assert publish["Resource"] == cfn.ref(stack.operations.topic)
    (kms,) = cfn.statements_allowing(statements, "kms:GenerateDataKey")
    assert kms["Resource"] == cfn.att(stack.operations.key, "Arn")


def test_dev_approves_automatically(cfn, synthesized):
    dev = synthesized["dev"]
    loop = dev.stage.stack.model_loop
    states = _definition(cfn, dev)["States"]
    assert states["AutoApproved"]["Type"] == "Pass"
    assert "WaitForApproval" not in states
    assert not [s for s in states.values() if "waitForTaskToken" in s.get("Resource", "")]
    assert "wait_for_approval" not in loop.functions and "resume" not in loop.functions
    assert loop.approval_rule is None
    patterns = [
        r["Properties"].get("EventPattern", {}) for r in cfn.resources(dev.template_json, "AWS::Events::Rule").values()
    ]
    assert not [p for p in patterns if p.get("source") == ["aws.sagemaker"]]
    env = cfn.properties(dev.template_json, loop.functions["register"])["Environment"]["Variables"]
    assert env["MODEL_APPROVAL"] == "Approved"


def test_prod_waits_for_the_registry_approval_with_a_task_token(cfn, synthesized):
    prod = synthesized["prod"]
    loop, config = prod.stage.stack.model_loop, prod.config.model_loop
    states = _definition(cfn, prod)["States"]
    wait = states["WaitForApproval"]
    # .waitForTaskToken: the task's token goes to the Lambda, which stores it (vigil_loop.registry.store_token).
    assert wait["Resource"] == f"{LAMBDA_INVOKE}.waitForTaskToken"
    assert wait["Parameters"]["FunctionName"] == _fn(cfn, prod, "wait_for_approval")
    assert wait["Parameters"]["Payload"] == {
        "model_package_arn.$": "$.registered.model_package_arn",
        "task_token.$": "$$.Task.Token",
    }
    assert wait["TimeoutSeconds"] == config.approval_timeout_hours * 3600
    assert wait["Catch"][0] == {"ErrorEquals": ["ModelRejected"], "ResultPath": "$.error", "Next": "NotifyRejected"}
    assert states["NotifyRejected"]["Next"] == "Rejected" and states["Rejected"]["Error"] == "ModelRejected"
    env = cfn.properties(prod.template_json, loop.functions["register"])["Environment"]["Variables"]
    assert env["MODEL_APPROVAL"] == "PendingManualApproval"
    # Only the approval steps may resume a run, and only this state machine's.
    for step in STEPS:
        sends = cfn.statements_allowing(_statements(cfn, prod, step), "states:SendTaskSuccess")
        if step in ("wait_for_approval", "resume"):
            assert [s["Resource"] for s in sends] == [cfn.ref(prod.stage.stack.training.state_machine)], step
        else:
            assert sends == [], step
    training = prod.config.training
    assert _definition(cfn, prod)["TimeoutSeconds"] >= max(training.max_runtime_s, training.max_wait_s) + (
        config.approval_timeout_hours * 3600 + config.canary_watch_minutes * 60
    )


def test_approval_rule_matches_this_groups_decisions_and_resumes(cfn, synthesized):
    """Event shape: source aws.sagemaker, detail-type "SageMaker Model Package State
    Change", detail.ModelPackageGroupName and detail.ModelApprovalStatus (Approved |
    Rejected | PendingManualApproval) - SageMaker developer guide, "Events that Amazon
    SageMaker AI sends to Amazon EventBridge", section "SageMaker model package state change"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-model-package);
    the rule "source"/"detail-type" pair is also the one in model-registry-staging-construct-event-bridge.html."""
    prod = synthesized["prod"]
    loop = prod.stage.stack.model_loop
    rule = cfn.properties(prod.template_json, loop.approval_rule)
    group = cfn.render(cfn.properties(prod.template_json, loop.model_package_group)["ModelPackageGroupName"])
    assert cfn.render(rule["EventPattern"]) == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved", "Rejected"]},
    }
    assert [cfn.render(t["Arn"]) for t in rule["Targets"]] == [_fn(cfn, prod, "resume")]


def test_model_package_group_per_stage_named_by_the_stack_and_kept(cfn, stage):
    loop = stage.stage.stack.model_loop
    (lid,) = cfn.resources(stage.template_json, "AWS::SageMaker::ModelPackageGroup")
    assert lid == cfn.lid(loop.model_package_group)
    group = stage.template_json["Resources"][lid]
    name = cfn.render(group["Properties"]["ModelPackageGroupName"])
    assert name.startswith(f"vigil-{stage.config.name}-") and "AWS::StackId" in json.dumps(
        group["Properties"]["ModelPackageGroupName"]
    )
    # A group holding versions cannot be deleted; its name (stack id) never blocks a redeploy.
    assert group.get("DeletionPolicy") == "Retain"
    for function in loop.functions.values():
        env = cfn.properties(stage.template_json, function)["Environment"]["Variables"]
        assert cfn.render(env["MODEL_PACKAGE_GROUP"]) == name


def test_canary_thing_group_holds_only_the_canary_things(cfn, stage):
    stack, config = stage.stage.stack, stage.config
    loop = stack.model_loop
    groups = cfn.resources(stage.template_json, "AWS::IoT::ThingGroup")
    assert set(groups) == {cfn.lid(stack.devices.thing_group), cfn.lid(loop.canary_thing_group)}
    assert set(loop.canary_things) == set(config.model_loop.canary_things)
    assert not set(config.model_loop.canary_things) & set(config.things)
    memberships = [
        r for r in stage.template_json["Resources"].values() if r["Type"] == "Custom::AWS" and "canary" in json.dumps(r)
    ]
    created = [json.loads(cfn.render(r["Properties"]["Create"])) for r in memberships]
    assert sorted(c["parameters"]["thingName"] for c in created) == sorted(config.model_loop.canary_things)
    assert {c["parameters"]["thingGroupName"] for c in created} == {cfn.ref(loop.canary_thing_group)}
    # A claim certificate may not register a canary's name (it would join the stage group).
    assert set(config.model_loop.canary_things) <= set(stack.devices.hook_rules["denied_thing_names"])
    for function in loop.functions.values():
        env = cfn.render(cfn.properties(stage.template_json, function)["Environment"]["Variables"])
        assert env["CANARY_THINGS"] == ",".join(config.model_loop.canary_things)
        assert env["CANARY_THING_GROUP_ARN"] == cfn.att(loop.canary_thing_group, "Arn")
        assert env["STAGE_THING_GROUP_ARN"] == cfn.att(stack.devices.thing_group, "Arn")


def test_canary_watch_is_a_bounded_poll_loop(cfn, stage):
    config = stage.config.model_loop
    states = _definition(cfn, stage)["States"]
    assert states["Watch"] == {"Type": "Wait", "Seconds": config.canary_poll_interval_s, "Next": "CountPoll"}
    assert states["StartWatch"]["Result"] == {"polls": 0}
    assert states["CountPoll"]["Parameters"] == {"polls.$": "States.MathAdd($.watch.polls, 1)"}
    judge = states["CanaryHealthy?"]
    assert judge["Choices"] == [
        {"Variable": "$.check.state", "StringEquals": "HEALTHY", "Next": "Promote"},
        {"Variable": "$.check.state", "StringEquals": "FAILED", "Next": "Rollback"},
        {"Variable": "$.watch.polls", "NumericLessThan": config.max_canary_polls, "Next": "Watch"},
    ]
    assert judge["Default"] == "OutOfPolls" and states["OutOfPolls"]["Next"] == "Rollback"
    # The check says WAITING until the watch has passed: the bound covers the watch and two more checks.
    assert config.max_canary_polls * config.canary_poll_interval_s >= config.canary_watch_minutes * 60
    assert states["Check"]["Parameters"]["Payload"] == {
        "deployment_id.$": "$.canary.deployment_id",
        "model_sha256.$": "$.component.model_sha256",  # what devices report: the model file's
        "started_at.$": "$.canary.started_at",
    }


def test_each_function_may_call_only_what_its_step_calls(cfn, stage):
    loop = stage.stage.stack.model_loop
    for step in loop.roles:
        statements = _statements(cfn, stage, step)
        assert cfn.actions_of(statements) == EXPECTED_ACTIONS[step] | BASE_ACTIONS, step
        assert not [a for a in cfn.actions_of(statements) if "*" in a], step


def test_the_current_step_reads_only_the_promoted_version_and_the_model_components_recipes(cfn, stage):
    """GetComponent is authorised on the component version ARN
    (arn:...:components:<name>:versions:<version>; Service Authorization Reference for
    AWS IoT Greengrass V2, https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsiotgreengrassv2.html)."""
    config = stage.config
    statements = _statements(cfn, stage, "current")
    (get,) = cfn.statements_allowing(statements, "ssm:GetParameter")
    assert get["Resource"] == (
        f"arn:aws:ssm:{config.region}:<AWS::AccountId>:parameter/vigil/{config.name}/model/promoted-version"
    )
    (recipe,) = cfn.statements_allowing(statements, "greengrass:GetComponent")
    assert recipe["Resource"] == (
        f"arn:aws:greengrass:{config.region}:<AWS::AccountId>:components:com.vigil.Model.{config.name}:versions:*"
    )
    for step in stage.stage.stack.model_loop.roles:
        if step != "current":
            assert cfn.statements_allowing(_statements(cfn, stage, step), "ssm:GetParameter") == [], step


def test_promote_writes_only_the_promoted_version_parameter(cfn, stage):
    for step in STEPS:
        if step not in stage.stage.stack.model_loop.roles:
            continue
        puts = cfn.statements_allowing(_statements(cfn, stage, step), "ssm:PutParameter")
        if step == "promote":
            (put,) = puts
            assert put["Resource"] == (
                f"arn:aws:ssm:{stage.config.region}:<AWS::AccountId>:parameter/vigil/"
                f"{stage.config.name}/model/promoted-version"
            )
        else:
            assert puts == [], step


def test_s3_access_is_the_model_buckets_job_outputs_only(cfn, stage):
    bucket = cfn.att(stage.stage.stack.training.model_bucket, "Arn")
    expected = {
        "evaluate": {("s3:GetObject", f"{bucket}/models/*/output/output.tar.gz")},
        "component": {
            ("s3:GetObject", f"{bucket}/models/*/output/model.tar.gz"),
            ("s3:PutObject", f"{bucket}/models/*/output/model-bundle.zip"),
        },
    }
    for step in stage.stage.stack.model_loop.roles:
        found = {
            (action, resource)
            for s in _statements(cfn, stage, step)
            for action in cfn.as_list(s["Action"])
            if action.startswith("s3:")
            for resource in cfn.as_list(s["Resource"])
        }
        assert found == expected.get(step, set()), step


def test_check_reads_only_the_canary_core_devices_and_telemetry(cfn, stage):
    loop, config = stage.stage.stack.model_loop, stage.config
    statements = _statements(cfn, stage, "check")
    (devices,) = cfn.statements_allowing(statements, "greengrass:GetCoreDevice")
    assert cfn.as_list(devices["Resource"]) == [
        f"arn:aws:greengrass:{config.region}:<AWS::AccountId>:coreDevices:{t}" for t in config.model_loop.canary_things
    ]
    (telemetry,) = cfn.statements_allowing(statements, "dynamodb:GetItem")
    assert cfn.as_list(telemetry["Resource"]) == [cfn.att(loop.device_status, "Arn")]


def test_cameras_may_fetch_the_model_bundles(cfn, stage):
    stack = stage.stage.stack
    statements = cfn.policy_statements(stage.template_json, stack.devices.token_exchange_role)
    # The component step writes models/<job>/output/model-bundle.zip; the grant is
    # infra/model_component.py's (an S3 ARN's * spans '/').
    bucket = cfn.att(stack.training.model_bucket, "Arn")
    (read,) = [s for s in statements if s.get("Sid") == "ReadModelArtifacts"]
    assert f"{bucket}/models/*/model-bundle.zip" in cfn.as_list(read["Resource"])
    assert not [s for s in statements if s.get("Sid") == "ReadModelBundles"], "one grant, not two"


def test_one_code_bundle_for_every_step_with_the_component_builder(cfn, stage):
    loop = stage.stage.stack.model_loop
    handlers = ast.parse((LAMBDA_DIR / "vigil_loop" / "handlers.py").read_text())
    defined = {node.name for node in handlers.body if isinstance(node, ast.FunctionDef)}
    keys = set()
    for step, function in loop.functions.items():
        props = cfn.properties(stage.template_json, function)
        assert props["Handler"] == f"vigil_loop.handlers.{step}_handler"
        assert f"{step}_handler" in defined
        keys.add(props["Code"]["S3Key"])
    (key,) = keys
    bundle = stage.asset_path(f"asset.{key.removesuffix('.zip')}")
    # component.load_builder reads model_component.py from beside the package.
    assert (bundle / "model_component.py").is_file()
    assert (bundle / "vigil_loop" / "handlers.py").is_file()


def _raw(context, name="dev"):
    return copy.deepcopy(context[STAGES_CONTEXT_KEY][name])


def test_config_refuses_a_canary_that_is_also_a_stage_thing(context):
    raw = _raw(context)
    raw["model_loop"]["canary_things"] = [raw["things"][0]]
    with pytest.raises(ConfigError, match=r"model_loop.canary_things, things: \['vigil-dev-cam-01'\] in both"):
        load_stage("dev", raw)


def test_a_canary_is_a_stage_thing_no_claim_may_register(context):
    raw = _raw(context)
    raw.update(fleet_provisioning=False)
    raw["model_loop"]["canary_things"] = ["shop-canary-1"]  # outside any prefix: admitted by name
    stage = load_stage("dev", raw)
    assert stage.stage_things.covers("shop-canary-1")
    raw = _raw(context)
    stage = load_stage("dev", raw)
    (canary,) = stage.model_loop.canary_things
    assert canary.startswith(stage.provisioning_thing_name_prefix) and not stage.may_provision(canary)


def test_config_refuses_a_canary_another_stage_lists(context):
    raw = copy.deepcopy(context[STAGES_CONTEXT_KEY])
    raw["prod"]["model_loop"]["canary_things"] = list(raw["dev"]["model_loop"]["canary_things"])
    with pytest.raises(ConfigError, match=r"stage 'prod': .*'vigil-dev-canary-01'"):
        load_stages(raw)


def test_config_needs_a_canary_and_a_poll_within_the_watch(context):
    raw = _raw(context)
    raw["model_loop"]["canary_things"] = []
    with pytest.raises(ConfigError, match=r"stage 'dev': model_loop.canary_things: .*at least 1"):
        load_stage("dev", raw)
    raw = _raw(context)
    raw["model_loop"].update(canary_watch_minutes=1, canary_poll_interval_s=120)
    with pytest.raises(ConfigError, match=r"the poll interval is longer than the watch"):
        load_stage("dev", raw)
    raw = _raw(context)
    raw["model_loop"]["approval"] = "sometimes"
    with pytest.raises(ConfigError, match=r"model_loop.approval: Input should be 'auto' or 'manual'"):
        load_stage("dev", raw)


def test_max_canary_polls_covers_the_watch_plus_two(context):
    raw = _raw(context)
    raw["model_loop"].update(canary_watch_minutes=10, canary_poll_interval_s=240)
    assert load_stage("dev", raw).model_loop.max_canary_polls == 3 + 2  # ceil(600 / 240) + 2


def test_tables_are_keyed_as_the_handlers_read_them(cfn, stage):
    """vigil_loop.registry keys tokens by model_package_arn; vigil_loop.canary reads telemetry by thing_name."""
    loop = stage.stage.stack.model_loop
    for table, key in ((loop.approvals, "model_package_arn"), (loop.device_status, "thing_name")):
        props = cfn.properties(stage.template_json, table)
        assert props["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
        assert props["Replicas"][0]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_every_environment_variable_is_one_settings_reads(cfn, stage):
    source = (LAMBDA_DIR / "vigil_loop" / "settings.py").read_text()
    read = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)}
    for step, function in stage.stage.stack.model_loop.functions.items():
        env = cfn.properties(stage.template_json, function)["Environment"]["Variables"]
        unknown = {name for name in env if name not in read and not name.startswith("POWERTOOLS_")}
        assert unknown == set(), step
        assert env["VIGIL_STAGE"] == stage.config.name
        assert env["CANARY_WATCH_MINUTES"] == str(stage.config.model_loop.canary_watch_minutes)
