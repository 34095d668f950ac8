"""Step 0, current: the promoted version (SSM, moto) -> its recipe (Greengrass v2
GetComponent behind botocore's Stubber, which validates the request against the service
model) -> the bundle zip's S3 URI for the training job's ``current`` channel.

GetComponent returns the recipe as a blob (bytes) in the format asked for with
``recipeOutputFormat`` (JSON | YAML), for a component version ARN
``arn:aws:greengrass:<region>:<account>:components:<name>:versions:<version>``
(https://docs.aws.amazon.com/greengrass/v2/APIReference/API_GetComponent.html).
"""

from __future__ import annotations

import json

import boto3
import pytest
from vigil_loop import handlers
from vigil_loop.current import CurrentModelError, current_model

from edge_component.contracts.model_component import artifact_key, model_recipe, promoted_version_parameter

REGION = "us-east-1"
ACCOUNT = "123456789012"
COMPONENT_ARN = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.vigil.Model.dev"
PARAMETER = promoted_version_parameter("dev")
SEED_URI = f"s3://vigil-models/{artifact_key('dev', '1.0.7')}"
LOOP_URI = "s3://vigil-models/models/vigil-dev-1/output/model-bundle.zip"


def _recipe(version: str, uri: str) -> bytes:
    return json.dumps(model_recipe("dev", version, uri, "ab" * 32, model_sha256="cd" * 32)).encode()


def _expect(stub, version: str, uri: str) -> None:
    stub.add_response(
        "get_component",
        {"recipeOutputFormat": "JSON", "recipe": _recipe(version, uri)},
        {"arn": f"{COMPONENT_ARN}:versions:{version}", "recipeOutputFormat": "JSON"},
    )


@pytest.mark.parametrize(("version", "uri"), [("1.0.7", SEED_URI), ("1.0.8", LOOP_URI)])
def test_the_promoted_versions_bundle_uri(aws, stubbed, version, uri):
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PARAMETER, Value=version, Type="String")
    greengrass, stub = stubbed("greengrassv2")
    _expect(stub, version, uri)
    assert current_model(ssm, greengrass, PARAMETER, COMPONENT_ARN) == {
        "current_model_uri": uri,
        "current_version": version,
    }


def test_no_promoted_version_parameter_is_a_clear_error(aws, stubbed):
    ssm = boto3.client("ssm", region_name=REGION)
    greengrass, _ = stubbed("greengrassv2")  # never called
    with pytest.raises(CurrentModelError, match=r"/vigil/dev/model/promoted-version does not exist.*deploy"):
        current_model(ssm, greengrass, PARAMETER, COMPONENT_ARN)


def test_a_version_greengrass_does_not_have_is_a_clear_error(aws, stubbed):
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PARAMETER, Value="1.0.9", Type="String")
    greengrass, stub = stubbed("greengrassv2")
    stub.add_client_error("get_component", service_error_code="ResourceNotFoundException", http_status_code=404)
    with pytest.raises(CurrentModelError, match=r"version 1\.0\.9, which Greengrass does not have"):
        current_model(ssm, greengrass, PARAMETER, COMPONENT_ARN)


def test_a_recipe_without_a_bundle_artifact_is_a_clear_error(aws, stubbed):
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PARAMETER, Value="1.0.7", Type="String")
    greengrass, stub = stubbed("greengrassv2")
    _expect(stub, "1.0.7", "s3://vigil-models/components/other.tar.gz")
    with pytest.raises(CurrentModelError, match="expected one s3://.../model-bundle.zip artifact"):
        current_model(ssm, greengrass, PARAMETER, COMPONENT_ARN)


def test_the_handler_reads_the_stages_parameter_and_component(aws, stubbed, monkeypatch, context):
    monkeypatch.setenv("VIGIL_STAGE", "dev")
    monkeypatch.setenv("PROMOTED_VERSION_PARAMETER", PARAMETER)
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAMETER, Value="1.0.7", Type="String")
    greengrass, stub = stubbed("greengrassv2")
    _expect(stub, "1.0.7", SEED_URI)
    real = handlers._client
    monkeypatch.setattr(handlers, "_client", lambda name: greengrass if name == "greengrassv2" else real(name))
    assert handlers.current_handler({}, context) == {"current_model_uri": SEED_URI, "current_version": "1.0.7"}
