"""The stage's model component (infra/model_component.py) as synthesized, its wiring into
the detector's recipe and the stage's deployment, and the hazard of issue 13: a
``cdk deploy`` after a promotion keeps the promoted model.

Recipe facts: component recipe reference ("Artifacts": Digest, Algorithm, Unarchive,
Permission; "ComponentDependencies"; "Recipe variables"),
https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import shutil
import zipfile
from pathlib import Path

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from moto import mock_aws

from edge_component.contracts.model_component import (
    BUNDLE_FILE,
    artifact_key,
    bundle_dir_variable,
    bundle_files,
    bundle_zip,
    model_component_name,
    model_dependency,
    next_version,
    promoted_version_parameter,
    seed_version,
)
from infra.edge_deployment import RECIPE_PATH, EdgeDeployment
from infra.housekeeping import HANDLER_DIR, MODEL_SEED_ARTIFACT_TYPE, PROMOTED_MODEL_VERSION_TYPE, Housekeeping
from infra.model_component import SEED_DIR, ModelComponent

from .conftest import copy_edge_package, new_stack, small_edge_deployment

_spec = importlib.util.spec_from_file_location("vigil_housekeeping_model", HANDLER_DIR / "handler.py")
handler = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(handler)

SEED_ZIP = bundle_zip(bundle_files(SEED_DIR))
SEED_SHA = hashlib.sha256(SEED_ZIP).hexdigest()
REGION = "eu-west-1"


def _model_recipe(cfn, stage) -> dict:
    return cfn.rendered_json(cfn.properties(stage.template_json, stage.stage.stack.model.component)["InlineRecipe"])


def _code_recipe(cfn, stage) -> dict:
    return cfn.rendered_json(cfn.properties(stage.template_json, stage.stage.stack.edge.component)["InlineRecipe"])


# --- the model component version ----------------------------------------------------------


def test_model_component_is_the_seed_bundle_with_its_digest_unpacked_as_a_zip(cfn, stage):
    model = stage.stage.stack.model
    recipe = _model_recipe(cfn, stage)
    name = model_component_name(stage.config.name)
    assert recipe["ComponentName"] == name == f"com.vigil.Model.{stage.config.name}"
    assert recipe["ComponentVersion"] == seed_version(SEED_SHA) == model.seed_version
    # The scored model's digest, for an operator's get-component (the edge checks the manifest's).
    scored = json.loads((SEED_DIR / "manifest.json").read_text())["model_file"]
    configuration = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert configuration["modelSha256"] == hashlib.sha256((SEED_DIR / scored).read_bytes()).hexdigest()
    (manifest,) = recipe["Manifests"]
    assert "Lifecycle" not in manifest, "the model component only delivers its artifact"
    (artifact,) = manifest["Artifacts"]
    # Digest: base64 SHA-256 of the file the nucleus downloads (recipe reference, "Artifacts").
    assert artifact["Digest"] == base64.b64encode(hashlib.sha256(SEED_ZIP).digest()).decode()
    assert (artifact["Algorithm"], artifact["Unarchive"]) == ("SHA-256", "ZIP")
    # The uploaded asset is byte for byte the zip the digest is of.
    assert stage.asset_path(f"asset.{model.asset.asset_hash}.zip").read_bytes() == SEED_ZIP
    with zipfile.ZipFile(stage.asset_path(f"asset.{model.asset.asset_hash}.zip")) as bundle:
        assert sorted(bundle.namelist()) == sorted(p.name for p in SEED_DIR.iterdir() if p.is_file())
        assert "manifest.json" in bundle.namelist()


def test_model_artifact_may_be_read_by_its_dependent(cfn, stage):
    """ "To read or run an artifact from a component dependency, that artifact's Read or
    Execute permission must be ALL" (recipe reference, "Recipe variables",
    ``component_dependency_name:artifacts:decompressedPath``)."""
    (artifact,) = _model_recipe(cfn, stage)["Manifests"][0]["Artifacts"]
    assert artifact["Permission"] == {"Read": "ALL", "Execute": "NONE"}


def test_model_artifact_is_the_seed_copied_to_a_key_named_model_bundle_zip(cfn, stage):
    """Greengrass unpacks an archive into a folder named after the artifact's file
    (recipe reference, "Unarchive"); a CDK asset is named by its hash, so the seed is
    copied to ``.../model-bundle.zip`` and unpacks to ``model-bundle/`` like the loop's."""
    stack, model = stage.stage.stack, stage.stage.stack.model
    (artifact,) = _model_recipe(cfn, stage)["Manifests"][0]["Artifacts"]
    assert artifact["URI"] == cfn.att(model.artifact, "Uri")
    copy = stage.template_json["Resources"][cfn.lid(model.artifact)]
    assert copy["Type"] == MODEL_SEED_ARTIFACT_TYPE
    props = cfn.render(copy["Properties"])
    assert props["Key"] == f"components/{model.component_name}/{model.seed_version}/{BUNDLE_FILE}"
    assert props["Bucket"] == cfn.ref(stack.training.model_bucket)
    assert props["SourceKey"] == f"{model.asset.asset_hash}.zip"
    assert props["SourceBucket"] == cfn.render(stack.resolve(model.asset.s3_bucket_name))


