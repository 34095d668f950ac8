"""The model bundle's source (edge_component/model/source.py): the model component's
folder in VIGIL_MODEL_DIR, with every check of the loader, a clear error when it is
missing or corrupt (never the seed instead), and the model version it reports.

The folder is built as the nucleus builds it: the model component's artifact
(``contracts.model_component.bundle_zip`` of the seed bundle) unzipped into
``packages/artifacts-unarchived/<component>/<version>/model-bundle`` (recipe reference,
"Recipe variables", ``artifacts:decompressedPath``: "a ZIP artifact named models.zip
unpacks to the {artifacts:decompressedPath}/models folder",
https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html#recipe-variables;
the ``<name>/<version>`` levels: aws-greengrass-nucleus ComponentStore,
``ARTIFACTS_DECOMPRESSED_DIRECTORY = "artifacts-unarchived"``).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_component.contracts.model_component import BUNDLE_FOLDER, bundle_files, bundle_zip, model_component_name
from edge_component.model.errors import ModelError
from edge_component.model.litert import Scorer
from edge_component.model.source import (
    MODEL_DIR_ENV,
    MODEL_VERSION_ENV,
    load_model,
    model_report,
    resolve_model_source,
)

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "edge_component" / "models" / "seed"
SEED_MANIFEST = json.loads((SEED / "manifest.json").read_text())
SEED_SHA = SEED_MANIFEST["files"]["model.tflite"]


def unpack_model_component(root: Path, version: str = "1.2.0", stage: str = "dev") -> Path:
    """The seed bundle as the model component's artifact, unzipped where the nucleus
    unzips it; returns the ``.../model-bundle`` folder (VIGIL_MODEL_DIR)."""
    folder = root / "packages" / "artifacts-unarchived" / model_component_name(stage) / version / BUNDLE_FOLDER
    folder.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(bundle_zip(bundle_files(SEED)))) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture
def component_dir(tmp_path):
    return unpack_model_component(tmp_path / "greengrass")


def test_the_model_components_bundle_loads_in_litert_with_its_version(component_dir, tmp_path):
    # --model-dir names a folder that does not exist: VIGIL_MODEL_DIR wins, so it is never read.
    source = resolve_model_source(tmp_path / "no-such-seed", {MODEL_DIR_ENV: str(component_dir)})
    bundle = load_model(source)
    assert source.directory == component_dir and source.from_component
    assert isinstance(bundle.scorer, Scorer)  # the real LiteRT interpreter
    assert bundle.scorer.input_dtype == np.int8
    scores = bundle.scorer.score(np.stack([bundle.manifest.mean, bundle.manifest.mean + 3 * bundle.manifest.scale]))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    assert bundle.sha256 == SEED_SHA
    assert model_report(source, bundle) == {"sha256": SEED_SHA, "version": "1.2.0", "file": "model.tflite"}


def test_a_corrupt_file_in_the_model_components_bundle_is_an_error_naming_the_variable(component_dir):
    model = component_dir / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    source = resolve_model_source(SEED, {MODEL_DIR_ENV: str(component_dir)})  # a good seed beside it
    with pytest.raises(ModelError) as err:
        load_model(source)
    message = str(err.value)
    assert message.startswith(f"{MODEL_DIR_ENV}={component_dir}: ")
    assert "model.tflite SHA-256" in message and "corrupt" in message
    assert "not falling back to the seed" in message


def test_a_manifest_missing_from_the_bundle_is_an_error_naming_the_variable(component_dir):
    (component_dir / "manifest.json").unlink()
    with pytest.raises(ModelError, match=rf"^{MODEL_DIR_ENV}=.*model-bundle: .*no manifest.json"):
        load_model(resolve_model_source(None, {MODEL_DIR_ENV: str(component_dir)}))


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_text("not a folder")])
def test_a_model_dir_that_is_missing_or_not_a_folder_is_an_error_naming_the_variable_and_path(tmp_path, make):
    path = tmp_path / "model-bundle"
    make(path)
    with pytest.raises(ModelError) as err:
        load_model(resolve_model_source(SEED, {MODEL_DIR_ENV: str(path)}))
    assert str(err.value).startswith(f"{MODEL_DIR_ENV}={path}: the model bundle folder ")
    assert ("does not exist" if not path.exists() else "is not a directory") in str(err.value)


def test_an_empty_model_dir_variable_is_an_error_not_the_seed():
    with pytest.raises(ModelError, match=f"{MODEL_DIR_ENV} is set but empty"):
        resolve_model_source(SEED, {MODEL_DIR_ENV: "  "})


def test_a_recipe_variable_greengrass_left_unresolved_is_named_as_such():
    # Recipe reference, "Recipe variables": a dependency's variables resolve only for a
    # direct dependency; one that does not resolve stays in the text as written.
    raw = "{com.vigil.Model.dev:artifacts:decompressedPath}/model-bundle"
    with pytest.raises(ModelError, match="unresolved recipe variable; is the model component a direct dependency"):
        resolve_model_source(SEED, {MODEL_DIR_ENV: raw})


def test_unset_the_model_dir_argument_is_used_as_today():
    source = resolve_model_source(SEED, {})
    assert source.directory == SEED and not source.from_component and source.version is None
    assert load_model(source).sha256 == SEED_SHA
    with pytest.raises(ModelError, match=f"give --model-dir or set {MODEL_DIR_ENV}"):
        resolve_model_source(None, {})


def test_the_version_variable_wins_and_must_be_a_version(component_dir):
    env = {MODEL_DIR_ENV: str(component_dir), MODEL_VERSION_ENV: "1.7.0"}
    assert resolve_model_source(None, env).version == "1.7.0"
    # A recipe variable Greengrass could not resolve stays in the text as written (recipe
    # reference: "No node. AWS IoT Greengrass Core doesn't replace the recipe variable").
    env[MODEL_VERSION_ENV] = "{com.vigil.Model.dev:configuration:/version}"
    with pytest.raises(ModelError, match=f"{MODEL_VERSION_ENV}=.* is not a major.minor.patch version"):
        resolve_model_source(None, env)


def test_a_folder_outside_a_model_component_has_no_version(tmp_path):
    folder = tmp_path / "com.other.Thing" / "1.0.0" / BUNDLE_FOLDER
    folder.mkdir(parents=True)
    assert resolve_model_source(None, {MODEL_DIR_ENV: str(folder)}).version is None
    assert resolve_model_source(None, {MODEL_DIR_ENV: str(tmp_path)}).version is None


def test_a_model_dir_that_is_a_symlink_loop_says_so_not_does_not_exist(tmp_path):
    loop_a, loop_b = tmp_path / "loopA", tmp_path / "loopB"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    source = resolve_model_source(None, {MODEL_DIR_ENV: str(loop_a)})
    with pytest.raises(ModelError, match=r"the model bundle folder is a symbolic link loop"):
        load_model(source)
    with pytest.raises(ModelError, match=r"does not exist"):
        load_model(resolve_model_source(None, {MODEL_DIR_ENV: str(tmp_path / "absent")}))
