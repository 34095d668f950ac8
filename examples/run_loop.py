"""The model loop, locally: retrain, gate, register, canary, promote, and the edge alerting
with the new model. No AWS account, no network (issue 13, "Local").

1. The state machine's first state, CurrentModel (``current_handler``): the promoted
   version from SSM, its recipe from Greengrass, the bundle zip's S3 URI; that object is
   copied into a folder as SageMaker's File mode does for the job's ``current`` channel.
   Then train a candidate on the demo clip (training/train.py as the SageMaker job runs
   it, a few epochs), comparing it with that current bundle (the seed, on a fresh stack)
   on the labelled test clip: ``comparison.json``.
2. In moto (S3, SageMaker model packages, SSM, DynamoDB, SNS): upload ``model.tar.gz``
   and ``output.tar.gz`` where the training job writes them, then call the loop's real
   Lambda handlers (lambda/vigil_loop/handlers.py) in the state machine's order for a
   dev stage (auto approval), each with the event the state machine builds from its
   Parameters and keeping what its ResultSelector keeps (infra/model_loop.py).
   Greengrass v2 has no moto model: :class:`LocalGreengrass` answers it from memory,
   after botocore has validated each request against the service model.
3. The canary device: the model component's ``model-bundle.zip`` from S3, its digest
   checked as the nucleus does, unpacked where the nucleus unpacks it; the edge
   (``python -m edge_component run``, ``VIGIL_MODEL_DIR``) replays the demo clip; its
   last telemetry message becomes the DeviceStatus item the canary check reads; the
   check says HEALTHY; promote deploys to the stage group and writes SSM
   ``/vigil/dev/model/promoted-version``.
4. The alerts, and a check that each carries the new model's digest (``model_sha256``).

``--worse``: the candidate's comparison is edited to miss one event more than the current
model, and the run stops at the gate with the reason (published to the operations topic).

Run with ``make loop``. Exit status 0 when the run ends as it should (promoted, with the
new digest in every alert; or, with ``--worse``, stopped at the gate), 1 otherwise,
2 when training fails.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "lambda"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

OUT = REPO / "build" / "loop"
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
CONFIG = REPO / "examples" / "demo-config.yaml"
SEED = REPO / "edge_component" / "models" / "seed"
STAGE = "dev"
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
JOB = "vigil-dev-local-1"
# The parity gate needs about 3 epochs on this one clip (2 fail ood-parity on the car clip).
EPOCHS = 3


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def _short(value: Any, width: int = 150) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


# 1. Training -------------------------------------------------------------------------


def train(out: Path, epochs: int, current: Path) -> dict[str, Any]:
    """train.py in a subprocess, as the job's container runs it, ``current`` its current
    channel (a folder holding the bundle zip); its log in out/training.log.
    Returns evaluation.json. SystemExit(2) when training fails (the log's tail printed)."""
    banner("1/4 training a candidate (training/train.py, as the SageMaker job runs it)")
    log = out / "training.log"
    argv = [
        *("--model-dir", str(out / "model"), "--output-data-dir", str(out / "training-output")),
        # The demo has one labelled clip of this scene: the test channel is that clip too,
        # so this is a smoke run of the comparison, not a held-out score.
        *("--train", str(LABELS), "--test", str(LABELS), "--current", str(current)),
        *("--epochs", str(epochs), "--cross-clip", "false", "--latency-rows", "0", "--plots", "false"),
        *("--min-auc", "0.5", "--min-recall", "0"),
    ]
    started = time.time()
    with open(log, "wb") as handle:
        proc = subprocess.run(
            [sys.executable, str(REPO / "training" / "train.py"), *argv],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    if proc.returncode != 0:
        print("\n".join(log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
        raise SystemExit(f"training failed (exit {proc.returncode}); log: {log}")
    report = json.loads((out / "training-output" / "evaluation.json").read_text())
    print(
        f"  {epochs} epochs on {LABELS.relative_to(REPO)} in {time.time() - started:.0f} s: threshold "
        f"{report['threshold']:.3f}, validation AUC keras {report['auc_keras']:.3f} / int8 {report['auc_int8']:.3f}, "
        f"int8 {report['size_bytes']['int8']:,} bytes"
    )
    return report


def print_comparison(comparison: dict[str, Any]) -> None:
    for side in ("candidate", "current"):
        model = comparison.get(side)
        if model is None:
            print(f"  {side:<9}: none (the stage runs no model yet)")
            continue
        t = model["total"]
        print(
            f"  {side:<9}: {model['sha256'][:12]}  recall {t['recall']:.2f} ({t.get('found')}/{t.get('events')} "
            f"events), {t['false_alerts_per_hour']:.1f} false alerts/h, mean delay {t['delay_s_mean']} s"
        )
    print(
        "  job gates: "
        + ", ".join(f"{n} {'passed' if g['passed'] else 'FAILED'}" for n, g in comparison["gates"].items())
    )


def worsen(comparison: dict[str, Any]) -> dict[str, Any]:
    """The comparison with the candidate missing one event more than the current model
    (total and per label): what a regressed retrain looks like to the gate."""
    worse = copy.deepcopy(comparison)
    base = worse["current"] or worse["candidate"]
    for where in [worse["candidate"]["total"], *(worse["candidate"].get("by_label") or {}).values()]:
        events = max(int(where.get("events") or base["total"].get("events") or 1), 1)
        found = max(min(int(where.get("found", events)), events) - 1, 0)
        where["found"], where["recall"] = found, round(found / events, 4)
    return worse


def _tar_gz(files: dict[str, bytes]) -> bytes:
    """A tar.gz of ``files`` at its root, as SageMaker packs SM_MODEL_DIR and SM_OUTPUT_DATA_DIR."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _folder(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


# Greengrass v2 ------------------------------------------------------------------------


class _Http:
    def __init__(self, status_code: int) -> None:
        self.status_code, self.content = status_code, b""
        self.headers: dict[str, str] = {}


class LocalGreengrass:
    """Greengrass v2 for the loop, from memory.

    ``client`` is a real boto3 ``greengrassv2`` client: botocore validates every request
    against the service model's input shape (``botocore.validate.validate_parameters``,
    called here too, explicitly) and the paginators and error classes are the real ones.
    Its ``before-call`` event is answered here, so nothing goes on the wire (moto has no
    Greengrass v2 backend). Components, deployments per thing group, and each core
    device's effective deployments live in this object; the "device" side
    (:meth:`report`) says what a canary device did with a deployment.
    """

    def __init__(self, groups: dict[str, list[str]]) -> None:
        import boto3

        self.client = boto3.client("greengrassv2", region_name=REGION)
        self.groups = groups  # thing group ARN -> its things
        self.recipes: dict[str, dict[str, dict[str, Any]]] = {}  # component -> version -> recipe
        self.deployments: dict[str, dict[str, Any]] = {}
        self.effective: dict[str, dict[str, str]] = {}  # thing -> deployment id -> status
        self.health: dict[str, str] = {}  # thing -> HEALTHY / UNHEALTHY
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._params: dict[str, Any] = {}
        events = self.client.meta.events
        events.register("before-parameter-build.greengrassv2", self._validate)
        events.register("before-call.greengrassv2", self._answer)

    def _validate(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        from botocore.validate import validate_parameters

        validate_parameters(params, model.input_shape)  # ParamValidationError names the field
        self._params = copy.deepcopy(params)

    def _answer(self, model: Any, **_: Any) -> tuple[_Http, dict[str, Any]]:
        name, params = model.name, self._params
        self.calls.append((name, params))
        try:
            parsed = getattr(self, f"_{name}")(params)
            status = 200 if name != "CreateComponentVersion" else 201
        except LookupError as exc:
            parsed, status = {"Error": {"Code": "ResourceNotFoundException", "Message": str(exc)}}, 404
        parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": status, "RequestId": str(uuid4())})
        return _Http(status), parsed

    # The operations the loop calls (shapes: the service model's outputs) ----------------

    def add_component(self, recipe: dict[str, Any]) -> dict[str, Any]:
        versions = self.recipes.setdefault(recipe["ComponentName"], {})
        versions[recipe["ComponentVersion"]] = recipe
        return {
            "arn": self._arn(recipe["ComponentName"], recipe["ComponentVersion"]),
            "componentName": recipe["ComponentName"],
            "componentVersion": recipe["ComponentVersion"],
            "creationTimestamp": datetime.now(UTC),
            "status": {"componentState": "DEPLOYABLE", "message": "NONE", "errors": {}},
        }

    @staticmethod
    def _arn(name: str, version: str | None = None) -> str:
        tail = f":versions:{version}" if version else ""
        return f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:{name}{tail}"

    def _CreateComponentVersion(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.add_component(json.loads(params["inlineRecipe"]))

    def _GetComponent(self, params: dict[str, Any]) -> dict[str, Any]:
        name, _, version = params["arn"].rsplit(":components:", 1)[-1].partition(":versions:")
        if version not in self.recipes.get(name, {}):
            raise LookupError(f"component version {params['arn']} not found")
        if params.get("recipeOutputFormat", "JSON") != "JSON":
            raise LookupError("this fake returns JSON recipes only")
        # The recipe is a blob: bytes, as botocore parses the real response.
        return {"recipeOutputFormat": "JSON", "recipe": json.dumps(self.recipes[name][version]).encode()}

    def _ListComponentVersions(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["arn"].rsplit(":components:", 1)[-1]
        if name not in self.recipes:
            raise LookupError(f"component {params['arn']} not found")
        return {
            "componentVersions": [
                {"componentName": name, "componentVersion": v, "arn": self._arn(name, v)} for v in self.recipes[name]
            ]
        }

    def _CreateDeployment(self, params: dict[str, Any]) -> dict[str, Any]:
        target = params["targetArn"]
        if target not in self.groups:
            raise LookupError(f"thing group {target} not found")
        deployment_id = str(uuid4())
        for d in self.deployments.values():
            if d["targetArn"] == target:
                d["isLatestForTarget"] = False
        self.deployments[deployment_id] = {
            "targetArn": target,
            "deploymentId": deployment_id,
            "deploymentName": params.get("deploymentName", ""),
            "components": copy.deepcopy(params.get("components", {})),
            "deploymentStatus": "ACTIVE",
            "isLatestForTarget": True,
            "creationTimestamp": datetime.now(UTC),
        }
        for thing in self.groups[target]:  # each device queues it until it reports
            self.effective.setdefault(thing, {})[deployment_id] = "QUEUED"
        return {"deploymentId": deployment_id, "iotJobId": str(uuid4()), "iotJobArn": f"arn:aws:iot:::job/{uuid4()}"}

    def _ListDeployments(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = [d for d in self.deployments.values() if d["targetArn"] == params.get("targetArn", d["targetArn"])]
        if params.get("historyFilter", "LATEST_ONLY") == "LATEST_ONLY":
            rows = [d for d in rows if d["isLatestForTarget"]]
        keys = ("targetArn", "deploymentId", "deploymentName", "creationTimestamp", "deploymentStatus")
        return {"deployments": [{k: d[k] for k in (*keys, "isLatestForTarget")} for d in reversed(rows)]}

    def _GetDeployment(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["deploymentId"] not in self.deployments:
            raise LookupError(f"deployment {params['deploymentId']} not found")
        return copy.deepcopy(self.deployments[params["deploymentId"]])

    def _ListEffectiveDeployments(self, params: dict[str, Any]) -> dict[str, Any]:
        thing = params["coreDeviceThingName"]
        rows = []
        for deployment_id, status in self.effective.get(thing, {}).items():
            d = self.deployments[deployment_id]
            rows.append(
                {
                    "deploymentId": deployment_id,
                    "deploymentName": d["deploymentName"],
                    "targetArn": d["targetArn"],
                    "coreDeviceExecutionStatus": status,
                    "creationTimestamp": d["creationTimestamp"],
                    "modifiedTimestamp": datetime.now(UTC),
                }
            )
        return {"effectiveDeployments": rows}

    def _GetCoreDevice(self, params: dict[str, Any]) -> dict[str, Any]:
        thing = params["coreDeviceThingName"]
        if thing not in self.health:
            raise LookupError(f"core device {thing} not found")
        return {
            "coreDeviceThingName": thing,
            "status": self.health[thing],
            "platform": "linux",
            "architecture": "aarch64",
        }

    # The device side --------------------------------------------------------------------

    def latest_for(self, thing: str) -> dict[str, Any]:
        """The newest deployment of the groups ``thing`` is in (what its nucleus runs)."""
        mine = [d for d in self.deployments.values() if thing in self.groups[d["targetArn"]] and d["isLatestForTarget"]]
        return max(mine, key=lambda d: d["creationTimestamp"])

    def report(self, thing: str, deployment_id: str, status: str, healthy: bool) -> None:
        self.effective.setdefault(thing, {})[deployment_id] = status
        self.health[thing] = "HEALTHY" if healthy else "UNHEALTHY"


# 2. The state machine's steps ---------------------------------------------------------


class Loop:
    """The dev stage's account in moto plus :class:`LocalGreengrass`, and the steps of
    infra/model_loop.py run through the real handlers."""

    def __init__(self, out: Path, config: Any) -> None:
        import boto3

        from edge_component.contracts import model_component as builder

        self.out, self.config, self.builder = out, config, builder
        self.s3, self.sm = boto3.client("s3"), boto3.client("sagemaker")
        self.ssm, self.sns, self.sqs = boto3.client("ssm"), boto3.client("sns"), boto3.client("sqs")
        self.bucket = "vigil-dev-models"
        self.package_group = "vigil-dev-local"  # the stage's model package group (Register's)
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.topic = self.sns.create_topic(Name="vigil-dev-operations")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="vigil-dev-operations-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="vigil-dev-device-status",
            KeySchema=[{"AttributeName": "thing_name", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "thing_name", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.device_status = boto3.resource("dynamodb").Table("vigil-dev-device-status")
        loop = config.model_loop
        self.canaries = list(loop.canary_things)
        stage_group = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/vigil-dev"
        canary_group = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/vigil-dev-canary"
        self.gg = LocalGreengrass({stage_group: [], canary_group: self.canaries})
        self.model_component = builder.model_component_name(STAGE)
        self.parameter = builder.promoted_version_parameter(STAGE)
        os.environ.update(
            VIGIL_STAGE=STAGE,
            MODEL_BUCKET=self.bucket,
            OPERATIONS_TOPIC_ARN=self.topic,
            MODEL_PACKAGE_GROUP=self.package_group,
            MODEL_APPROVAL="Approved" if loop.approval == "auto" else "PendingManualApproval",
            DEVICE_STATUS_TABLE="vigil-dev-device-status",
            CANARY_THING_GROUP_ARN=canary_group,
            STAGE_THING_GROUP_ARN=stage_group,
            CANARY_THINGS=",".join(self.canaries),
            # The stage watches for minutes; locally the device has run its clip by the first check.
            CANARY_WATCH_MINUTES="0",
            DELAY_TOLERANCE_S=str(loop.delay_tolerance_s),
            PROMOTED_VERSION_PARAMETER=self.parameter,
            INFERENCE_IMAGE=f"763104351884.dkr.ecr.{REGION}.amazonaws.com/tensorflow-training:local",
        )
        from vigil_loop import handlers

        from vigil_alerts.local import LocalContext

        self.handlers, self.context = handlers, LocalContext(function_name="vigil-dev-model-loop")
        handlers._client = lambda name: self.gg.client if name == "greengrassv2" else boto3.client(name)
        self._deploy_stack()

    def _deploy_stack(self) -> None:
        """What `cdk deploy` leaves: the seed model component version (its zip in the model
        bucket) and the stage group's deployment of the detector and that version."""
        files = self.builder.bundle_files(SEED)
        data = self.builder.bundle_zip(files)
        digest = hashlib.sha256(data).hexdigest()
        version = self.builder.seed_version(digest)
        key = self.builder.artifact_key(STAGE, version)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        self.gg.add_component(self.builder.model_recipe(STAGE, version, f"s3://{self.bucket}/{key}", digest))
        stage_group = os.environ["STAGE_THING_GROUP_ARN"]
        self.gg.client.create_deployment(
            targetArn=stage_group,
            deploymentName=f"vigil-{STAGE}",
            components={
                f"com.vigil.EdgeDetector.{STAGE}": {"componentVersion": "0.1.0"},
                self.model_component: {"componentVersion": version},
            },
        )
        self.ssm.put_parameter(Name=self.parameter, Value=version, Type="String", Overwrite=True)
        print(
            f"  the stack: {self.model_component} {version} (the seed) deployed to the stage group; "
            f"SSM {self.parameter}"
        )

    def current_channel(self, folder: Path) -> dict[str, Any]:
        """CurrentModel, the state machine's first state (``current_handler``, ResultPath
        ``$.current``), then its ``current_model_uri`` object into ``folder`` as SageMaker's
        File mode puts an S3Prefix channel's objects (the key's last part as the file)."""
        current = self.step(
            "CurrentModel",
            "current",
            {},
            {"current_model_uri": "current_model_uri", "current_version": "current_version"},
            "current",
            {},
        )
        bucket, key = current["current_model_uri"].removeprefix("s3://").split("/", 1)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():  # a previous run's bundle
            old.unlink()
        (folder / key.rsplit("/", 1)[-1]).write_bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        print(f"  channel current: {current['current_model_uri']} (version {current['current_version']}) -> {folder}")
        return current

    def upload_training_output(self, model_dir: Path, output_dir: Path, comparison: dict[str, Any]) -> None:
        """model.tar.gz and output.tar.gz where the job writes them: s3://<models>/models/<job>/output/."""
        from vigil_loop.evaluate import output_keys

        keys = output_keys(JOB)
        output = {**_folder(output_dir), "comparison.json": json.dumps(comparison).encode()}
        self.s3.put_object(Bucket=self.bucket, Key=keys["model"], Body=_tar_gz(_folder(model_dir)))
        self.s3.put_object(Bucket=self.bucket, Key=keys["output"], Body=_tar_gz(output))
        print(f"  s3://{self.bucket}/{keys['model']}, s3://{self.bucket}/{keys['output']}")

    def step(
        self, state: str, step: str, event: Any, select: dict[str, str] | None, path: str | None, run: dict
    ) -> Any:
        """One LambdaInvoke: the event through JSON (as Lambda passes it), the handler, the
        ResultSelector's keys (``select``; None: the whole payload) at ``path`` of ``run``."""
        event = json.loads(json.dumps(event))
        print(f"\n  -> {state:<9} ({step}_handler) event {_short(event)}")
        payload = json.loads(json.dumps(getattr(self.handlers, f"{step}_handler")(event, self.context), default=str))
        result = payload if select is None else {k: payload[v] for k, v in select.items()}
        if path is None:
            run.clear()
            run.update(result)
        else:
            run[path] = result
        return result

    def operations_messages(self) -> list[dict[str, Any]]:
        got = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            for msg in batch:
                got.append(json.loads(msg["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=msg["ReceiptHandle"])
        return got


def run_loop(loop: Loop, worse: bool) -> dict[str, Any]:
    """The dev state machine from Evaluate on (infra/model_loop.py ``_states``): returns the
    execution's data and how it ended (``end``: Promoted, GateFailed, CanaryFailed)."""
    banner("2/4 the model loop (real handlers; moto, and Greengrass from memory)")
    run: dict[str, Any] = {"TrainingJobName": JOB}
    # Evaluate: {"job_name": $.TrainingJobName}; ResultSelector {"comparison.$": "$.Payload"}, ResultPath $.
    comparison = loop.step("Evaluate", "evaluate", {"job_name": run["TrainingJobName"]}, None, None, run)
    run = {"comparison": comparison}
    print_comparison(comparison)
    gate = loop.step("Gate", "gate", run["comparison"], {"passed": "passed", "reasons": "reasons"}, "gate", run)
    if not gate["passed"]:
        print("  GatePassed? no -> GateFailed: " + "; ".join(gate["reasons"]))
        for msg in loop.operations_messages():
            print(f"  operations topic: {msg.get('Subject')}")
            for line in str(msg.get("Message", "")).splitlines():
                print(f"  | {line}")
        return {**run, "end": "GateFailed"}
    print("  GatePassed? yes")
    registered = loop.step(
        "Register",
        "register",
        run["comparison"],
        {"model_package_arn": "model_package_arn", "approval": "approval"},
        "registered",
        run,
    )
    print(f"  {registered['model_package_arn']}: {registered['approval']}")
    if registered["approval"] != "Approved":
        print("  this stage waits for a person to approve (WaitForApproval); the local loop runs dev only")
        return {**run, "end": "WaitingForApproval"}
    run["approved"] = {"approval": registered["approval"]}  # AutoApproved (Pass)
    print("  -> AutoApproved (Pass): this stage registers models as Approved")
    made = loop.step(
        "Component",
        "component",
        {"model_data_url": run["comparison"]["model_data_url"]},
        {k: k for k in ("component_name", "component_version", "sha256", "model_sha256")},
        "component",
        run,
    )
    print(
        f"  {made['component_name']} {made['component_version']}: zip {made['sha256'][:12]}, "
        f"model {made['model_sha256'][:12]}"
    )
    canary = loop.step(
        "Canary",
        "canary",
        {"component_version": run["component"]["component_version"]},
        {k: k for k in ("deployment_id", "started_at", "previous_model_version")},
        "canary",
        run,
    )
    print(
        f"  deployment {canary['deployment_id']} to the canary group (the stage ran {canary['previous_model_version']})"
    )
    run["watch"] = {"polls": 0}
    max_polls = loop.config.model_loop.max_canary_polls
    interval = loop.config.model_loop.canary_poll_interval_s
    devices: dict[str, Any] = {}
    while True:
        # Watch (Wait): meanwhile each canary device takes the deployment, once.
        print(f"\n  -> Watch     (Wait {interval} s in the stage; here: the canary devices run)")
        for thing in loop.canaries:
            if thing not in devices:
                devices[thing] = canary_device(loop, thing)
        run["watch"]["polls"] += 1  # CountPoll
        check = loop.step(
            "Check",
            "check",
            {
                "deployment_id": run["canary"]["deployment_id"],
                "model_sha256": run["component"]["model_sha256"],
                "started_at": run["canary"]["started_at"],
            },
            {"state": "state", "reasons": "reasons"},
            "check",
            run,
        )
        print(f"  CanaryHealthy? {check['state']}: " + "; ".join(check["reasons"]))
        if check["state"] != "WAITING":
            break
        if run["watch"]["polls"] >= max_polls:  # OutOfPolls
            run["check"] = {"state": "FAILED", "reasons": [f"the canary was still not judged after {max_polls} checks"]}
            break
    run["devices"] = devices
    if run["check"]["state"] == "HEALTHY":
        promoted = loop.step(
            "Promote",
            "promote",
            {"component_version": run["component"]["component_version"]},
            {"deployment_id": "deployment_id", "promoted_version": "promoted_version"},
            "promoted",
            run,
        )
        value = loop.ssm.get_parameter(Name=loop.parameter)["Parameter"]["Value"]
        print(f"  deployment {promoted['deployment_id']} to the stage group; SSM {loop.parameter} = {value}")
        return {**run, "end": "Promoted", "promoted_parameter": value}
    loop.step(
        "Rollback",
        "rollback",
        {"reasons": run["check"]["reasons"]},
        {"deployment_id": "deployment_id"},
        "rollback",
        run,
    )
    return {**run, "end": "CanaryFailed"}


# 3. The canary device -----------------------------------------------------------------


def canary_device(loop: Loop, thing: str) -> dict[str, Any]:
    """What the canary's nucleus and the detector do with the deployment: fetch and check the
    model zip, unpack it, run the edge on the demo clip, report. Returns the edge's facts."""
    banner(f"3/4 canary device {thing}: the deployment, the edge on the demo clip")
    deployment = loop.gg.latest_for(thing)
    version = deployment["components"][loop.model_component]["componentVersion"]
    recipe = loop.gg.recipes[loop.model_component][version]
    artifact = recipe["Manifests"][0]["Artifacts"][0]
    bucket, key = artifact["URI"][5:].split("/", 1)
    data = loop.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    if digest != artifact["Digest"]:  # the nucleus refuses an artifact whose digest differs
        loop.gg.report(thing, deployment["deploymentId"], "FAILED", healthy=False)
        return {"error": f"{key}: digest {digest}, recipe says {artifact['Digest']}"}
    # Where the nucleus unpacks a ZIP artifact: packages/artifacts-unarchived/<component>/<version>/<zip stem>/
    root = loop.out / "device" / thing
    bundle = root / "packages" / "artifacts-unarchived" / loop.model_component / version / "model-bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(bundle)
    print(f"  {artifact['URI']} (digest checked) -> {bundle.relative_to(loop.out)}/")
    alerts = loop.out / "alerts.jsonl"
    alerts.unlink(missing_ok=True)
    state = root / "edge-state"
    command = [
        *(sys.executable, "-m", "edge_component", "run", "--config", str(CONFIG), "--source", str(CLIP)),
        *("--thing-name", thing, "--alerts-out", str(alerts), "--state-dir", str(state)),
    ]
    print(f"  VIGIL_MODEL_DIR={bundle.relative_to(loop.out)} python -m edge_component run ... ({CLIP.name})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_MODEL")}
    with open(loop.out / "edge.log", "wb") as log:
        proc = subprocess.run(
            command, cwd=REPO, env={**env, "VIGIL_MODEL_DIR": str(bundle)}, stdout=log, stderr=subprocess.STDOUT
        )
    records = [json.loads(line) for line in alerts.read_text().splitlines()] if alerts.exists() else []
    telemetry = [r["message"] for r in records if r["topic"].endswith("/telemetry")]
    print(f"  edge exit {proc.returncode}; {len(records) - len(telemetry)} alert messages, {len(telemetry)} telemetry")
    if telemetry:
        last = telemetry[-1]
        # The DeviceStatus item the canary check reads (vigil_loop/canary.py): the thing's
        # latest telemetry, its time and its model object.
        item = {"thing_name": thing, "timestamp": last["sent_at"], "model": last.get("model") or {}}
        loop.device_status.put_item(Item=json.loads(json.dumps(item)))
        print(f"  DeviceStatus {thing}: {_short(item)}")
    ok = proc.returncode == 0
    loop.gg.report(thing, deployment["deploymentId"], "SUCCEEDED" if ok else "FAILED", healthy=ok)
    return {"exit": proc.returncode, "records": len(records), "bundle": str(bundle)}


# 4. The alerts ------------------------------------------------------------------------


def check_alerts(out: Path, expected_sha256: str) -> tuple[bool, list[dict[str, Any]]]:
    banner("4/4 the canary's alerts")
    path = out / "alerts.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    alerts = [r["message"] for r in records if r["topic"].endswith("/alerts")]
    for m in alerts:
        print(
            f"  {m['event_type']:<6} event {m['event_id'][:8]} {m['camera']}/{m['zone']} at "
            f"{m['media_offset_s']:6.1f}s score {m['score']:.2f} model_sha256 {m['model_sha256'][:12]}"
        )
    wrong = [m for m in alerts if m.get("model_sha256") != expected_sha256]
    ok = bool(alerts) and not wrong
    print(
        f"  {len(alerts)} alerts, "
        + (
            f"every one with the new model's digest {expected_sha256[:12]}"
            if ok
            else f"{len(wrong)} without the new model's digest {expected_sha256[:12]}"
            + ("" if alerts else " (no alerts at all)")
        )
    )
    return ok, alerts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT, help=f"working folder (default {OUT.relative_to(REPO)})")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs (default {EPOCHS})")
    p.add_argument("--worse", action="store_true", help="a candidate worse than the current model: the gate stops it")
    p.add_argument(
        "--skip-training", action="store_true", help="use the candidate a previous run left in --out (no training)"
    )
    args = p.parse_args(argv)
    started = time.time()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    model_dir, output_dir = out / "model", out / "training-output"
    if args.skip_training and (
        not (model_dir / "manifest.json").is_file() or not (output_dir / "comparison.json").is_file()
    ):
        p.error(f"--skip-training: no candidate in {out} (no model/manifest.json or training-output/comparison.json)")

    from moto import mock_aws

    from infra.config import STAGES_CONTEXT_KEY, load_stages

    config = load_stages(json.loads((REPO / "cdk.json").read_text())["context"][STAGES_CONTEXT_KEY])[STAGE]
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(key, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        POWERTOOLS_SERVICE_NAME="vigil-model-loop",
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_TRACE_DISABLED="true",
    )
    with mock_aws():
        banner("the dev stage's account (moto)")
        loop = Loop(out, config)
        current = loop.current_channel(out / "current-channel")
        if args.skip_training:
            banner("1/4 training: skipped, the candidate of a previous run")
        else:
            train(out, args.epochs, out / "current-channel")
        comparison = json.loads((output_dir / "comparison.json").read_text())
        if args.worse:
            comparison = worsen(comparison)
            print("  --worse: the candidate's figures edited to miss one event more than the current model")
        loop.upload_training_output(model_dir, output_dir, comparison)
        run = run_loop(loop, args.worse)
        # Without ModelPackageGroupName, ListModelPackages lists only unversioned packages
        # (ModelPackageType defaults to UNVERSIONED), never the group's versions Register adds.
        # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListModelPackages.html
        packages = loop.sm.list_model_packages(ModelPackageGroupName=loop.package_group)["ModelPackageSummaryList"]
        gg_calls = [name for name, _ in loop.gg.calls]
        deployments = len(loop.gg.deployments)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    candidate = manifest["files"][manifest["model_file"]]
    summary: dict[str, Any] = {
        "end": run["end"],
        "current": current,
        "candidate_model_sha256": candidate,
        "greengrass_calls": gg_calls,
        "model_packages": len(packages),
    }
    if args.worse:
        banner("summary")
        # The stack's own deployment is the only one; no package, no component version.
        untouched = not packages and deployments == 1 and "CreateComponentVersion" not in gg_calls
        ok = run["end"] == "GateFailed" and bool(run["gate"]["reasons"]) and untouched
        summary["gate"] = run["gate"]
        print(f"  ended: {run['end']}; model packages registered: {len(packages)}; deployments: {deployments - 1}")
        print("  " + ("the gate stopped the worse candidate, with the reason" if ok else "the gate did NOT stop it"))
    else:
        ok, alerts = check_alerts(out, run.get("component", {}).get("model_sha256", candidate))
        summary.update(
            component=run.get("component"),
            promoted_parameter=run.get("promoted_parameter"),
            alert_model_sha256=sorted({m["model_sha256"] for m in alerts}),
            check=run.get("check"),
        )
        ok &= run["end"] == "Promoted" and run.get("promoted_parameter") == run["component"]["component_version"]
        banner("summary")
        print(f"  ended: {run['end']}; model packages registered: {len(packages)}")
        print(f"  Greengrass calls (validated against botocore's model): {', '.join(gg_calls)}")
        print(f"  alerts: {(out / 'alerts.jsonl')}; logs: {out / 'training.log'}, {out / 'edge.log'}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"  total {time.time() - started:.0f} s: " + ("OK" if ok else "NOT OK"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
