"""infra/stage.py: the stack's outputs tell an installer what it needs, and every log group has a retention."""

from __future__ import annotations


def test_outputs_tell_an_installer_what_it_needs(cfn, stage):
    stack = stage.stage.stack
    outputs = stage.template_json["Outputs"]
    expected = {
        "ThingGroupName",
        "RoleAliasName",
        "TokenExchangeRoleName",
        "DevicePolicyName",
        "ComponentName",
        "ComponentVersion",
        "AlertTopicArn",
        "OperationsTopicArn",
        "EvidenceBucketName",
        "TrainingDataBucketName",
        "ModelBucketName",
        "TrainingStateMachineArn",
        "InstallerCommand",
        "AlertTopicPattern",
        "TelemetryTopicPattern",
        "ProvisioningTemplateName",
        "ClaimPolicyName",
    }
    assert expected <= set(outputs)
    command = cfn.render(outputs["InstallerCommand"]["Value"])
    for value in (cfn.ref(stack.devices.thing_group), cfn.ref(stack.devices.policy), cfn.ref(stack.devices.role_alias)):
        assert value in command
    assert "--provision true" in command and f"--aws-region {stage.config.region}" in command
    assert outputs["AlertTopicPattern"]["Value"] == "vigil/<thing>/alerts"


def test_every_log_group_has_a_retention_and_every_function_logs_to_one(cfn, stage):
    groups = cfn.resources(stage.template_json, "AWS::Logs::LogGroup")
    assert groups
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == stage.config.log_retention_days, logical_id
    for logical_id, function in cfn.resources(stage.template_json, "AWS::Lambda::Function").items():
        assert function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups, logical_id


def test_roles_iot_assumes_are_bound_to_this_account_and_its_rules_or_templates(cfn, stage):
    """AWS IoT's confused-deputy guidance: a role IoT assumes (topic rule actions, fleet
    provisioning) should carry aws:SourceAccount and aws:SourceArn
    (https://docs.aws.amazon.com/iot/latest/developerguide/cross-service-confused-deputy-prevention.html)."""
    roles = cfn.resources(stage.template_json, "AWS::IAM::Role")
    iot_roles = {}
    for logical_id, role in roles.items():
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            if statement["Principal"].get("Service") == "iot.amazonaws.com":
                iot_roles[logical_id] = cfn.render(statement.get("Condition", {}))
    expected = {cfn.lid(stage.stage.stack.alerting.rule.node.scope.node.find_child("RuleRole")): "rule"}
    if stage.config.fleet_provisioning:
        expected[cfn.lid(stage.stage.stack.devices.node.find_child("ProvisioningRole"))] = "provisioningtemplate"
    assert set(iot_roles) == set(expected)
    for logical_id, resource_type in expected.items():
        condition = iot_roles[logical_id]
        assert condition["StringEquals"] == {"aws:SourceAccount": "<AWS::AccountId>"}, logical_id
        assert condition["ArnLike"] == {
            "aws:SourceArn": f"arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{resource_type}/*"
        }, logical_id