def test_the_seed_copy_lands_where_the_recipe_points(monkeypatch):
    """The copy custom resource against moto S3: the object at the recipe's key is the seed."""
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        s3c = boto3.client("s3", region_name=REGION)
        for bucket in ("assets", "models"):
            s3c.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3c.put_object(Bucket="assets", Key="abc123.zip", Body=SEED_ZIP)
        key = f"components/com.vigil.Model.dev/{seed_version(SEED_SHA)}/{BUNDLE_FILE}"
        props = {"SourceBucket": "assets", "SourceKey": "abc123.zip", "Bucket": "models", "Key": key}
        event = {"ResourceType": MODEL_SEED_ARTIFACT_TYPE, "RequestType": "Create", "ResourceProperties": props}
        clients = lambda service: boto3.client(service, region_name=REGION)  # noqa: E731
        assert handler.handle(event, clients) == (f"s3://models/{key}", {"Uri": f"s3://models/{key}"})
        assert s3c.get_object(Bucket="models", Key=key)["Body"].read() == SEED_ZIP
        handler.handle({**event, "RequestType": "Delete"}, clients)
        assert s3c.get_object(Bucket="models", Key=key)["Body"].read() == SEED_ZIP, "kept: a deployed artifact"


# --- the detector's recipe and the deployment -----------------------------------------------


def test_code_recipe_depends_hard_on_the_model_and_loads_its_bundle(cfn, stage):
    """HARD: "The component restarts if the dependency changes state"
    (https://docs.aws.amazon.com/greengrass/v2/APIReference/API_ComponentDependencyRequirement.html),
    so a new model version restarts the detector on it. A dependency's recipe variables
    resolve for direct dependencies only (recipe reference, "Recipe variables"); AWS's own
    detector sets its model dir the same way, in ``Lifecycle.setEnv`` from
    ``{<model store>:artifacts:decompressedPath}`` (awslabs/aws-greengrass-labs-ml-components,
    tflite/aws.greengrass.TensorFlowLiteObjectDetection/recipe.json)."""
    recipe = _code_recipe(cfn, stage)
    name = model_component_name(stage.config.name)
    # ...beside the token exchange service where the stage uploads snapshots (test_edge_deployment.py).
    assert recipe["ComponentDependencies"][name] == model_dependency(stage.config.name)[name]
    assert recipe["ComponentDependencies"][name]["DependencyType"] == "HARD"
    run = recipe["Manifests"][0]["Lifecycle"]["run"]
    assert run["Setenv"]["VIGIL_MODEL_DIR"] == bundle_dir_variable(stage.config.name)
    assert run["Setenv"]["VIGIL_MODEL_DIR"] == "{" + name + ":artifacts:decompressedPath}/model-bundle"
    assert '--model-dir "$VIGIL_MODEL_DIR"' in run["Script"]


def test_deployment_pins_the_model_at_the_promoted_version_custom_resource(cfn, stage):
    stack = stage.stage.stack
    components = cfn.properties(stage.template_json, stack.edge.deployment)["Components"]
    spec = components[model_component_name(stage.config.name)]
    # The custom resource's answer, never a literal (a literal would put the seed back).
    assert spec == {"ComponentVersion": {"Fn::GetAtt": [cfn.lid(stack.model.version), "Version"]}}
    resource = stage.template_json["Resources"][cfn.lid(stack.model.version)]
    assert resource["Type"] == PROMOTED_MODEL_VERSION_TYPE
    props = resource["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": [cfn.lid(stack.housekeeping.function), "Arn"]}
    assert props["ParameterName"] == promoted_version_parameter(stage.config.name)
    assert props["SeedVersion"] == {"Fn::GetAtt": [cfn.lid(stack.model.component), "ComponentVersion"]}
    assert len(props["DeploymentKey"]) == 64


