"""The component step: the training job's model.tar.gz (here the seed bundle's real files)
becomes ``model-bundle.zip`` in moto S3 and a new ``com.vigil.Model.<stage>`` version.

Greengrass v2 is behind botocore's Stubber (moto has no greengrassv2): the client
validates every request against the service model before the stub answers.
Rules pinned: the recipe's ``Artifacts[].Digest`` is the base64 SHA-256 of the artifact
the nucleus downloads, and an archive artifact is unpacked into a folder named after
the file without its extension ("Unarchive", component recipe reference,
https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html);
ListComponentVersions answers ResourceNotFoundException for a component with no version
(https://docs.aws.amazon.com/greengrass/v2/APIReference/API_ListComponentVersions.html).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from botocore.stub import ANY
from vigil_loop.component import BundleError, bundle_files, create_component, load_builder

SEED = Path(__file__).resolve().parents[3] / "edge_component" / "models" / "seed"
COMPONENT = "com.vigil.Model.dev"
COMPONENT_ARN = f"arn:aws:greengrass:us-east-1:123456789012:components:{COMPONENT}"


@pytest.fixture
def builder():
    return load_builder()


@pytest.fixture
def seed_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(SEED.iterdir()) if p.is_file()}


def _upload(s3, bucket, job, archive: bytes) -> str:
    key = f"models/{job}/output/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=archive)
    return f"s3://{bucket}/{key}"


def _expect_create(stub, versions: list[str] | None, new_version: str) -> None:
    if versions is None:
        stub.add_client_error(
            "list_component_versions",
            "ResourceNotFoundException",
            http_status_code=404,
            expected_params={"arn": COMPONENT_ARN},
        )
    else:
        listed = [
            {"componentName": COMPONENT, "componentVersion": v, "arn": f"{COMPONENT_ARN}:versions:{v}"}
            for v in versions
        ]
        stub.add_response("list_component_versions", {"componentVersions": listed}, {"arn": COMPONENT_ARN})
    stub.add_response(
        "create_component_version",
        {
            "arn": f"{COMPONENT_ARN}:versions:{new_version}",
            "componentName": COMPONENT,
            "componentVersion": new_version,
            "creationTimestamp": "2026-12-03T07:00:00Z",
            "status": {"componentState": "REQUESTED", "message": "NONE", "errors": {}},
        },
        {"inlineRecipe": ANY},
    )


def _sent_recipe(gg) -> list[dict]:
    """Capture the inline recipes the step passes (the client then validates the request)."""
    sent: list[dict] = []
    gg.meta.events.register(
        "before-parameter-build.greengrassv2.CreateComponentVersion",
        lambda params, **_: sent.append(json.loads(params["inlineRecipe"])),
    )
    return sent


def test_the_bundle_zip_digest_is_the_recipes(aws, stubbed, make_tar_gz, seed_files, builder, bucket, job):
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    url = _upload(s3, bucket, job, make_tar_gz({f"./{n}": b for n, b in seed_files.items()}))
    gg, stub = stubbed("greengrassv2")
    sent = _sent_recipe(gg)
    _expect_create(stub, ["1.0.12345", "1.1.0"], "1.2.0")

    result = create_component(s3, gg, builder, "dev", COMPONENT_ARN, url)

    key = f"models/{job}/output/model-bundle.zip"
    assert result["artifact_uri"] == f"s3://{bucket}/{key}"
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == result["sha256"]
    (recipe,) = sent
    (artifact,) = recipe["Manifests"][0]["Artifacts"]
    assert artifact["URI"] == result["artifact_uri"]
    assert artifact["Digest"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert artifact["Algorithm"] == "SHA-256" and artifact["Unarchive"] == "ZIP"
    assert recipe["ComponentName"] == COMPONENT and recipe["ComponentVersion"] == "1.2.0"
    # the folder Greengrass unpacks into is the one the detector's recipe variable names
    assert builder.bundle_dir_variable("dev").endswith("/" + Path(key).stem)
    # the zip holds the bundle's files at its root, byte for byte, and is the zip the
    # stack's seed version would be for the same files (same digest, same version)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == seed_files
    assert data == builder.bundle_zip(builder.bundle_files(SEED))
    # the digest the edge reports (manifest's model_file), for the canary check
    manifest = json.loads(seed_files["manifest.json"])
    assert (
        result["model_sha256"]
        == manifest["files"]["model.tflite"]
        == hashlib.sha256(seed_files["model.tflite"]).hexdigest()
    )
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["modelSha256"] == result["model_sha256"]
    assert result["component_version"] == "1.2.0" and result["arn"].endswith(":versions:1.2.0")


def test_the_first_loop_version_follows_no_version(aws, stubbed, make_tar_gz, seed_files, builder, bucket, job):
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    url = _upload(s3, bucket, job, make_tar_gz(seed_files))
    gg, stub = stubbed("greengrassv2")
    _expect_create(stub, None, "1.1.0")
    assert create_component(s3, gg, builder, "dev", COMPONENT_ARN, url)["component_version"] == "1.1.0"


def test_a_file_that_is_not_the_manifests_is_refused(make_tar_gz, seed_files):
    broken = {**seed_files, "model.tflite": seed_files["model.tflite"][:-1] + b"\x00"}
    with pytest.raises(BundleError, match=r"model.tflite: SHA-256 [0-9a-f]{64}, manifest.json says 7a26a8b2"):
        bundle_files(make_tar_gz(broken))


def test_a_missing_listed_file_is_refused(make_tar_gz, seed_files):
    del seed_files["model.onnx"]
    with pytest.raises(BundleError, match="lists model.onnx, which the model archive does not hold"):
        bundle_files(make_tar_gz(seed_files))


def test_an_archive_without_a_manifest_is_refused(make_tar_gz):
    with pytest.raises(BundleError, match=r"no manifest.json at its root \(files: model.tflite\)"):
        bundle_files(make_tar_gz({"model.tflite": b"TFL3"}))


def test_files_in_folders_are_refused(make_tar_gz, seed_files):
    with pytest.raises(BundleError, match="sit at its root"):
        bundle_files(make_tar_gz({**seed_files, "extra/notes.txt": b"x"}))


def test_a_bad_archive_is_refused_before_anything_is_created(aws, stubbed, builder, bucket, job):
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    url = _upload(s3, bucket, job, b"not a tar.gz")
    gg, _ = stubbed("greengrassv2")  # no response queued: any Greengrass call would fail the test
    with pytest.raises(BundleError, match="not a readable tar.gz"):
        create_component(s3, gg, builder, "dev", COMPONENT_ARN, url)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{job}/output/model-bundle")
