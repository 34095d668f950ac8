"""The main job: the whole Vigil system, locally, on real footage. No AWS account, no network.

1. Train the window classifier on the labelled example clip and quantize it to int8
   TFLite (training/train.py, as SageMaker would run it).
2. Run the edge component on the clip (OpenCV decoding, motion features, LiteRT int8
   inference, the COCO detector on regions around motion, tracks, decisions, snapshots
   with each person's labelled box and the privacy mask blacked out), publishing alerts
   as JSON lines. With evidence on (the default here: the demo opts in, as a stage does
   in cdk.json; a device's default is off), the edge's real snapshot
   uploader sends each event's snapshot over HTTP to the evidence bucket in moto's S3
   (server mode on a free localhost port) and an ``update`` alert carries its key.
3. Pass every alert, as the IoT topic rule delivers it, through the real alert Lambda
   handler into an SNS topic in the same moto server, and print each notification that
   reaches a subscriber; fetch each snapshot notification's presigned link over HTTP and
   check it is a JPEG whose privacy mask is black. Then click the
   first notification's "false alarm" link through the real feedback handler (DynamoDB,
   S3, Secrets Manager in the same moto) and read the labelled rows it wrote with
   training's own channel loader.
4. Synthesize the CDK app (one CloudFormation template per stage).
5. Summarise: alerts against the ground truth, snapshot links, model size, speed, where
   things are.

Run with `make demo`; `--no-evidence` runs it with uploads off (then no request reaches
S3 and no snapshot notification is sent). Exit status 1 if the alerts do not match the
ground truth or a snapshot check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from edge_component.camera import CameraPipeline  # noqa: E402
from edge_component.config import ComponentConfig, parse_config  # noqa: E402
from edge_component.delivery.jsonl import JsonLinesPublisher  # noqa: E402
from edge_component.events.snapshots import SnapshotStore  # noqa: E402
from edge_component.evidence.uploader import SnapshotUploader  # noqa: E402
from edge_component.geometry import polygon_mask  # noqa: E402
from edge_component.model.bundle import load_bundle  # noqa: E402
from training.evaluate import breakdown, match_alerts  # noqa: E402

OUT = REPO / "build" / "demo"
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"
CONFIG = REPO / "examples" / "demo-config.yaml"
THING = "vigil-demo-cam"
MAX_DELAY_S = 1.5  # issue 11: each alert within 1.5 s of the person entering
REGION = "eu-west-1"
DEMO_BUCKET = "vigil-demo-evidence"  # in moto only
# Inside a privacy mask a snapshot must be black. JPEG codes 8x8 blocks, so blocks that
# straddle the mask's edge ring a little: pixels this far inside it are checked.
MASK_INSET_PX = 16
UPLOAD_WAIT_S = 30.0  # at most this long for the last uploads after the replay (a bound on a hang)
BLACK_MAX = 8  # brightest value (0-255) a "black" masked pixel may have after JPEG coding
# The service in a SigV4 credential scope (<key>/<date>/<region>/<service>/aws4_request), in
# an Authorization header or, %-encoded, in a presigned URL's X-Amz-Credential.
SIGV4_SERVICE = re.compile(r"Credential(?:=|%3D)[^/%]+(?:/|%2F)\d{8}(?:/|%2F)[^/%]+(?:/|%2F)([a-z0-9-]+)")


class DemoMoto:
    """moto in server mode on a free port of 127.0.0.1, its backends (the evidence bucket,
    SNS and SQS) emptied at the start; ``requests`` records ``(method, path, service)`` of
    each request it answers, the service read from the SigV4 credential scope.

    Use as a context manager: started on entry, stopped on exit.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def __enter__(self) -> DemoMoto:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        # moto's backends are per process, not per server: start from an empty cloud.
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10).close()
        # Record requests by wrapping the WSGI app werkzeug serves (ThreadedMotoServer has
        # no hook for it; werkzeug's BaseWSGIServer keeps the app in ``.app``).
        wsgi = self._server._server  # noqa: SLF001
        assert wsgi is not None  # start() returns once the server is made
        app = wsgi.app

        def recorded(environ, start_response):
            credential = environ.get("HTTP_AUTHORIZATION", "") or environ.get("QUERY_STRING", "")
            scope = SIGV4_SERVICE.search(credential)
            with self._lock:
                self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], scope[1] if scope else ""))
            return app(environ, start_response)

        wsgi.app = recorded
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on this server, with the demo's throwaway credentials."""
        import boto3

        return boto3.session.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION).client(
            service, endpoint_url=self.url
        )

    def s3_requests(self, since: int = 0) -> list[tuple[str, str, str]]:
        """The S3 requests among ``requests[since:]``."""
        with self._lock:
            return [r for r in self.requests[since:] if r[2] == "s3"]


