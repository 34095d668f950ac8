"""infra/housekeeping/handler.py against moto (and botocore's Stubber where moto cannot
produce the error): log groups adopted, policies and things cleared of certificates."""

from __future__ import annotations

import importlib.util
import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.housekeeping import HANDLER_DIR

_spec = importlib.util.spec_from_file_location("vigil_housekeeping", HANDLER_DIR / "handler.py")
housekeeping = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(housekeeping)

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def _event(kind: str, request: str, **props) -> dict:
    return {"ResourceType": kind, "RequestType": request, "ResourceProperties": props}


def test_a_log_group_that_already_exists_is_adopted_with_the_stacks_retention(aws):
    logs = aws("logs")
    name = "/aws/greengrass/GreengrassSystemComponent/eu-west-1/System"
    logs.create_log_group(logGroupName=name)  # a device's LogManager got there first
    props = {"LogGroupName": name, "RetentionInDays": "14", "DeleteOnStackDelete": "false"}
    assert housekeeping.handle(_event("Custom::VigilLogGroup", "Create", **props), aws) == (name, {})
    (group,) = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert group["retentionInDays"] == 14
    housekeeping.handle(_event("Custom::VigilLogGroup", "Delete", **props), aws)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"], "kept: the stage retains data"
    housekeeping.handle(_event("Custom::VigilLogGroup", "Create", **props), aws)  # the redeploy
    housekeeping.handle(_event("Custom::VigilLogGroup", "Delete", **{**props, "DeleteOnStackDelete": "true"}), aws)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    housekeeping.handle(_event("Custom::VigilLogGroup", "Delete", **{**props, "DeleteOnStackDelete": "true"}), aws)


