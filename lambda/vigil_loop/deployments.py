"""Steps 5 and 6: deploy the new model version to the stage's canary thing group, then
promote it to the stage's thing group or roll the canary back.

A thing group's deployment replaces that group's previous one, so every deployment
here is the stage group's current components (code and model) with only the model
component's version changed: the canary runs the code the fleet runs.

The canary things must be in the canary group and NOT in the stage's group. A core
device combines the version requirements of every thing group it is in ("Component
dependency resolution": the requirements "already established on existing thing
groups", the deployment's own component versions and the recipes' dependencies,
https://docs.aws.amazon.com/greengrass/v2/developerguide/manage-deployments.html), and
each group's deployment pins an exact version. A device in both groups would get
``com.vigil.Model.<stage>`` ``==old`` from the stage group and ``==new`` from the canary:
no version satisfies both, so the nucleus fails the canary deployment on that device
(``NoAvailableComponentVersionException``; ResolveComponentCandidates: "If the requirements
conflict, then this operation returns an error and the deployment fails",
https://docs.aws.amazon.com/greengrass/v2/APIReference/API_ResolveComponentCandidates.html)
and the canary check reports it as FAILED. Once promoted, both groups name the same
version, so a canary thing left in both would not conflict, but the next canary would.
"""

from __future__ import annotations

from typing import Any


class NoDeploymentError(LookupError):
    """The stage's thing group has no deployment to take the code version from."""


def current_components(gg: Any, target_arn: str) -> dict[str, dict[str, Any]]:
    """The components of the latest deployment to ``target_arn`` (a thing group ARN)."""
    listed = gg.list_deployments(targetArn=target_arn, historyFilter="LATEST_ONLY")["deployments"]
    if not listed:
        raise NoDeploymentError(f"no deployment targets {target_arn}: deploy the stack first (cdk deploy)")
    return dict(gg.get_deployment(deploymentId=listed[0]["deploymentId"])["components"])


def with_model(components: dict[str, dict[str, Any]], model_component: str, version: str) -> dict[str, Any]:
    """``components`` with ``model_component`` at ``version`` (its configuration kept)."""
    spec = {**components.get(model_component, {}), "componentVersion": version}
    return {**components, model_component: spec}


def deploy(gg: Any, target_arn: str, name: str, components: dict[str, Any]) -> str:
    """CreateDeployment of ``components`` to ``target_arn``; the deployment's id."""
    response = gg.create_deployment(
        targetArn=target_arn,
        deploymentName=name,
        components=components,
        deploymentPolicies={
            "failureHandlingPolicy": "ROLLBACK",
            "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
        },
    )
    return str(response["deploymentId"])


def deploy_canary(
    gg: Any, stage_group_arn: str, canary_group_arn: str, stage: str, model_component: str, version: str
) -> dict[str, Any]:
    """Deploy ``version`` of the model to the canary group. Returns the step's output:
    ``deployment_id``, ``previous_model_version`` (the stage's, for a rollback) and
    ``components`` (what the canary now runs)."""
    current = current_components(gg, stage_group_arn)
    components = with_model(current, model_component, version)
    deployment_id = deploy(gg, canary_group_arn, f"vigil-{stage}-canary-{version}", components)
    previous = current.get(model_component, {}).get("componentVersion")
    return {"deployment_id": deployment_id, "previous_model_version": previous, "components": components}


def promote(
    gg: Any, ssm: Any, stage_group_arn: str, parameter: str, stage: str, model_component: str, version: str
) -> dict[str, Any]:
    """Deploy ``version`` to the stage's thing group with its current code, then record it
    in the SSM parameter the stack's deployment reads (so ``cdk deploy`` keeps it)."""
    components = with_model(current_components(gg, stage_group_arn), model_component, version)
    deployment_id = deploy(gg, stage_group_arn, f"vigil-{stage}-model-{version}", components)
    ssm.put_parameter(Name=parameter, Value=version, Type="String", Overwrite=True)
    return {"deployment_id": deployment_id, "promoted_version": version}


def rollback(
    gg: Any,
    sns: Any,
    topic_arn: str,
    stage_group_arn: str,
    canary_group_arn: str,
    stage: str,
    model_component: str,
    reasons: list[str],
) -> dict[str, Any]:
    """Put the canary group back on the stage's components (the model the stage runs,
    which the canary ran before) and publish the reasons to the operations topic.
    Returns ``{"deployment_id", "model_version" (the one the canary goes back to), "reasons"}``.
    """
    components = current_components(gg, stage_group_arn)
    deployment_id = deploy(gg, canary_group_arn, f"vigil-{stage}-canary-rollback", components)
    version = components.get(model_component, {}).get("componentVersion")
    sns.publish(
        TopicArn=topic_arn,
        Subject=f"Vigil {stage}: canary rolled back"[:100],
        Message="\n".join(
            [f"The canary group is back on {model_component} {version}, the model the stage runs.", "Why:"]
            + (reasons or ["the canary failed"])
        ),
    )
    return {"deployment_id": deployment_id, "model_version": version, "reasons": reasons}
