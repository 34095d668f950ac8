"""infra/stage.py: the stack's outputs tell an installer what it needs, and every log group has a retention."""

from __future__ import annotations

import json


def test_outputs_tell_an_installer_what_it_needs(cfn, stage):
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
        "InstallerUrl",
        "InitConfig",
        "AlertTopicPattern",
        "TelemetryTopicPattern",
        "ProvisioningTemplateName",
        "ClaimPolicyName",
    }
    assert expected <= set(outputs)
    assert outputs["AlertTopicPattern"]["Value"] == "vigil/<thing>/alerts"


def test_installer_provisions_nothing_the_stack_owns(cfn, stage):
    """With --provision true the installer attaches its own IoT policy to the certificate
    and creates and attaches an IAM policy ``<tesRoleName>Access`` to the stack's token
    exchange role, which then fails the stack's delete (aws-greengrass/aws-greengrass-nucleus
    src/main/java/com/aws/greengrass/easysetup/DeviceProvisioningHelper.java). The output
    installs from an --init-config instead, as the manual installation does
    (https://docs.aws.amazon.com/greengrass/v2/developerguide/manual-installation.html)."""
    outputs = stage.template_json["Outputs"]
    command = outputs["InstallerCommand"]["Value"]
    assert "--provision true" not in command and "--provision false" in command
    assert "--init-config ./config.yaml" in command and "--setup-system-service true" in command
    for flag in ("--thing-policy-name", "--tes-role-name", "--thing-group-name"):
        assert flag not in command
    config = cfn.rendered_json(outputs["InitConfig"]["Value"])
    nucleus = config["services"]["aws.greengrass.Nucleus"]
    assert nucleus["componentType"] == "NUCLEUS"
    assert nucleus["configuration"]["iotRoleAlias"] == cfn.ref(stage.stage.stack.devices.role_alias)
    assert nucleus["configuration"]["awsRegion"] == stage.config.region
    assert set(config["system"]) == {"certificateFilePath", "privateKeyPath", "rootCaPath", "rootpath", "thingName"}


def test_the_installer_is_the_nucleus_version_the_deployment_pins(cfn, stage):
    """A deployment that names a nucleus version installs it, and a version change
    restarts the core (https://docs.aws.amazon.com/greengrass/v2/developerguide/update-greengrass-core-v2.html):
    an installer newer than the pin would be downgraded and restarted by the first
    deployment. The installer URL, the init config and the deployment carry one version."""
    pin = stage.config.greengrass.nucleus_version
    outputs = stage.template_json["Outputs"]
    assert outputs["InstallerUrl"]["Value"] == f"https://d2s8p88vqu9w66.cloudfront.net/releases/greengrass-{pin}.zip"
    config = cfn.rendered_json(outputs["InitConfig"]["Value"])
    assert config["services"]["aws.greengrass.Nucleus"]["version"] == pin
    components = cfn.properties(stage.template_json, stage.stage.stack.edge.deployment)["Components"]
    assert components["aws.greengrass.Nucleus"]["ComponentVersion"] == pin
    assert components["aws.greengrass.LogManager"]["ComponentVersion"] == stage.config.greengrass.log_manager_version


def test_redeploy_after_destroy_finds_no_fixed_name_resource_in_its_way(cfn, stage):
    """A retained fixed-name log group, or one a device's LogManager created first, fails
    the next deploy with "already exists" (AWS::Logs::LogGroup); the Greengrass groups are
    adopted by a custom resource instead. Every other log group has a generated name."""
    for logical_id, group in cfn.resources(stage.template_json, "AWS::Logs::LogGroup").items():
        name = group["Properties"].get("LogGroupName")
        # A name is allowed only with the stack's id in it (new on every create).
        assert name is None or "AWS::StackId" in json.dumps(name), logical_id
    names = [
        g["Properties"]["LogGroupName"] for g in cfn.resources(stage.template_json, "Custom::VigilLogGroup").values()
    ]
    assert f"/aws/greengrass/UserComponent/{stage.config.region}/com.vigil.EdgeDetector.{stage.config.name}" in names


def test_destroy_detaches_the_stages_policies_and_things_from_certificates_first(cfn, stage):
    """IoT refuses DeletePolicy on a policy still attached to a certificate
    (DeleteConflictException: https://docs.aws.amazon.com/iot/latest/apireference/API_DeletePolicy.html),
    and certificates attached by fleet provisioning or by hand are not in the stack. The
    policies are retained by CloudFormation and deleted by the cleanup resource after it
    detached them (tests/infra/test_housekeeping.py runs that against moto)."""
    stack = stage.stage.stack
    devices = stack.devices
    policies = [p for p in (devices.policy, devices.claim_policy) if p is not None]
    for policy in policies:
        assert stage.template_json["Resources"][cfn.lid(policy)]["DeletionPolicy"] == "Retain"
    (cleanup,) = cfn.resources(stage.template_json, "Custom::VigilPolicyCleanup").values()
    assert cleanup["Properties"]["PolicyNames"] == [{"Ref": cfn.lid(p)} for p in policies]
    assert cleanup["Properties"]["ThingNames"] == [{"Ref": cfn.lid(t)} for t in devices.things.values()]
    statements = cfn.policy_statements(stage.template_json, stack.housekeeping.role)
    policy_arns = {f"arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:policy/{cfn.ref(p)}" for p in policies}
    for action in ("iot:ListTargetsForPolicy", "iot:DeletePolicy", "iot:DeletePolicyVersion"):
        (allowed,) = cfn.statements_allowing(statements, action)
        assert set(cfn.as_list(allowed["Resource"])) == policy_arns, action


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
    expected = {
        cfn.lid(stage.stage.stack.alerting.rule.node.scope.node.find_child("RuleRole")): "rule",
        cfn.lid(stage.stage.stack.health.rule_role): "rule",  # the telemetry rule's error action
    }
    if stage.config.fleet_provisioning:
        expected[cfn.lid(stage.stage.stack.devices.node.find_child("ProvisioningRole"))] = "provisioningtemplate"
    assert set(iot_roles) == set(expected)
    for logical_id, resource_type in expected.items():
        condition = iot_roles[logical_id]
        assert condition["StringEquals"] == {"aws:SourceAccount": "<AWS::AccountId>"}, logical_id
        assert condition["ArnLike"] == {
            "aws:SourceArn": f"arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{resource_type}/*"
        }, logical_id