def test_stack_delete_detaches_certificates_then_deletes_the_policy(aws):
    iot = aws("iot")
    iot.create_thing(thingName="vigil-dev-cam-01")
    iot.create_policy(policyName="device", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    certs = [iot.create_keys_and_certificate(setAsActive=True)["certificateArn"] for _ in range(2)]
    for cert in certs:
        iot.attach_policy(policyName="device", target=cert)  # by fleet provisioning or by hand
    iot.attach_thing_principal(thingName="vigil-dev-cam-01", principal=certs[0])
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_policy(policyName="device")  # what CloudFormation would hit

    event = _event("Custom::VigilPolicyCleanup", "Delete", PolicyNames=["device"], ThingNames=["vigil-dev-cam-01"])
    physical_id, data = housekeeping.handle(event, aws)

    assert physical_id == "policies:device"
    assert sorted(json.loads(data["Detached"])["device"]) == sorted(certs)
    assert iot.list_policies()["policies"] == []
    assert iot.list_thing_principals(thingName="vigil-dev-cam-01")["principals"] == []
    iot.delete_thing(thingName="vigil-dev-cam-01")  # what CloudFormation does next
    # A second delete (CloudFormation retries) finds nothing and succeeds.
    assert housekeeping.handle(event, aws)[0] == "policies:device"
    # Create and Update change nothing.
    iot.create_policy(policyName="device", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    housekeeping.handle(_event("Custom::VigilPolicyCleanup", "Create", PolicyNames=["device"]), aws)
    assert len(iot.list_policies()["policies"]) == 1


def test_a_policy_still_settling_after_detach_is_retried_until_it_can_be_deleted():
    # "it can take up to five minutes after a policy is detached before it's ready to be
    # deleted" (https://docs.aws.amazon.com/iot/latest/apireference/API_DetachPolicy.html).
    iot = boto3.client("iot", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")
    stubber = Stubber(iot)
    stubber.add_response("list_targets_for_policy", {"targets": []}, {"policyName": "device"})
    stubber.add_response("list_policy_versions", {"policyVersions": [{"versionId": "2", "isDefaultVersion": True}]})
    for _ in range(2):
        stubber.add_client_error("delete_policy", "DeleteConflictException", http_status_code=409)
    stubber.add_response("delete_policy", {}, {"policyName": "device"})
    slept = []
    with stubber:
        assert housekeeping.delete_policy(iot, "device", wait_s=60, every_s=15, sleep=slept.append) == []
    stubber.assert_no_pending_responses()
    assert slept == [15, 15]
    stubber = Stubber(iot)
    stubber.add_response("list_targets_for_policy", {"targets": []}, {"policyName": "device"})
    stubber.add_response("list_policy_versions", {"policyVersions": []})
    for _ in range(3):
        stubber.add_client_error("delete_policy", "DeleteConflictException", http_status_code=409)
    with stubber, pytest.raises(iot.exceptions.DeleteConflictException):
        housekeeping.delete_policy(iot, "device", wait_s=30, every_s=15, sleep=lambda s: None)


# The model loop writes /vigil/<stage>/model/promoted-version on promotion; a later
# cdk deploy must deploy that version, not the seed (issue 13, "Never fight the CDK").
PARAMETER = "/vigil/dev/model/promoted-version"


def _version_event(request: str, seed: str) -> dict:
    return _event("Custom::VigilPromotedModelVersion", request, ParameterName=PARAMETER, SeedVersion=seed)


def test_first_deploy_writes_the_seed_model_version_and_returns_it(aws):
    assert housekeeping.handle(_version_event("Create", "1.0.60220746"), aws) == (
        PARAMETER,
        {"Version": "1.0.60220746"},
    )
    parameter = aws("ssm").get_parameter(Name=PARAMETER)["Parameter"]
    assert (parameter["Value"], parameter["Type"]) == ("1.0.60220746", "String")


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_a_promoted_model_version_survives_a_redeploy_with_another_seed(aws, request_type):
    ssm = aws("ssm")
    ssm.put_parameter(Name=PARAMETER, Value="1.3.0", Type="String")  # what the loop promoted
    assert housekeeping.handle(_version_event(request_type, "1.0.99"), aws) == (PARAMETER, {"Version": "1.3.0"})
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == "1.3.0"
    housekeeping.handle(_version_event("Delete", "1.0.99"), aws)
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == "1.3.0", "the loop's parameter is kept"


def test_a_promotion_racing_the_first_deploy_wins(aws):
    ssm = aws("ssm")
    with Stubber(ssm) as stub:
        stub.add_client_error("get_parameter", "ParameterNotFound")
        stub.add_client_error("put_parameter", "ParameterAlreadyExists")
        stub.add_response("get_parameter", {"Parameter": {"Name": PARAMETER, "Value": "1.1.0", "Type": "String"}})
        assert housekeeping.promoted_version(ssm, PARAMETER, "1.0.5") == "1.1.0"
        stub.assert_no_pending_responses()


def test_a_new_seed_replaces_an_older_seed_but_never_a_promoted_version(aws):
    """Until the loop promotes a model the stage runs the stack's seed: a changed seed bundle
    makes a new seed version and CloudFormation deletes the old one (its component version
    is replaced), so the parameter must follow; a promoted ``1.<minor>=1..>.0`` never does."""
    ssm = aws("ssm")
    housekeeping.handle(_version_event("Create", "1.0.5"), aws)
    assert housekeeping.handle(_version_event("Update", "1.0.77"), aws) == (PARAMETER, {"Version": "1.0.77"})
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == "1.0.77"
    ssm.put_parameter(Name=PARAMETER, Value="1.1.0", Type="String", Overwrite=True)  # promoted
    assert housekeeping.handle(_version_event("Update", "1.0.99"), aws) == (PARAMETER, {"Version": "1.1.0"})
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == "1.1.0"


def test_seed_and_loop_versions_of_the_contract_are_told_apart():
    from edge_component.contracts.model_component import next_version, seed_version

    seed = seed_version("f" * 64)
    assert housekeeping.is_seed_version(seed) and housekeeping.is_seed_version(seed_version("0" * 64))
    assert not housekeeping.is_seed_version(next_version([seed]))
    assert not housekeeping.is_seed_version(next_version(["1.4.0", seed]))
    assert not housekeeping.is_seed_version("garbage")
