"""Canary, promotion and rollback deployments: Greengrass v2 behind botocore's Stubber
(requests validated against the service model), SSM and SNS in moto.

Rules pinned: a new deployment to a target replaces that target's previous one, whose
components it must therefore repeat ("Core device deployments",
https://docs.aws.amazon.com/greengrass/v2/developerguide/manage-deployments.html);
ListDeployments with ``historyFilter=LATEST_ONLY`` returns each target's latest
deployment (https://docs.aws.amazon.com/greengrass/v2/APIReference/API_ListDeployments.html).
"""

from __future__ import annotations

import boto3
import pytest
from vigil_loop.deployments import NoDeploymentError, deploy_canary, promote, rollback

MODEL = "com.vigil.Model.dev"
CODE = "com.vigil.EdgeDetector.dev"
PARAMETER = "/vigil/dev/model/promoted-version"
STAGE_COMPONENTS = {
    CODE: {"componentVersion": "1.4.2", "configurationUpdate": {"merge": '{"cameras": []}'}},
    MODEL: {"componentVersion": "1.1.0"},
    "aws.greengrass.Nucleus": {"componentVersion": "2.13.0"},
}
POLICIES = {
    "failureHandlingPolicy": "ROLLBACK",
    "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
}


def _expect_stage_lookup(stub, groups, components=STAGE_COMPONENTS, deployment_id="stage-dep-7"):
    stub.add_response(
        "list_deployments",
        {
            "deployments": [
                {
                    "targetArn": groups["stage"],
                    "deploymentId": deployment_id,
                    "deploymentName": "vigil-dev",
                    "deploymentStatus": "ACTIVE",
                    "isLatestForTarget": True,
                }
            ]
        },
        {"targetArn": groups["stage"], "historyFilter": "LATEST_ONLY"},
    )
    stub.add_response(
        "get_deployment",
        {"targetArn": groups["stage"], "deploymentId": deployment_id, "components": components},
        {"deploymentId": deployment_id},
    )


def _expect_create(stub, target, name, components, deployment_id):
    stub.add_response(
        "create_deployment",
        {"deploymentId": deployment_id},
        {"targetArn": target, "deploymentName": name, "components": components, "deploymentPolicies": POLICIES},
    )


def test_the_canary_gets_the_stage_components_with_only_the_model_swapped(stubbed, groups):
    gg, stub = stubbed("greengrassv2")
    _expect_stage_lookup(stub, groups)
    expected = {**STAGE_COMPONENTS, MODEL: {"componentVersion": "1.2.0"}}
    _expect_create(stub, groups["canary"], "vigil-dev-canary-1.2.0", expected, "canary-dep-1")

    result = deploy_canary(gg, groups["stage"], groups["canary"], "dev", MODEL, "1.2.0")

    assert result == {"deployment_id": "canary-dep-1", "previous_model_version": "1.1.0", "components": expected}
    # the stage's code version and configuration travel unchanged
    assert result["components"][CODE] == STAGE_COMPONENTS[CODE]


def test_a_stage_without_a_deployment_is_a_clear_error(stubbed, groups):
    gg, stub = stubbed("greengrassv2")
    stub.add_response(
        "list_deployments", {"deployments": []}, {"targetArn": groups["stage"], "historyFilter": "LATEST_ONLY"}
    )
    with pytest.raises(NoDeploymentError, match="deploy the stack first"):
        deploy_canary(gg, groups["stage"], groups["canary"], "dev", MODEL, "1.2.0")


def test_promotion_deploys_to_the_stage_and_writes_the_promoted_version(aws, stubbed, groups):
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name=PARAMETER, Value="1.1.0", Type="String")  # the stack's seed value
    gg, stub = stubbed("greengrassv2")
    _expect_stage_lookup(stub, groups)
    expected = {**STAGE_COMPONENTS, MODEL: {"componentVersion": "1.2.0"}}
    _expect_create(stub, groups["stage"], "vigil-dev-model-1.2.0", expected, "stage-dep-8")

    result = promote(gg, ssm, groups["stage"], PARAMETER, "dev", MODEL, "1.2.0")

    assert result == {"deployment_id": "stage-dep-8", "promoted_version": "1.2.0"}
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == "1.2.0"


def test_a_failed_canary_is_rolled_back_to_the_previous_model(aws, stubbed, groups, topic):
    gg, stub = stubbed("greengrassv2")
    _expect_stage_lookup(stub, groups)  # the stage still runs 1.1.0: the canary goes back to it
    _expect_create(stub, groups["canary"], "vigil-dev-canary-rollback", STAGE_COMPONENTS, "canary-dep-2")
    reasons = ["cam-07: model load error: model.tflite: Didn't find op for builtin opcode"]

    result = rollback(gg, topic.sns, topic.arn, groups["stage"], groups["canary"], "dev", MODEL, reasons)

    assert result == {"deployment_id": "canary-dep-2", "model_version": "1.1.0", "reasons": reasons}
    (message,) = topic.received()
    assert message["Subject"] == "Vigil dev: canary rolled back"
    assert f"{MODEL} 1.1.0" in message["Message"] and reasons[0] in message["Message"]
