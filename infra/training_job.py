"""What the SageMaker training job runs: the script-mode code archive, its
hyperparameters as the job receives them, the TensorFlow Deep Learning Container image
registry, and the Step Functions task that starts the job (with managed spot training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.edge_deployment import EDGE_PACKAGE
from infra.packaging import Archive, Entry, tar_gz_bytes, tree_entries, write_content_addressed
from infra.training_config import TrainingConfig

ENTRY_POINT = "train.py"
DLC_REPOSITORY = "tensorflow-training"

# AWS Deep Learning Containers registry account per region (sagemaker-python-sdk,
# image_uri_config/tensorflow.json). Resolved at synth when the stage's region is
# known, else by Fn::FindInMap at deploy time: no lookup either way.
DLC_ACCOUNTS: dict[str, str] = {
    **dict.fromkeys(
        [
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ca-central-1",
            "sa-east-1",
            "eu-central-1",
            "eu-north-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-southeast-1",
            "ap-southeast-2",
        ],
        "763104351884",
    ),
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
}


def build_sourcedir(training_dir: Path, edge_package_dir: Path, build_dir: Path) -> Archive:
    """``sourcedir.tar.gz`` for script mode (deterministic), unpacked by SageMaker into /opt/ml/code::

    train.py            the entry point (sagemaker_program), at the root as script mode requires
    requirements.txt    installed by the container before train.py runs
    training/...        the package train.py imports (``from training.dataset import ...``)
    edge_component/...  the edge's feature code, which training shares
    """
    entries = [
        *(
            Entry(name, training_dir / name)
            for name in (ENTRY_POINT, "requirements.txt")
            if (training_dir / name).is_file()
        ),
        *tree_entries(training_dir, "training"),
        *tree_entries(edge_package_dir, EDGE_PACKAGE),
    ]
    return write_content_addressed(tar_gz_bytes(entries), build_dir, "sourcedir.tar.gz")


def hyperparameters(*, training: TrainingConfig, submit_directory: str, region: str) -> dict[str, str]:
    """Script-mode hyperparameters, JSON-encoded per value as the SageMaker Python SDK sends them."""
    values: dict[str, Any] = {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": submit_directory,
        "sagemaker_region": region,
        "sagemaker_container_log_level": 20,
        "epochs": training.epochs,
        **training.hyperparameters,
    }
    return {key: json.dumps(value) for key, value in values.items()}


class TaskUri(tasks.S3Location):
    """An S3 location that grants nothing when bound: the execution role's grants are explicit."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self._uri = uri

    def bind(self, _task: tasks.ISageMakerTask, *_args: Any, **_kwargs: Any) -> tasks.S3LocationConfig:
        return tasks.S3LocationConfig(uri=self._uri)


class SpotTrainingJob(tasks.SageMakerCreateTrainingJob):
    """``SageMakerCreateTrainingJob`` plus managed spot training.

    The CDK task has no properties for ``EnableManagedSpotTraining`` or
    ``StoppingCondition.MaxWaitTimeInSeconds`` although Step Functions passes them to
    CreateTrainingJob, so they are added to the rendered state. No ``CheckpointConfig``:
    train.py keeps no state in a checkpoint directory (a job of minutes), so an
    interrupted spot job restarts from the beginning, which is what it would do anyway.
    """

    def __init__(self, scope: Construct, id_: str, *, spot: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(scope, id_, **kwargs)
        self._spot = spot

    def to_state_json(self, top_level_query_language: sfn.QueryLanguage | None = None) -> Any:
        state = dict(super().to_state_json(top_level_query_language))
        if self._spot:
            parameters = dict(state["Parameters"])
            parameters["EnableManagedSpotTraining"] = True
            parameters["StoppingCondition"] = {
                **dict(parameters.get("StoppingCondition", {})),
                "MaxWaitTimeInSeconds": self._spot["max_wait_s"],
            }
            state["Parameters"] = parameters
        return state
