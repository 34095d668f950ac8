"""Alert Lambda timings: cold import and first invocation in fresh interpreters, then
per-alert time against moto (in-process SNS, SQS and DynamoDB).

    .venv/bin/python benchmarks/bench_lambda.py [--cold-runs 5] [--alerts 200]

Numbers are for this machine and moto, not Lambda on arm64: they compare code paths
(what validation, formatting, idempotency cost) rather than predict billed duration.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAMBDA_DIR = REPO / "lambda"
REGION = "us-east-1"
sys.path.append(str(LAMBDA_DIR))

from vigil_alerts.local import sample_event as start_event  # noqa: E402

# Runs in a fresh interpreter: import the handler, then one invocation under moto.
COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
sys.path.append(sys.argv[1])
from vigil_alerts.local import LocalContext, load_handler_module
app = load_handler_module()
t1 = time.perf_counter()
from moto import mock_aws
import boto3
with mock_aws():
    arn = boto3.session.Session().client("sns").create_topic(Name="bench")["TopicArn"]  # own loader cache
    import os; os.environ["ALERT_TOPIC_ARN"] = arn
    event = json.loads(sys.argv[2])
    app.use_clients()
    t2 = time.perf_counter()
    app.handler(event, LocalContext())
    t3 = time.perf_counter()
print("BENCH " + json.dumps({"import_s": t1 - t0, "first_invocation_s": t3 - t2}))
"""


def cold(runs: int) -> dict[str, float]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
    }
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT, str(LAMBDA_DIR), json.dumps(start_event())],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        [line] = [line for line in out.stdout.splitlines() if line.startswith("BENCH ")]
        samples.append(json.loads(line[len("BENCH ") :]))
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


# `import app` in a fresh interpreter with Lambda's environment: LAMBDA_TASK_ROOT set
# makes X-Ray take its LocalSampler and the Tracer trace (and patch) as it does in Lambda.
IMPORT_SCRIPT = """
import sys, time
if sys.argv[2] == "no-crt":
    sys.modules["awscrt"] = None  # botocore as installed without the [crt] extra
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
import app
print("BENCH", time.perf_counter() - t0, "boto3" in sys.modules, "botocore.client" in sys.modules)
"""
COLD_IMPORT_TARGET_S = 0.300


def cold_import_as_lambda(runs: int, variant: str) -> dict[str, float]:
    """Median ``import app`` seconds (and of a bare ``import sys`` for scale) with
    LAMBDA_TASK_ROOT set; also whether boto3 / botocore.client were loaded."""
    env = {**os.environ, "LAMBDA_TASK_ROOT": str(LAMBDA_DIR), "AWS_LAMBDA_FUNCTION_NAME": "vigil-alerts"}
    env.setdefault("AWS_DEFAULT_REGION", REGION)
    imports, loaded = [], set()
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_SCRIPT, str(LAMBDA_DIR), variant],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        _, seconds, boto3_loaded, client_loaded = out.stdout.split()[-4:]
        imports.append(float(seconds))
        loaded |= {
            name for name, flag in (("boto3", boto3_loaded), ("botocore.client", client_loaded)) if flag == "True"
        }
    bare = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
    return {
        "import_s": statistics.median(imports),
        "bare_interpreter_s": statistics.median(bare),
        "loaded": sorted(loaded),
    }


def per_alert(count: int) -> dict[str, float]:
    import boto3
    from moto import mock_aws

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    from vigil_alerts.delivery import CameraThrottle, EventDeduplicator
    from vigil_alerts.local import LocalContext, load_handler_module
    from vigil_alerts.notify import format_notification
    from vigil_alerts.processing import process_alert
    from vigil_alerts.validation import InvalidAlertError, validate_alert

    app = load_handler_module()
    # Logs and metrics are produced as in Lambda (their cost counts) but not shown.
    # (Not POWERTOOLS_METRICS_DISABLED: Powertools 3.37 then skips the per-invocation
    # flush yet still prints every 100 data points.)
    sink = open(os.devnull, "w")
    app.logger.registered_handler.setStream(sink)
    results: dict[str, float] = {}

    def timed(name: str, make_event, call) -> None:
        events = [make_event() for _ in range(count)]
        with contextlib.redirect_stdout(sink):
            start = time.perf_counter()
            for event in events:
                call(event)
            results[name] = (time.perf_counter() - start) / count

    def rejecting(event):
        try:
            validate_alert(event)
        except InvalidAlertError:
            return
        raise AssertionError("accepted")

    validate_alert(start_event())  # compile the schema outside the timings
    timed("validate (valid start)", start_event, validate_alert)
    timed("validate (thing mismatch)", lambda: start_event(topic_thing_name="cam-02"), rejecting)
    alert = validate_alert(start_event())
    timed("format_notification", start_event, lambda _: format_notification(alert, time_zone="Europe/Berlin"))

    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        arn = sns.create_topic(Name="bench")["TopicArn"]
        dynamodb.create_table(
            TableName="bench",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        timed("process_alert, thin (SNS)", start_event, lambda e: process_alert(e, sns_client=sns, topic_arn=arn))
        dedup = EventDeduplicator("bench", dynamodb_client=dynamodb)
        dedup.register_lambda_context(LocalContext())
        throttle = CameraThrottle("bench", dynamodb_client=dynamodb, max_per_window=10**6, window_s=3600)
        timed(
            "process_alert, dedup + throttle",
            start_event,
            lambda e: process_alert(e, sns_client=sns, topic_arn=arn, deduplicator=dedup, throttle=throttle),
        )
        os.environ["ALERT_TOPIC_ARN"] = arn
        app.use_clients(sns=sns, dynamodb=dynamodb)
        context = LocalContext()
        timed("handler, thin", start_event, lambda e: app.handler(e, context))
        os.environ["IDEMPOTENCY_TABLE"] = "bench"
        timed("handler, dedup", start_event, lambda e: app.handler(e, context))
        os.environ.pop("IDEMPOTENCY_TABLE")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--alerts", type=int, default=200)
    args = parser.parse_args()

    print(f"cold import as Lambda runs it (LAMBDA_TASK_ROOT set), median of {args.cold_runs}")
    for variant in ("venv", "no-crt"):
        r = cold_import_as_lambda(args.cold_runs, variant)
        print(
            f"  import app [{variant:6}] {r['import_s'] * 1000:8.1f} ms  "
            f"= {r['import_s'] / COLD_IMPORT_TARGET_S:4.2f} x the 300 ms target, "
            f"{r['import_s'] / r['bare_interpreter_s']:4.1f} x a bare interpreter start; "
            f"loaded at import: {', '.join(r['loaded']) or 'neither boto3 nor botocore.client'}"
        )
    cold_times = cold(args.cold_runs)
    print(f"cold, median of {args.cold_runs} fresh interpreters")
    print(f"  import app (tracing off, no LAMBDA_TASK_ROOT)   {cold_times['import_s'] * 1000:8.1f} ms")
    print(f"  first invocation (boto3, clients, schema)       {cold_times['first_invocation_s'] * 1000:8.1f} ms")
    print(f"warm, mean per alert over {args.alerts} alerts")
    for name, seconds in per_alert(args.alerts).items():
        print(f"  {name:<46} {seconds * 1000:8.3f} ms")


if __name__ == "__main__":
    main()