def test_housekeeping_may_read_and_write_only_the_promoted_version_parameter(cfn, stage):
    statements = cfn.policy_statements(stage.template_json, stage.stage.stack.housekeeping.role)
    ssm = [s for s in statements if any(a.startswith("ssm:") for a in cfn.as_list(s["Action"]))]
    assert len(ssm) == 1
    assert sorted(cfn.as_list(ssm[0]["Action"])) == ["ssm:GetParameter", "ssm:PutParameter"]
    # The parameter's ARN drops the name's leading slash.
    assert ssm[0]["Resource"] == (
        f"arn:aws:ssm:{stage.config.region}:<AWS::AccountId>:parameter/vigil/{stage.config.name}/model/promoted-version"
    )


def test_token_exchange_role_may_read_the_model_artifact(cfn, stage):
    """The nucleus downloads S3 artifacts with the token exchange role's credentials and
    asks the bucket's region first (GetBucketLocation; aws-greengrass-nucleus
    componentmanager/builtins/S3Downloader.java, as in test_edge_deployment.py)."""
    stack, model = stage.stage.stack, stage.stage.stack.model
    statements = cfn.policy_statements(stage.template_json, stack.devices.token_exchange_role)
    bucket_arn = cfn.att(stack.training.model_bucket, "Arn")
    (read,) = [s for s in statements if s.get("Sid") == "ReadModelArtifacts"]
    # This component's versions, the seed's and the loop's (same key scheme), nothing else.
    prefix = f"components/{model.component_name}/"
    # ...and the loop's candidates: models/<job>/output/model-bundle.zip (lambda/vigil_loop/component.py).
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"] == [f"{bucket_arn}/{prefix}*", f"{bucket_arn}/models/*/{BUNDLE_FILE}"]
    assert model.artifact_key.startswith(prefix)
    assert artifact_key(stage.config.name, next_version([model.seed_version])).startswith(prefix)
    (locate,) = [s for s in statements if s.get("Sid") == "LocateModelBucket"]
    assert (locate["Action"], locate["Resource"]) == ("s3:GetBucketLocation", bucket_arn)


# --- the hazard: cdk deploy after a promotion keeps the promoted model -------------------------


def _stack(tmp_path: Path, package_dir: Path) -> tuple[cdk.Stack, ModelComponent, EdgeDeployment]:
    stack, role = new_stack(tmp_path, "Vigil", REGION)
    housekeeping = Housekeeping(stack, "Housekeeping", log_retention=logs.RetentionDays.ONE_WEEK)
    model = ModelComponent(
        stack,
        "Model",
        stage_name="dev",
        bucket=s3.Bucket(stack, "Models"),
        housekeeping=housekeeping,
        token_exchange_role=role,
    )
    edge = small_edge_deployment(
        stack, role, housekeeping, stage_name="dev", package_dir=package_dir, recipe_path=RECIPE_PATH, model=model
    )
    return stack, model, edge


def _version_resource(stack: cdk.Stack, model: ModelComponent) -> tuple[str, dict]:
    template = Template.from_stack(stack).to_json()
    lid = stack.get_logical_id(model.version.node.default_child)
    deployment = next(r for r in template["Resources"].values() if r["Type"] == "AWS::GreengrassV2::Deployment")
    # Whatever the synth, the deployment's model version is this resource's answer.
    assert deployment["Properties"]["Components"][model.component_name] == {
        "ComponentVersion": {"Fn::GetAtt": [lid, "Version"]}
    }
    return lid, template["Resources"][lid]["Properties"]


def test_cdk_deploy_after_a_promotion_keeps_the_promoted_model(tmp_path, monkeypatch):
    """Issue 13, "Never fight the CDK". CloudFormation sends a custom resource an Update
    only when its properties change, and otherwise reuses its last ``Version``
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-update.html).
    So: (1) a deploy that changes the deployment (new code) changes the resource's
    properties, and CloudFormation asks again; (2) asked on that Update, the handler
    answers with the promoted version, not the seed (handler cases also in
    tests/infra/test_housekeeping.py); (3) a deploy that changes nothing changes no
    property, so neither the resource nor the deployment is touched."""
    package = copy_edge_package(tmp_path)
    first_stack, model, first_edge = _stack(tmp_path, package)
    lid, first = _version_resource(first_stack, model)
    same_stack, same_model, _ = _stack(tmp_path, package)
    assert _version_resource(same_stack, same_model) == (lid, first), "no change, no Update"
    with (package / "decision.py").open("a") as f:
        f.write("\n# a code change after the promotion\n")
    second_stack, second_model, second_edge = _stack(tmp_path, package)
    assert second_edge.component_version != first_edge.component_version
    assert second_model.seed_version == model.seed_version, "a code change makes no new model version"
    second_lid, second = _version_resource(second_stack, second_model)
    assert second_lid == lid and second["ParameterName"] == first["ParameterName"]
    assert second["DeploymentKey"] != first["DeploymentKey"], "CloudFormation must send an Update"

    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        clients = lambda service: boto3.client(service, region_name=REGION)  # noqa: E731

        def event(request: str, props: dict, **extra) -> dict:
            # SeedVersion is the component's GetAtt; CloudFormation resolves it to the seed.
            resolved = {**props, "SeedVersion": model.seed_version}
            resolved.pop("ServiceToken")
            return {
                "ResourceType": PROMOTED_MODEL_VERSION_TYPE,
                "RequestType": request,
                "ResourceProperties": resolved,
                **extra,
            }

        name = first["ParameterName"]
        assert handler.handle(event("Create", first), clients) == (name, {"Version": model.seed_version})
        promoted = next_version([model.seed_version])  # what the loop writes on promotion
        clients("ssm").put_parameter(Name=name, Value=promoted, Type="String", Overwrite=True)
        update = event(
            "Update", second, PhysicalResourceId=name, OldResourceProperties=event("", first)["ResourceProperties"]
        )
        assert handler.handle(update, clients) == (name, {"Version": promoted})
        assert promoted != model.seed_version
        assert clients("ssm").get_parameter(Name=name)["Parameter"]["Value"] == promoted


def test_without_a_model_component_the_detector_loads_the_seed_in_its_own_artifact(tmp_path):
    """The GDK path and an EdgeDeployment without ``model``: the recipe's own default."""
    stack, role = new_stack(tmp_path, "Edge", REGION)
    edge = small_edge_deployment(
        stack, role, Housekeeping(stack, "Housekeeping", log_retention=logs.RetentionDays.ONE_WEEK)
    )
    assert "ComponentDependencies" not in edge.recipe
    run = edge.recipe["Manifests"][0]["Lifecycle"]["run"]
    assert run["Setenv"]["VIGIL_MODEL_DIR"] == edge.artifact_dir + "edge_component/models/seed"
    with zipfile.ZipFile(edge.artifact.path) as code:
        assert "edge_component/models/seed/manifest.json" in code.namelist()
    assert json.dumps(edge.recipe).count("vigil-edge/") == 0


def test_device_policy_names_the_model_component_beside_the_code(cfn, stage):
    """GetComponentVersionArtifact is checked against the component version's ARN
    (device-auth.html, "Minimal AWS IoT policy for AWS IoT Greengrass V2 core devices")."""
    document = cfn.render(cfn.properties(stage.template_json, stage.stage.stack.devices.policy)["PolicyDocument"])
    (statement,) = [s for s in document["Statement"] if s.get("Sid") == "ComponentArtifacts"]
    name = model_component_name(stage.config.name)
    assert any(r.endswith(f":components:{name}:versions:*") for r in statement["Resource"])


def test_artifact_key_names_every_version_model_bundle_zip():
    assert artifact_key("dev", "1.2.0") == "components/com.vigil.Model.dev/1.2.0/model-bundle.zip"
    with pytest.raises(ValueError, match="major.minor.patch"):
        artifact_key("dev", "latest")
    with pytest.raises(ValueError, match="stage name"):
        artifact_key("a.b", "1.0.0")


def test_a_changed_seed_makes_a_new_model_version_at_a_new_key(tmp_path):
    """Same bundle, same version and key (nothing replaced on redeploy); a changed bundle
    gives another, and the version resource's SeedVersion follows it (the handler then
    replaces an older seed in the parameter: tests/infra/test_housekeeping.py)."""
    seed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, seed)

    def build(n: int, seed_dir: Path = seed) -> ModelComponent:
        app = cdk.App(outdir=str(tmp_path / f"out-{n}"))
        stack = cdk.Stack(app, "Vigil", env=cdk.Environment(region=REGION))
        role = iam.Role(stack, "Tes", assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"))
        return ModelComponent(
            stack,
            "Model",
            stage_name="dev",
            bucket=s3.Bucket(stack, "Models"),
            housekeeping=Housekeeping(stack, "Housekeeping", log_retention=logs.RetentionDays.ONE_WEEK),
            token_exchange_role=role,
            seed_dir=seed_dir,
        )

    first, again = build(0), build(1)
    assert (first.seed_version, first.artifact_key) == (again.seed_version, again.artifact_key)
    assert first.seed_version == seed_version(SEED_SHA)
    manifest = json.loads((seed / "manifest.json").read_text())
    (seed / "manifest.json").write_text(json.dumps({**manifest, "note": "retrained"}))
    changed = build(2)
    assert changed.seed_version != first.seed_version and changed.artifact_key != first.artifact_key
    (bad := tmp_path / "bad").mkdir()
    (bad / "model.tflite").write_bytes(b"x")
    with pytest.raises(ValueError, match="manifest.json"):
        build(3, bad)
