"""Edge deployment: the recipe as synthesized, digests, content versions and the deployment's settings."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from edge_component.config import EvidenceSettings
from edge_component.contracts.model_component import bundle_dir_variable, model_component_name
from edge_component.contracts.topics import (
    ALERT_CHANNEL,
    TELEMETRY_CHANNEL,
    topic_template,
)
from infra.edge_deployment import (
    RECIPE_PATH,
    TOKEN_EXCHANGE_SERVICE,
    EdgeDeployment,
    component_name,
    token_exchange_dependency,
)
from infra.housekeeping import Housekeeping

from .conftest import copy_edge_package, new_stack, small_edge_deployment

SOURCE_RECIPE = yaml.safe_load(RECIPE_PATH.read_text())


def _recipe(cfn, stage) -> dict:
    return cfn.rendered_json(cfn.properties(stage.template_json, stage.stage.stack.edge.component)["InlineRecipe"])


def test_recipe_is_the_source_recipe_with_stage_name_version_and_artifact(cfn, stage):
    recipe = _recipe(cfn, stage)
    assert recipe["ComponentName"] == component_name(stage.config.name) == f"com.vigil.EdgeDetector.{stage.config.name}"
    major, minor, patch = (int(p) for p in recipe["ComponentVersion"].split("."))
    assert (major, minor) == (1, 0) and 0 <= patch < 2**31
    assert recipe["ComponentVersion"] == stage.stage.stack.edge.component_version
    for key in ("RecipeFormatVersion", "ComponentConfiguration", "ComponentPublisher"):
        assert recipe[key] == SOURCE_RECIPE[key]
    # The lifecycle is the source's, with only the artifact folder renamed (see the next test).
    folder = "{artifacts:decompressedPath}/" + stage.stage.stack.edge.asset.asset_hash + "/"
    source = json.loads(
        json.dumps(SOURCE_RECIPE["Manifests"][0]["Lifecycle"]).replace(
            "{artifacts:decompressedPath}/vigil-edge/", folder
        )
    )
    # ...and the model bundle from the stage's model component (tests/infra/test_model_component.py).
    source["run"]["Setenv"]["VIGIL_MODEL_DIR"] = bundle_dir_variable(stage.config.name)
    assert recipe["Manifests"][0]["Lifecycle"] == source


def test_recipe_access_control_uses_the_topic_contract(cfn, stage):
    policies = _recipe(cfn, stage)["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"][
        "aws.greengrass.ipc.mqttproxy"
    ]
    resources_ = [r for p in policies.values() for r in p["resources"]]
    assert sorted(resources_) == sorted(
        topic_template("{iot:thingName}", c) for c in (ALERT_CHANNEL, TELEMETRY_CHANNEL)
    )


def test_artifact_uri_and_digest_match_the_uploaded_zip(cfn, stage):
    (artifact,) = _recipe(cfn, stage)["Manifests"][0]["Artifacts"]
    asset_hash = stage.stage.stack.edge.asset.asset_hash
    assert artifact["URI"].startswith("s3://cdk-") and artifact["URI"].endswith(f"/{asset_hash}.zip")
    assert artifact["Algorithm"] == "SHA-256" and artifact["Unarchive"] == "ZIP"
    staged = stage.asset_path(f"asset.{asset_hash}.zip")
    assert artifact["Digest"] == base64.b64encode(hashlib.sha256(staged.read_bytes()).digest()).decode()


def test_recipe_runs_the_package_from_the_folder_greengrass_unpacks_the_artifact_into(cfn, stage):
    recipe = _recipe(cfn, stage)
    asset_hash = stage.stage.stack.edge.asset.asset_hash
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    # Greengrass unpacks s3://.../<hash>.zip into {artifacts:decompressedPath}/<hash>/
    unpacked = "{artifacts:decompressedPath}/" + asset_hash + "/"
    assert "vigil-edge/" not in json.dumps(lifecycle)
    assert f"-r {unpacked}edge_component/requirements.txt" in lifecycle["install"]["Script"]
    assert lifecycle["run"]["Script"].startswith(f"cd {unpacked} && ")
    assert "-m edge_component run --greengrass" in lifecycle["run"]["Script"]
    assert '--model-dir "$VIGIL_MODEL_DIR" ' in lifecycle["run"]["Script"]
    names = set(zipfile.ZipFile(stage.asset_path(f"asset.{asset_hash}.zip")).namelist())
    assert {"edge_component/requirements.txt", "edge_component/models/seed/manifest.json"} <= names


def test_artifact_holds_the_package_without_tests_or_bytecode(stage):
    staged = stage.asset_path(f"asset.{stage.stage.stack.edge.asset.asset_hash}.zip")
    names = zipfile.ZipFile(staged).namelist()
    assert "edge_component/__main__.py" in names
    assert "edge_component/contracts/topics.py" in names
    assert "edge_component/requirements.txt" in names
    assert "edge_component/models/seed/model.tflite" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    assert names == sorted(names)
    assert {i.date_time for i in zipfile.ZipFile(staged).infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_deployment_targets_the_group_with_rollback_and_rollout(cfn, stage):
    stack, config = stage.stage.stack, stage.config
    deployment = cfn.properties(stage.template_json, stack.edge.deployment)
    assert deployment["TargetArn"] == {"Fn::GetAtt": [cfn.lid(stack.devices.thing_group), "Arn"]}
    assert deployment["DeploymentPolicies"]["FailureHandlingPolicy"] == "ROLLBACK"
    job = deployment["IotJobConfiguration"]
    rate = job["JobExecutionsRolloutConfig"]
    assert rate["MaximumPerMinute"] == config.rollout.maximum_per_minute
    assert rate["ExponentialRate"] == {
        "BaseRatePerMinute": config.rollout.base_rate_per_minute,
        "IncrementFactor": config.rollout.increment_factor,
        "RateIncreaseCriteria": {"NumberOfSucceededThings": config.rollout.rate_increase_after_succeeded},
    }
    criteria = job["AbortConfig"]["CriteriaList"]
    assert {c["FailureType"] for c in criteria} == {"FAILED", "TIMED_OUT"}
    for c in criteria:
        assert c["Action"] == "CANCEL"
        assert c["ThresholdPercentage"] == config.rollout.abort_threshold_percentage
        assert c["MinNumberOfExecutedThings"] == config.rollout.abort_min_executed_things
    assert job["TimeoutConfig"] == {"InProgressTimeoutInMinutes": config.rollout.in_progress_timeout_minutes}


def test_deployment_components_and_configuration(cfn, stage):
    stack, config = stage.stage.stack, stage.config
    components = cfn.properties(stage.template_json, stack.edge.deployment)["Components"]
    name = component_name(config.name)
    assert set(components) == {
        name,
        model_component_name(config.name),
        "aws.greengrass.Nucleus",
        "aws.greengrass.LogManager",
    }
    ours = components[name]
    assert ours["ComponentVersion"] == {"Fn::GetAtt": [cfn.lid(stack.edge.component), "ComponentVersion"]}
    merge, reset = config.edge.configuration_update()
    # The evidence settings (test_evidence_settings_and_token_exchange_follow_the_stage) aside.
    merged = cfn.rendered_json(ours["ConfigurationUpdate"]["Merge"])
    merged.pop("evidence", None)
    assert merged == merge
    assert [p for p in ours["ConfigurationUpdate"].get("Reset", []) if p != "/evidence"] == reset
    # The keys the stage merges exist in the recipe's defaults (same names, same nesting).
    defaults = SOURCE_RECIPE["ComponentConfiguration"]["DefaultConfiguration"]
    assert set(merge["decision"]) <= set(defaults["decision"]) and "detection_fps" in defaults
    nucleus = components["aws.greengrass.Nucleus"]
    assert nucleus["ComponentVersion"] == config.greengrass.nucleus_version
    assert json.loads(nucleus["ConfigurationUpdate"]["Merge"]) == {"interpolateComponentConfiguration": True}
    log_manager = json.loads(components["aws.greengrass.LogManager"]["ConfigurationUpdate"]["Merge"])
    uploader = log_manager["logsUploaderConfiguration"]
    assert uploader["systemLogsConfiguration"]["uploadToCloudWatch"] == "true"
    assert name in uploader["componentLogsConfigurationMap"]


def test_evidence_settings_and_token_exchange_follow_the_stage(cfn, stage):
    """Uploads on (dev): the component gets the keys edge_component/config.py's
    EvidenceSettings reads, naming the stage's evidence bucket, and the recipe a HARD
    dependency on the token exchange service, which sets AWS_CONTAINER_CREDENTIALS_FULL_URI
    for the component, where boto3 finds its credentials ("Token exchange service":
    https://docs.aws.amazon.com/greengrass/v2/developerguide/token-exchange-service-component.html).
    Off (prod): neither, and /evidence is reset so a device keeps no earlier settings."""
    stack, config = stage.stage.stack, stage.config
    ours = cfn.properties(stage.template_json, stack.edge.deployment)["Components"][component_name(config.name)]
    merged = cfn.rendered_json(ours["ConfigurationUpdate"]["Merge"])
    dependencies = _recipe(cfn, stage).get("ComponentDependencies", {})
    reset = ours["ConfigurationUpdate"].get("Reset", [])
    if config.evidence.upload_snapshots:
        evidence = merged["evidence"]
        assert evidence == {
            "upload_snapshots": True,
            "bucket": cfn.ref(stack.storage.evidence),
            "region": config.region,
        }
        assert EvidenceSettings.model_validate({**evidence, "bucket": "vigil-dev-evidence"}).upload_snapshots
        assert dependencies[TOKEN_EXCHANGE_SERVICE] == {"VersionRequirement": "^2.0.0", "DependencyType": "HARD"}
        assert "/evidence" not in reset
    else:
        assert "evidence" not in merged
        assert TOKEN_EXCHANGE_SERVICE not in dependencies
        assert "/evidence" in reset


def test_dev_uploads_snapshots_and_prod_does_not(synthesized):
    """Pictures are personal data: uploads are opt-in per stage, and prod has them off."""
    assert synthesized["dev"].config.evidence.upload_snapshots is True
    assert synthesized["prod"].config.evidence.upload_snapshots is False


def test_evidence_bucket_puts_upload_settings_in_a_standalone_deployment(cfn, tmp_path, sources):
    package, recipe = sources
    off = _edge(tmp_path, package, recipe)
    on = _edge(tmp_path, package, recipe, evidence=True)
    assert TOKEN_EXCHANGE_SERVICE not in (off.recipe.get("ComponentDependencies") or {})
    assert on.recipe["ComponentDependencies"] == token_exchange_dependency()
    assert on.component_version != off.component_version, "the dependency is part of the content"
    template = Template.from_stack(cdk.Stack.of(on)).to_json()
    update = template["Resources"][cfn.lid(on.deployment)]["Properties"]["Components"][on.component_name]
    merged = cfn.rendered_json(update["ConfigurationUpdate"]["Merge"])
    assert merged["evidence"] == {
        "upload_snapshots": True,
        "bucket": cfn.ref(on.evidence_bucket),
        "region": "eu-west-1",
    }


def test_component_log_groups_have_retention(cfn, stage):
    groups = {
        g["Properties"]["LogGroupName"]: g["Properties"].get("RetentionInDays")
        for g in cfn.resources(stage.template_json, "Custom::VigilLogGroup").values()
    }
    region = stage.config.region
    user = f"/aws/greengrass/UserComponent/{region}/{component_name(stage.config.name)}"
    system = f"/aws/greengrass/GreengrassSystemComponent/{region}/System"
    assert groups[user] == stage.config.log_retention_days
    assert (system in groups) == stage.config.greengrass.manage_system_log_group


def test_only_one_stage_per_region_owns_the_system_log_group(synthesized):
    owners = {}
    for name, synth in synthesized.items():
        if synth.config.greengrass.manage_system_log_group:
            owners.setdefault((synth.config.account, synth.config.region), []).append(name)
    assert all(len(stages) == 1 for stages in owners.values()), owners


# --- content-derived versions ---------------------------------------------------------


def _edge(tmp_path: Path, package_dir: Path, recipe_path: Path, *, evidence: bool = False) -> EdgeDeployment:
    stack, role = new_stack(tmp_path, "Edge")
    housekeeping = Housekeeping(stack, "Housekeeping", log_retention=logs.RetentionDays.ONE_WEEK)
    return small_edge_deployment(
        stack,
        role,
        housekeeping,
        package_dir=package_dir,
        recipe_path=recipe_path,
        evidence_bucket=s3.Bucket(stack, "Evidence") if evidence else None,
    )


@pytest.fixture()
def sources(tmp_path) -> tuple[Path, Path]:
    package = copy_edge_package(tmp_path)
    recipe = tmp_path / "src" / "recipe.yaml"
    shutil.copy(RECIPE_PATH, recipe)
    return package, recipe


def _identity(edge: EdgeDeployment) -> tuple[str, str, str]:
    return edge.component_version, edge.asset.asset_hash, edge.artifact.sha256_b64


def test_unchanged_content_keeps_version_asset_and_digest(tmp_path, sources):
    package, recipe = sources
    first = _identity(_edge(tmp_path, package, recipe))
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "junk.cpython-311.pyc").write_bytes(b"\0")
    (package / "tests").mkdir(exist_ok=True)
    (package / "tests" / "test_x.py").write_text("assert True\n")
    for path in package.rglob("*.py"):
        path.touch()  # new mtimes only
    assert _identity(_edge(tmp_path, package, recipe)) == first


def test_changed_artifact_makes_a_new_version(tmp_path, sources):
    package, recipe = sources
    version, asset_hash, digest = _identity(_edge(tmp_path, package, recipe))
    with (package / "decision.py").open("a") as f:
        f.write("\n# changed\n")
    new_version, new_hash, new_digest = _identity(_edge(tmp_path, package, recipe))
    assert new_version != version and new_hash != asset_hash and new_digest != digest


def test_changed_recipe_makes_a_new_version_with_the_same_artifact(tmp_path, sources):
    package, recipe = sources
    version, asset_hash, digest = _identity(_edge(tmp_path, package, recipe))
    data = yaml.safe_load(recipe.read_text())
    data["ComponentConfiguration"]["DefaultConfiguration"]["detection_fps"] = 7
    recipe.write_text(yaml.safe_dump(data))
    new_version, new_hash, new_digest = _identity(_edge(tmp_path, package, recipe))
    assert new_version != version
    assert (new_hash, new_digest) == (asset_hash, digest)


def test_deployment_follows_the_component_version(cfn, tmp_path, sources):
    package, recipe = sources
    edge = _edge(tmp_path, package, recipe)
    template = Template.from_stack(cdk.Stack.of(edge)).to_json()
    component = template["Resources"][cfn.lid(edge.component)]
    assert cfn.rendered_json(component["Properties"]["InlineRecipe"])["ComponentVersion"] == edge.component_version
    deployment = template["Resources"][cfn.lid(edge.deployment)]["Properties"]
    assert deployment["Components"][edge.component_name]["ComponentVersion"] == {
        "Fn::GetAtt": [cfn.lid(edge.component), "ComponentVersion"]
    }


# --- what the token exchange role must allow for the nucleus and LogManager -------------


def test_token_exchange_role_may_locate_the_artifact_bucket(cfn, stage):
    """The nucleus's S3 downloader calls GetBucketLocation on the artifact's bucket before
    HeadObject/GetObject, and a 403 there fails the deployment
    (aws-greengrass/aws-greengrass-nucleus
    src/main/java/com/aws/greengrass/componentmanager/builtins/S3Downloader.java, getRegionClientForBucket;
    the installer's own TES policy grants it too: easysetup/DeviceProvisioningHelper.java)."""
    edge = stage.stage.stack.edge
    statements = cfn.policy_statements(stage.template_json, stage.stage.stack.devices.token_exchange_role)
    # (LocateModelBucket, the model bucket's: tests/infra/test_model_component.py)
    (locate,) = [
        s for s in cfn.statements_allowing(statements, "s3:GetBucketLocation") if s["Sid"] == "LocateArtifactBucket"
    ]
    bucket = cfn.render(cdk.Stack.of(edge).resolve(edge.asset.s3_bucket_name))
    # The bucket itself, not its objects: GetBucketLocation's resource type is the bucket.
    assert locate["Resource"] == f"arn:<AWS::Partition>:s3:::{bucket}"


def test_token_exchange_role_may_create_the_log_groups_logmanager_writes(cfn, stage):
    """LogManager creates the group before each new stream (one a day per thing) and
    rethrows anything but ResourceAlreadyExists, so without logs:CreateLogGroup nothing
    uploads even where the group exists (aws-greengrass/aws-greengrass-log-manager
    src/main/java/com/aws/greengrass/logmanager/CloudWatchLogsUploader.java; the required
    actions: https://docs.aws.amazon.com/greengrass/v2/developerguide/log-manager-component.html).
    IAM checks CreateLogGroup against ``log-group:<name>`` and the stream actions against
    ``log-group:<name>:*`` (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html)."""
    statements = cfn.policy_statements(stage.template_json, stage.stage.stack.devices.token_exchange_role)
    region = stage.config.region
    prefix = f"arn:aws:logs:{region}:<AWS::AccountId>:log-group:"
    groups = [
        f"/aws/greengrass/UserComponent/{region}/{component_name(stage.config.name)}",
        f"/aws/greengrass/GreengrassSystemComponent/{region}/System",
    ]
    required = {
        "logs:CreateLogGroup": [prefix + g for g in groups],
        "logs:CreateLogStream": [prefix + g + ":*" for g in groups],
        "logs:PutLogEvents": [prefix + g + ":*" for g in groups],
        "logs:DescribeLogStreams": [prefix + g + ":*" for g in groups],
    }
    for action, arns in required.items():
        granted = {r for s in cfn.statements_allowing(statements, action) for r in cfn.as_list(s["Resource"])}
        assert set(arns) <= granted, (action, granted)


def test_no_disk_spooler_is_deployed_while_none_accepts_the_pinned_nucleus(cfn, stage):
    """aws.greengrass.DiskSpooler has a Hard dependency on the nucleus: 1.0.6 on >=2.11.0
    <2.16.0, 1.0.5 on <2.15.0 (https://docs.aws.amazon.com/greengrass/v2/developerguide/disk-spooler-component.html),
    so next to nucleus 2.16.x it cannot resolve and would fail every deployment. The stack
    keeps the nucleus pin and deploys no spooler; the outbox holds alerts instead. When a
    DiskSpooler accepts the pin, this test fails: deploy it then (and add the nucleus's
    mqtt.spooler storageType Disk)."""
    from infra.greengrass_versions import disk_spoolers_for

    pin = stage.config.greengrass.nucleus_version
    assert disk_spoolers_for(pin) == [], f"a DiskSpooler accepts nucleus {pin}: deploy it"
    assert disk_spoolers_for("2.15.1") == ["1.0.6"] and disk_spoolers_for("2.14.0") == ["1.0.5", "1.0.6"]
    components = cfn.properties(stage.template_json, stage.stage.stack.edge.deployment)["Components"]
    assert "aws.greengrass.DiskSpooler" not in components
    nucleus = json.loads(components["aws.greengrass.Nucleus"]["ConfigurationUpdate"]["Merge"])
    assert "spooler" not in nucleus.get("mqtt", {}), "no disk spooler without its plugin component"


def test_synthesized_install_step_keeps_its_timeout_and_skipif(cfn, stage):
    """The app rewrites only artifact paths: the install Timeout (default 120 s) and the
    Skipif on the pinned venv reach the device as the recipe has them
    (https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html)."""
    source = yaml.safe_load((Path(__file__).resolve().parents[2] / "edge_component" / "recipe.yaml").read_text())[
        "Manifests"
    ][0]["Lifecycle"]
    install = _recipe(cfn, stage)["Manifests"][0]["Lifecycle"]["install"]
    assert install["Timeout"] == source["install"]["Timeout"] >= 900
    assert install["Skipif"] == source["install"]["Skipif"]