class _AlertThenUpload:
    """The publisher the camera pipeline gets when evidence is on: the alert first, then
    its snapshot queued for upload, in the supervisor's order (edge_component/runtime.py),
    so an upload never delays an alert."""

    def __init__(self, publisher: JsonLinesPublisher, uploader: SnapshotUploader):
        self.publisher, self.uploader = publisher, uploader

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.publisher.publish(topic, message)
        self.uploader.offer(message)

    def close(self) -> None:
        self.publisher.close()


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block; restored after."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def native_output_to(log_path: Path, expected: tuple[type[BaseException], ...] = ()):
    """Send what native libraries (TensorFlow, LiteRT) write straight to the process's
    stderr into ``log_path``, so the demo's own lines stay readable. On an error, the
    log's tail is shown, unless the error is one of ``expected`` (the caller explains it)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except expected:
            raise
        except BaseException:
            os.dup2(saved, 2)
            show_log_tail(log_path)
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def show_log_tail(log_path: Path, lines: int = 30) -> None:
    print(f"--- last lines of {log_path.relative_to(REPO)} ---", file=sys.stderr)
    print("\n".join(log_path.read_text(errors="replace").splitlines()[-lines:]), file=sys.stderr)


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def train_model() -> tuple[Path, dict]:
    from training.train import parse_args, train

    banner("1/4 training (SageMaker script mode, run locally)")
    model_dir = OUT / "model"
    with native_output_to(OUT / "training.log"):
        report = train(
            parse_args(
                [
                    "--model-dir",
                    str(model_dir),
                    "--output-data-dir",
                    str(OUT / "training-output"),
                    "--train",
                    str(LABELS),
                ]
            )
        )
    print(
        f"trained on {LABELS.relative_to(REPO)}: threshold {report['threshold']:.3f}, "
        f"validation AUC keras {report['auc_keras']:.3f} / int8 {report['auc_int8']:.3f}, "
        f"max |int8 - keras| {report['max_abs_drift_int8_vs_keras']:.4f}"
    )
    return model_dir, report


def load_demo_config(evidence: bool, clip: Path | None = None) -> ComponentConfig:
    """examples/demo-config.yaml with its camera's source made absolute (or ``clip``), and
    with ``evidence`` the opt-in to uploads to DEMO_BUCKET. The file itself leaves them
    off (a device's default): it is the template users copy for their own camera, and
    ``python -m edge_component run --config`` with it must not send pictures anywhere."""
    raw = yaml.safe_load(CONFIG.read_text())
    for cam in raw["cameras"]:
        cam["source"] = str(clip or REPO / cam["source"])
    if evidence:
        raw["evidence"] = {"upload_snapshots": True, "bucket": DEMO_BUCKET}
    return parse_config(raw)


@dataclass
class EdgeRun:
    """What the edge step did: the camera's report, the alerts file, with evidence on the
    uploader's stats (else None), and every request moto answered while the edge ran."""

    report: Any
    alerts_path: Path
    uploads: dict[str, int] | None
    requests: list[tuple[str, str, str]] = field(default_factory=list)


def run_edge(model_dir: Path, moto: DemoMoto, config: ComponentConfig, out: Path = OUT) -> EdgeRun:
    """Replay the demo camera with the model in ``model_dir``; alerts to ``out``/alerts.jsonl,
    snapshots to ``out``/snapshots/. With ``config.evidence.upload_snapshots`` the
    snapshots go to the bucket on ``moto`` through the edge's uploader (its queue
    ``out``/evidence.sqlite), with throwaway credentials handed to its S3 client only
    (on a device they come from the Greengrass token exchange service)."""
    evidence = config.evidence
    banner("2/4 edge component on the real clip")
    if evidence.upload_snapshots:
        print(
            "  evidence uploads ON: the demo opts in, as a stage does with evidence.upload_snapshots in cdk.json\n"
            "  (off by default on a device: pictures are personal data). Each event's snapshot, privacy masks\n"
            f"  black, goes to s3://{evidence.bucket}/ in moto's S3 at {moto.url}; video and other frames\n"
            "  stay on the device. --no-evidence runs it with uploads off."
        )
    else:
        print("  evidence uploads OFF (the default on a device): snapshots stay on the device, nothing goes to S3")
    alerts_path = out / "alerts.jsonl"
    alerts_path.unlink(missing_ok=True)
    shutil.rmtree(out / "snapshots", ignore_errors=True)  # this run's evidence only
    for stale in out.glob("evidence.sqlite*"):  # and this run's uploads only
        stale.unlink()
    publisher: Any = JsonLinesPublisher(alerts_path)
    uploader = None
    if evidence.upload_snapshots:
        uploader = SnapshotUploader(
            out / "evidence.sqlite",
            out / "snapshots",
            thing_name=THING,
            bucket=str(evidence.bucket),
            publisher=publisher,
            client_factory=lambda: moto.client("s3"),
        ).start()
        publisher = _AlertThenUpload(publisher, uploader)
    since = len(moto.requests)
    detector = CameraPipeline(
        config, load_bundle(model_dir), publisher, thing_name=THING, snapshots=SnapshotStore(out / "snapshots")
    )
    uploads = None
    try:
        with native_output_to(out / "edge.log"):
            report = detector.run_replay(config.cameras[0])
            if uploader is not None:  # the replay ends at once; a device would go on uploading
                deadline = time.monotonic() + UPLOAD_WAIT_S
                while uploader.stats()["queued"] > 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                uploads = uploader.stats()
    finally:
        if uploader is not None:  # before the publisher: the last updates go out too
            uploader.close(drain_timeout_s=UPLOAD_WAIT_S)
        publisher.close()
    for m in report.alerts:
        print(
            f"  {m['event_type']:<6} event {m['event_id'][:8]} {m['camera']}/{m['zone']} "
            f"at {m['media_offset_s']:6.1f}s "
            + (f"{m['label']} " if "label" in m else "")
            + f"score {m['score']:.2f}"
            + (f" snapshot {m['snapshot']['file']}" if "snapshot" in m else "")
        )
    requests = moto.requests[since:]
    if uploads is not None:
        print(
            f"  evidence: {uploads['uploaded']} snapshots uploaded ({len(requests)} requests to moto), "
            f"{uploads['queued']} still queued, {uploads['given_up']} given up; each upload's update alert "
            "carries its s3_key"
        )
    else:
        print(f"  evidence: {len(requests)} requests reached moto while the edge ran")
    return EdgeRun(report, alerts_path, uploads, requests)


def run_cloud(
    alerts_path: Path, moto: DemoMoto, evidence_bucket: str | None, out: Path = OUT, with_feedback: bool = True
) -> list[dict]:
    """Every alert through the real Lambda handler into SNS on ``moto``; returns the
    notifications an SQS subscriber received. ``evidence_bucket``: the Lambda's
    ``EVIDENCE_BUCKET`` (None: unset), whose presigned links point at ``moto``.
    ``with_feedback``: feedback links in the notifications, and the first one's "false
    alarm" clicked (:class:`FeedbackDemo`, which retrains on it)."""
    banner("3/4 alert Lambda -> SNS (moto)")
    sys.path.insert(0, str(REPO / "lambda"))
    from vigil_alerts.local import LocalContext, load_handler_module, rule_event

    received = []
    # The handler's boto3 clients read these; AWS_ENDPOINT_URL sends every one to moto.
    with environment(
        AWS_PROFILE=None,
        AWS_DEFAULT_PROFILE=None,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN=None,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL=moto.url,
        POWERTOOLS_METRICS_NAMESPACE="Vigil",
        POWERTOOLS_SERVICE_NAME="vigil-alerts",
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="WARNING",
        ALERT_TOPIC_ARN=None,
        SITE_NAME="Vigil demo lab",
        TIME_ZONE="Europe/London",
        STAGE="demo",
        EVIDENCE_BUCKET=evidence_bucket,
        EVENTS_TABLE=None,
        FEEDBACK_URL=None,
        FEEDBACK_SECRET_ARN=None,
    ):
        sns, sqs = moto.client("sns"), moto.client("sqs")
        topic_arn = sns.create_topic(Name="vigil-demo-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="vigil-demo-subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        os.environ["ALERT_TOPIC_ARN"] = topic_arn
        feedback = FeedbackDemo() if with_feedback else None
        if feedback is not None:
            os.environ.update(feedback.alert_environment())
        app = load_handler_module()
        app.use_clients()  # fresh clients on this moto (a second run in one process gets its own)
        emf = io.StringIO()  # Powertools writes CloudWatch metrics (EMF) to stdout, as in Lambda
        with contextlib.redirect_stdout(emf):
            for line in alerts_path.read_text().splitlines():
                record = json.loads(line)
                if record["topic"] != f"vigil/{THING}/alerts":
                    continue
                # What the topic rule's SELECT delivers (thing from the topic, receipt time):
                event = rule_event(record["message"], record["topic"])
                app.handler(event, LocalContext())
        metrics_path = out / "lambda-metrics.jsonl"
        metrics_path.write_text(emf.getvalue())
        delivered = len(alerts_path.read_text().splitlines())
        shown = metrics_path.relative_to(REPO) if metrics_path.is_relative_to(REPO) else metrics_path
        print(
            f"  {delivered} alert messages through the handler; its {len(emf.getvalue().splitlines())} CloudWatch "
            f"metric records (EMF) are in {shown}"
        )
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                break
            for msg in batch:
                body = json.loads(msg["Body"])
                received.append(body)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
        for n in received:
            print(f"\n  Subject: {n.get('Subject')}")
            for line in str(n.get("Message", "")).splitlines():
                print(f"  | {line}")
        if feedback is not None and received:
            feedback.click_false_alarm(str(received[0].get("Message", "")))
        app.use_clients()  # the next run makes its own
    return received


def is_snapshot_notification(notification: dict) -> bool:
    """True for the Lambda's snapshot follow-up (message attribute ``severity`` = ``snapshot``)."""
    severity = (notification.get("MessageAttributes") or {}).get("severity") or {}
    return severity.get("Value") == "snapshot"


@dataclass
class SnapshotCheck:
    """One snapshot notification's link, fetched: the event it names, HTTP status,
    Content-Type, size, image size, the brightest pixel inside the privacy masks and the
    mean outside them; ``ok`` when it is a JPEG whose masks are black and whose room is not."""

    event_id: str
    url: str
    status: int = 0
    content_type: str = ""
    size: int = 0
    shape: tuple[int, int] = (0, 0)
    mask_max: int = -1
    outside_mean: float = 0.0
    error: str = ""
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return not self.error and 0 <= self.mask_max <= BLACK_MAX and self.outside_mean > 30


def check_snapshot_link(url: str, config: ComponentConfig) -> SnapshotCheck:
    """GET ``url`` (a presigned link on moto) and check the image against the first
    camera's ``privacy_masks``: pixels more than MASK_INSET_PX inside them at most
    BLACK_MAX, the rest not black (mean over 30)."""
    key = urlsplit(url).path.split("/")
    check = SnapshotCheck(event_id=key[-2] if len(key) >= 2 else "", url=url)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own moto URL
            check.status, check.content_type = response.status, response.headers["Content-Type"]
            check.body = response.read()
    except OSError as exc:
        check.error = f"GET failed: {exc}"
        return check
    check.size = len(check.body)
    image = cv2.imdecode(np.frombuffer(check.body, np.uint8), cv2.IMREAD_COLOR)
    if check.body[:3] != b"\xff\xd8\xff" or image is None:
        check.error = "not a JPEG"
        return check
    h, w = image.shape[:2]
    check.shape = (w, h)
    masks = config.cameras[0].privacy_masks
    if not masks:
        check.error = "the demo camera has no privacy mask to check"
        return check
    inside = polygon_mask(masks, w, h)
    kernel = np.ones((2 * MASK_INSET_PX + 1, 2 * MASK_INSET_PX + 1), np.uint8)
    deep = cv2.erode(inside, kernel).astype(bool)
    outside = ~cv2.dilate(inside, kernel).astype(bool)
    if not deep.any():
        check.error = f"the privacy masks are too small to check {MASK_INSET_PX} px inside them"
        return check
    check.mask_max = int(image[deep].max())
    check.outside_mean = float(image[outside].mean())
    return check


def check_snapshots(notifications: list[dict], config: ComponentConfig) -> list[SnapshotCheck]:
    """Fetch the presigned link of every snapshot notification and check the image."""
    checks = []
    for n in notifications:
        if not is_snapshot_notification(n):
            continue
        found = re.search(r"^Link:\s+(\S+)", str(n.get("Message", "")), re.MULTILINE)
        if not found:
            checks.append(SnapshotCheck(event_id="", url="", error="no Link in the snapshot notification"))
            continue
        checks.append(check_snapshot_link(found[1], config))
    for c in checks:
        expires = parse_qs(urlsplit(c.url).query).get("X-Amz-Expires", ["?"])[0]
        if c.error:
            print(f"  snapshot of event {c.event_id[:8]}: {c.error}  <-- expected a masked JPEG")
        else:
            print(
                f"  snapshot of event {c.event_id[:8]}: GET {c.status} {c.content_type}, {c.size:,} bytes, "
                f"{c.shape[0]}x{c.shape[1]}, link valid {expires} s; privacy mask black (max {c.mask_max} "
                f"inside), room visible (mean {c.outside_mean:.0f} outside): {'OK' if c.ok else 'FAILED'}"
            )
    return checks


class FeedbackDemo:
    """The feedback half in moto: events table, training data bucket, link key; clicks a
    notification's "false alarm" link through the real handler and reads the rows back."""

    URL = "https://vigil-demo-feedback.lambda-url.eu-west-1.on.aws/"

    def __init__(self) -> None:
        import boto3

        self.dynamodb, self.s3 = boto3.client("dynamodb"), boto3.client("s3")
        self.secrets = boto3.client("secretsmanager")
        self.table, self.bucket = "vigil-demo-events", "vigil-demo-training-data"
        keys = [("thing", "HASH"), ("event_id", "RANGE")]
        self.dynamodb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": n, "KeyType": t} for n, t in keys],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        key = os.urandom(32).hex()  # CloudFormation generates the stage's (GenerateSecretString)
        self.secret_arn = self.secrets.create_secret(Name="vigil-demo-link-key", SecretString=key)["ARN"]

    def alert_environment(self) -> dict[str, str]:
        return {"EVENTS_TABLE": self.table, "FEEDBACK_URL": self.URL, "FEEDBACK_SECRET_ARN": self.secret_arn}

    def click_false_alarm(self, body: str) -> None:
        import html
        import re
        from urllib.parse import urlsplit

        from training.channels import load_channel
        from vigil_feedback import handler as feedback

        links = re.findall(r"^False alarm:\s+(\S+)$", body, re.M)
        if not links:
            print("  feedback: the notification carries no 'false alarm' link")
            return
        settings = feedback.Settings(
            events_table=self.table, secret_arn=self.secret_arn, training_bucket=self.bucket, stage="demo"
        )
        clients = feedback.Clients(dynamodb=self.dynamodb, s3=self.s3, secrets=self.secrets)
        request = {"rawQueryString": urlsplit(links[0]).query, "requestContext": {"http": {"method": "POST"}}}
        # The handler's own log lines (CloudWatch's in AWS) are shown in the demo's style,
        # not as raw "INFO:vigil.feedback:..." records through the root logger.
        handler_log, said_lines = logging.getLogger("vigil.feedback"), []
        capture = logging.Handler()
        capture.emit = lambda record: said_lines.append(record.getMessage())  # type: ignore[method-assign]
        propagate = handler_log.propagate
        handler_log.addHandler(capture)
        handler_log.propagate = False
        try:
            page = feedback.handle(request, settings=settings, clients=clients)
        finally:
            handler_log.removeHandler(capture)
            handler_log.propagate = propagate
        said = html.unescape(re.sub(r"<[^>]+>", " ", page["body"].split("<body>")[-1]))
        print(f"\n  feedback: 'false alarm' clicked -> HTTP {page['statusCode']}: {' '.join(said.split())}")
        for line in said_lines:
            print(f"  feedback: the handler logs: {line}")
        channel = OUT / "feedback-channel"
        shutil.rmtree(channel, ignore_errors=True)
        for obj in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            local = channel / obj["Key"].removeprefix("train/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read())
            print(f"  feedback: s3://{self.bucket}/{obj['Key']} -> {local.relative_to(REPO)}")
        if not channel.is_dir():
            return
        ds = load_channel(channel)
        print(f"  feedback: training's loader reads {len(ds)} rows, labels {sorted(set(ds.y.tolist()))}")
        # A training run on the demo clip plus the verdict's rows: the labelled clip beside
        # the feedback folder (its clip path made absolute), as the bucket's train/ holds both.
        labels = json.loads(LABELS.read_text())
        labels["clip"] = str((LABELS.parent / labels["clip"]).resolve())
        (channel / LABELS.name).write_text(json.dumps(labels))
        self.retrain(channel, len(ds))

    def retrain(self, channel: Path, feedback_rows: int) -> None:
        import logging

        from training.gates import GateError
        from training.train import parse_args, train

        seen: list[str] = []
        log_path = OUT / "training-feedback.log"
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
        train_log = logging.getLogger("vigil.train")
        level = train_log.level
        train_log.addHandler(handler)
        train_log.setLevel(logging.INFO)
        report, refused = None, None
        try:
            with native_output_to(log_path, expected=(GateError,)):
                report = train(
                    parse_args(
                        [
                            "--model-dir",
                            str(OUT / "model-with-feedback"),
                            "--output-data-dir",
                            str(OUT / "training-feedback-output"),
                            "--train",
                            str(channel),
                        ]
                    )
                )
        except GateError as err:
            # The demo's events are real intrusions: "false alarm" contradicts the clip's
            # labels and the retrained model may fail a gate; the run read the rows either way.
            refused = str(err)
        finally:
            train_log.removeHandler(handler)
            train_log.setLevel(level)
        read = [m for m in seen if "feedback rows" in m]
        log_name = log_path.relative_to(REPO)
        if not read:
            # The run did not read the verdict's rows: not the expected outcome, show why.
            print(f"  feedback: the training run read no feedback rows (log: {log_name})")
            show_log_tail(log_path)
        elif report is not None:
            print(f"  feedback: the training run read the {feedback_rows} labelled rows: {'; '.join(read)}")
            print(f"  feedback: retrained threshold {report['threshold']:.3f}, AUC keras {report['auc_keras']:.3f}")
        else:
            # The demo's events are real intrusions, so "false alarm" contradicts the clip's
            # labels and a gate refusing the candidate is the expected outcome.
            gates = sorted({part.split(" gate:")[0].strip() for part in str(refused).split("; ") if " gate:" in part})
            print(
                f"  feedback: the training run read the {feedback_rows} labelled rows; its candidate was refused"
                f" by the {', '.join(gates) or 'a'} gate, as expected: the verdict contradicts the clip's own"
                f" labels (log: {log_name})"
            )


def synth() -> list[Path]:
    banner("4/4 cdk synth (offline, no credentials)")
    out = REPO / "cdk.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(["npx", "cdk", "synth", "--quiet"], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        raise SystemExit("cdk synth failed")
    templates = sorted(out.rglob("*.template.json"))
    for t in templates:
        resources = json.loads(t.read_text()).get("Resources", {})
        print(f"  {t.relative_to(REPO)}: {len(resources)} resources")
    return templates


def evidence_verdict(
    starts: list[dict],
    notifications: list[dict],
    checks: list[SnapshotCheck],
    leaks: list[tuple[str, str, str]],
    evidence_on: bool,
) -> tuple[bool, str]:
    """The summary's evidence check: with evidence on, every event start has a snapshot
    notification whose link fetched a masked JPEG (and there is no other); off, ``leaks``
    is empty (the requests moto got while the edge ran and any request to the evidence
    bucket after it was made) and no snapshot notification was sent. Returns (ok, the
    line to print)."""
    snapshot_notes = [n for n in notifications if is_snapshot_notification(n)]
    if not evidence_on:
        ok = not leaks and not snapshot_notes
        return ok, (
            f"evidence off: {len(leaks)} requests from the edge or to the evidence bucket, "
            f"{len(snapshot_notes)} snapshot notifications"
            + (" (no image left the device)" if ok else "  <-- expected none")
        )
    start_ids = [s["event_id"] for s in starts]
    good = {c.event_id for c in checks if c.ok}
    found = sum(1 for e in start_ids if e in good)
    ok = found == len(start_ids) and len(snapshot_notes) == len(start_ids)
    return ok, (
        f"snapshot links: {found}/{len(start_ids)} event starts have a snapshot notification whose link fetched "
        f"a JPEG with the privacy mask black ({len(snapshot_notes)} snapshot notifications)"
        + ("" if ok else "  <-- expected one per start")
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="examples/run_demo.py", description=__doc__.split("\n")[0])
    p.add_argument(
        "--no-evidence",
        dest="evidence",
        action="store_false",
        help="evidence uploads off (a device's default): no snapshot leaves the edge, no snapshot notification",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("training.log", "edge.log"):
        (OUT / name).unlink(missing_ok=True)
    model_dir, train_report = train_model()
    config = load_demo_config(args.evidence)
    with DemoMoto() as moto:
        moto.client("s3").create_bucket(Bucket=DEMO_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        after_setup = len(moto.requests)
        edge_run = run_edge(model_dir, moto, config)
        notifications = run_cloud(edge_run.alerts_path, moto, DEMO_BUCKET if args.evidence else None)
        checks = check_snapshots(notifications, config)
        # What would mean a picture left the device (the feedback step has its own bucket).
        leaks = edge_run.requests + [r for r in moto.s3_requests(after_setup) if r[1].startswith(f"/{DEMO_BUCKET}")]
    edge, alerts_path = edge_run.report, edge_run.alerts_path
    templates = synth()

    gt = [(iv["start_s"], iv["end_s"]) for iv in json.loads(LABELS.read_text())["abnormal"]]
    starts = edge.starts
    banner("summary")
    result = match_alerts(
        [s["media_offset_s"] for s in starts], gt, edge.stats.frames_in / edge.stats.fps, max_delay_s=MAX_DELAY_S
    )
    for i, r in enumerate(result.intervals, 1):
        span = f"intrusion {i} ({r.start_s:>3}-{r.end_s:>3} s)"
        if len(r.alerts_at_s) == 1 and r.delay_s <= MAX_DELAY_S:
            print(f"  {span}: alert at {r.alerts_at_s[0]:.1f} s, {r.delay_s:.1f} s after it began")
        else:
            print(
                f"  {span}: {len(r.alerts_at_s)} alerts "
                + ", ".join(f"{t:.1f} s" for t in r.alerts_at_s)
                + f"  <-- expected one within {MAX_DELAY_S:.0f} s"
            )
    ok = result.found == len(gt) and not result.duplicates and not result.false_alerts_at_s
    print(f"  alerts outside the intrusions: {len(result.false_alerts_at_s)}")
    # Per zone and label: what the zone watches against what the label file says was in view.
    spans = [(iv["start_s"], iv["end_s"], iv.get("label")) for iv in json.loads(LABELS.read_text())["abnormal"]]
    zones = sorted({z["name"] for c in yaml.safe_load(CONFIG.read_text())["cameras"] for z in c["zones"]})
    duration = edge.stats.frames_in / edge.stats.fps
    for key, g in breakdown(starts, spans, zones, duration, max_delay_s=MAX_DELAY_S).items():
        delays = [r.delay_s for r in g.intervals if r.found]
        print(
            f"  {key}: {len(g.intervals)} labelled, {g.found} found, {g.late} late, {g.missed} missed, "
            f"{len(g.false_alerts_at_s)} false" + (f", delay {min(delays):.1f}-{max(delays):.1f} s" if delays else "")
        )
    snaps = sorted((OUT / "snapshots").glob("*.jpg"))
    labelled = [s for s in starts if "label" in s and "snapshot" in s]
    print(f"  labelled snapshots (box, label and score drawn): {len(labelled)} of {len(starts)} alerts")
    for s in labelled[:6]:
        print(f"    {s['snapshot']['file']}: {s['label']} {s['score']:.2f} box {s['box']}")
    print(
        f"  object stage: {edge.detector_calls} detector calls over {edge.stats.analysed} analysed frames, "
        f"{1000 * edge.detect_s / max(edge.detector_calls, 1):.0f} ms per call on this machine"
    )
    alert_notes = [n for n in notifications if not is_snapshot_notification(n)]
    print(
        f"  notifications delivered by SNS: {len(alert_notes)} alerts (one per event start; "
        f"{len(edge.alerts) - len(starts)} update/end messages acknowledged without notifying)"
        + (f" and {len(notifications) - len(alert_notes)} snapshot follow-ups" if args.evidence else "")
    )
    ok &= len(alert_notes) == len(starts)
    evidence_ok, evidence_line = evidence_verdict(starts, notifications, checks, leaks, args.evidence)
    print(f"  {evidence_line}")
    ok &= evidence_ok
    sizes = train_report["size_bytes"]
    print(
        f"  model: int8 {sizes['int8']:,} bytes (float {sizes['float']:,}, {sizes['int8'] / sizes['float']:.0%}), "
        f"threshold {train_report['threshold']:.3f}"
    )
    print(
        f"  edge: {edge.stats.frames_in} frames ({edge.stats.analysed} analysed) in {edge.wall_s:.1f} s = "
        f"{edge.source_fps:.0f} frames/s, {1000 * edge.inference_s / max(edge.windows, 1):.2f} ms per window's "
        f"inference while decoding runs beside it (the model alone: make bench)"
    )
    print(f"  alerts:    {alerts_path.relative_to(REPO)}")
    print(f"  snapshots: {(OUT / 'snapshots').relative_to(REPO)}/ ({len(snaps)} JPEGs)")
    print(f"  model:     {model_dir.relative_to(REPO)}/ ({', '.join(sorted(p.name for p in model_dir.iterdir()))})")
    print("  templates: " + ", ".join(str(t.relative_to(REPO)) for t in templates))
    print(f"  logs:      {(OUT / 'training.log').relative_to(REPO)}, {(OUT / 'edge.log').relative_to(REPO)}")
    print(
        f"  total {time.time() - started:.0f} s: "
        + (
            "OK, one alert per intrusion" + (", each with its masked snapshot's link" if args.evidence else "")
            if ok
            else "MISMATCH against the ground truth or the evidence checks"
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
