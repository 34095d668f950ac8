"""infra/training_job.py: script-mode hyperparameters, managed spot training with checkpoints, and the code archive."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile


def _train_state(cfn, stage) -> dict:
    machine = cfn.properties(stage.template_json, stage.stage.stack.training.state_machine)
    definition = json.loads(cfn.render(machine["DefinitionString"]))
    (state,) = [s for s in definition["States"].values() if s.get("Resource", "").endswith("createTrainingJob.sync")]
    return state


def test_script_mode_hyperparameters(cfn, stage):
    training, config = stage.stage.stack.training, stage.config
    hyper = {k: json.loads(v) for k, v in _train_state(cfn, stage)["Parameters"]["HyperParameters"].items()}
    assert hyper["sagemaker_program"] == "train.py"
    assert hyper["sagemaker_region"] == config.region
    assert hyper["sagemaker_submit_directory"].startswith("s3://cdk-")
    assert hyper["sagemaker_submit_directory"].endswith(f"/{training.sourcedir.asset_hash}.gz")
    assert hyper["epochs"] == config.training.epochs
    for key, value in config.training.hyperparameters.items():
        assert hyper[key] == value


def test_managed_spot_training_without_an_unused_checkpoint(cfn, stage):
    config = stage.config
    params = _train_state(cfn, stage)["Parameters"]
    assert params["StoppingCondition"]["MaxRuntimeInSeconds"] == config.training.max_runtime_s
    if config.training.use_spot:
        assert params["EnableManagedSpotTraining"] is True
        assert params["StoppingCondition"]["MaxWaitTimeInSeconds"] == config.training.max_wait_s
        # train.py writes nothing to /opt/ml/checkpoints: a CheckpointConfig would sync an
        # empty directory and promise a resume that does not happen.
        assert "CheckpointConfig" not in params
    else:
        assert "EnableManagedSpotTraining" not in params


def test_sourcedir_is_runnable_script_mode_code(stage, tmp_path):
    archive = stage.asset_path(f"asset.{stage.stage.stack.training.sourcedir.asset_hash}.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert {m.mtime for m in tar.getmembers()} == {0}
        tar.extractall(tmp_path, filter="data")
    assert {"train.py", "requirements.txt", "training/__init__.py", "edge_component/analysis/features.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    # As SageMaker runs it: `python train.py` in /opt/ml/code, nothing else on the path.
    done = subprocess.run(
        [sys.executable, "train.py", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "--epochs" in done.stdout
