"""Feedback end to end against moto (DynamoDB, S3, Secrets Manager, SNS): the alert
Lambda's notification carries two signed links, its end message stores the features,
the feedback handler records the first verdict once and writes rows that training's own
loader (training.channels.load_channel, what train.py's load_splits calls) reads.

Function URL requests are payload format 2.0 (``rawQueryString``,
``requestContext.http.method``) and responses ``statusCode``/``headers``/``body``:
https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import numpy as np
import pytest

from edge_component.analysis.features import FEATURE_NAMES, FEATURE_VERSION
from training.channels import load_channel
from vigil_alerts.feedback import FeedbackSigner
from vigil_alerts.local import sample_event
from vigil_alerts.processing import process_alert
from vigil_alerts.sms import sms_length
from vigil_feedback import handler as feedback
from vigil_feedback.links import LinkError, parse_link, sign
from vigil_feedback.secret import forget_keys, hmac_key
from vigil_feedback.store import FEATURE_COLUMNS, rows_key

REGION = "us-east-1"
EVENTS = "vigil-events"
BUCKET = "vigil-training-data"
URL = "https://abc123.lambda-url.us-east-1.on.aws/"
NOW = datetime(2024, 7, 1, 12, 3, 8, tzinfo=UTC)
WINDOWS = [[round(0.01 * i + 0.001 * j, 6) for j in range(8)] for i in range(5)]


class Env:
    def __init__(self) -> None:
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.secrets = boto3.client("secretsmanager", region_name=REGION)
        self.dynamodb.create_table(
            TableName=EVENTS,
            KeySchema=[
                {"AttributeName": "thing", "KeyType": "HASH"},
                {"AttributeName": "event_id", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "thing", "AttributeType": "S"},
                {"AttributeName": "event_id", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self.s3.create_bucket(Bucket=BUCKET)
        self.secret_arn = self.secrets.create_secret(Name="vigil-link-key", SecretString="k" * 64)["ARN"]
        self.settings = feedback.Settings(
            events_table=EVENTS, secret_arn=self.secret_arn, training_bucket=BUCKET, stage="dev"
        )
        self.clients = feedback.Clients(dynamodb=self.dynamodb, s3=self.s3, secrets=self.secrets)
        self.signer = FeedbackSigner(url=URL, key=lambda: hmac_key(self.secrets, self.secret_arn), link_s=7 * 86400)

    def request(self, link: str, method: str = "POST", now: datetime = NOW) -> dict:
        event = {
            "version": "2.0",
            "rawQueryString": urlsplit(link).query,
            "requestContext": {"http": {"method": method}},
        }
        return feedback.handle(event, settings=self.settings, clients=self.clients, now=now.timestamp())

    def item(self, thing: str, event_id: str) -> dict:
        key = {"thing": {"S": thing}, "event_id": {"S": event_id}}
        return self.dynamodb.get_item(TableName=EVENTS, Key=key, ConsistentRead=True).get("Item", {})

    def row_keys(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.fixture
def env(aws) -> Env:
    forget_keys()
    yield Env()
    forget_keys()


def end_event(start_event, *, features=True, **overrides):
    fields = {
        "schema_version": "1.2",
        "event_type": "end",
        "sequence": 2,
        "ended_at": "2024-07-01T12:03:27Z",
        "sent_at": "2024-07-01T12:03:27.500Z",
        "received_at_ms": 1719835407600,
        "end_reason": "quiet",
        **overrides,
    }
    if features:
        fields["features"] = {"feature_version": FEATURE_VERSION, "windows": WINDOWS}
    return start_event(**fields)


def notify(env, topic, start_event) -> tuple[str, str, dict]:
    """Process a start alert with links; the (false alarm, correct) links from the e-mail body."""
    process_alert(start_event(), sns_client=topic.sns, topic_arn=topic.arn, feedback=env.signer, now=NOW)
    ((message,),) = [p[1:2] for p in topic.published()]
    parts = json.loads(message)
    found = dict(re.findall(r"^(False alarm|Correct):\s+(\S+)$", parts["email"], re.M))
    return found["False alarm"], found["Correct"], parts


def store_end(env, topic, start_event, **kw) -> dict:
    return process_alert(
        end_event(start_event, **kw),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        feedback=env.signer,
        events_table=EVENTS,
        dynamodb_client=env.dynamodb,
        now=NOW,
    )


def test_notification_carries_two_links_that_verify(env, topic, start_event, thing, event_id):
    false_link, correct_link, parts = notify(env, topic, start_event)
    key = hmac_key(env.secrets, env.secret_arn)
    for link, verdict in ((false_link, "false"), (correct_link, "true")):
        assert link.startswith(URL + "?")
        params = parse_qs(urlsplit(link).query)
        assert params["e"] == [f"{thing}/{event_id}"] and params["v"] == [verdict]
        assert int(params["x"][0]) == int(NOW.timestamp()) + 7 * 86400
        parsed = parse_link(urlsplit(link).query, key, NOW.timestamp())
        assert (parsed.thing, parsed.event_id, parsed.verdict) == (thing, event_id, verdict)
    assert "links work until 2024-07-08" in parts["email"]
    # A signed link is longer than one SMS: the text stays one SMS, without links.
    assert URL not in parts["sms"]
    _, used, allowed = sms_length(parts["sms"])
    assert used <= allowed


def test_valid_link_records_once_and_writes_rows_training_reads(env, topic, start_event, thing, event_id, tmp_path):
    false_link, correct_link, _ = notify(env, topic, start_event)
    assert store_end(env, topic, start_event)["features_stored"] is True

    confirm = env.request(false_link, method="GET")
    assert confirm["statusCode"] == 200 and '<form method="post"' in confirm["body"]
    assert "verdict" not in env.item(thing, event_id)  # a GET (a link scanner) records nothing

    first = env.request(false_link)
    assert first["statusCode"] == 200, first["body"]
    assert "Recorded: &#x27;false alarm&#x27;" in first["body"]
    assert "5 feature vector(s)" in first["body"]
    assert first["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "src=" not in first["body"] and "href=" not in first["body"]  # no external assets
    item = env.item(thing, event_id)
    assert item["verdict"]["S"] == "false"
    key = rows_key("dev", FEATURE_VERSION, thing, event_id)
    assert key == f"train/feedback/dev/v{FEATURE_VERSION}/{thing}/{event_id}.csv"
    assert env.row_keys() == [key] and item["rows_key"]["S"] == key

    # Replay: same answer, nothing new.
    again = env.request(false_link)
    assert again["statusCode"] == 200 and "Already recorded" in again["body"]
    assert env.item(thing, event_id)["verdict_at"] == item["verdict_at"]
    assert env.row_keys() == [key]
    # The other verdict later is refused; the first stays.
    other = env.request(correct_link)
    assert other["statusCode"] == 409 and "already marked" in other["body"]
    assert env.item(thing, event_id)["verdict"]["S"] == "false"

    # Lay the bucket's train/ prefix out as SageMaker's S3Prefix channel does, and read it
    # with training's loader.
    channel = tmp_path / "train"
    local = channel / key.removeprefix("train/")
    local.parent.mkdir(parents=True)
    local.write_bytes(env.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    ds = load_channel(channel)
    assert ds.y.tolist() == [0] * len(WINDOWS)  # false alarm: normal windows
    np.testing.assert_allclose(ds.X, np.array(WINDOWS, np.float32))
    assert ds.times.tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]  # evenly spread over the 20-s event
    assert set(ds.clips.tolist()) == {f"feedback/{thing}/cam0"}


def test_correct_labels_rows_abnormal_and_mix_with_other_data(env, topic, start_event, thing, event_id, tmp_path):
    _, correct_link, _ = notify(env, topic, start_event)
    store_end(env, topic, start_event)
    assert env.request(correct_link)["statusCode"] == 200
    (key,) = env.row_keys()
    channel = tmp_path / "train"
    (channel / key.removeprefix("train/")).parent.mkdir(parents=True)
    (channel / key.removeprefix("train/")).write_bytes(env.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    header = "clip,time_s,zone," + ",".join(FEATURE_NAMES) + ",label\n"
    (channel / "site.csv").write_text(
        header + "a,0,room," + ",".join(["0.5"] * 8) + ",0\n" + "a,1,room," + ",".join(["0.9"] * 8) + ",1\n"
    )
    # Rows of another feature version are left out: their numbers mean something else.
    old = channel / "feedback" / "dev" / "v0" / thing / "old.csv"
    old.parent.mkdir(parents=True)
    old.write_text(header + "x,0,room," + ",".join(["0.1"] * 8) + ",1\n")
    ds = load_channel(channel)
    assert ds.y.tolist() == [0, 1] + [1] * len(WINDOWS)
    assert len(ds) == 2 + len(WINDOWS)


def test_missing_features_records_verdict_without_rows_and_says_so(env, topic, start_event, thing, event_id):
    false_link, _, _ = notify(env, topic, start_event)
    response = env.request(false_link)  # the event is still open: no end yet
    assert response["statusCode"] == 200
    assert "No training rows were written" in response["body"] and "have not arrived" in response["body"]
    assert env.item(thing, event_id)["verdict"]["S"] == "false"
    assert env.row_keys() == []
    # An end from a device that sends no features: still none.
    assert store_end(env, topic, start_event, features=False)["features_stored"] is False
    body = env.request(false_link)["body"]
    assert "sent no feature vectors" in body and "added when the event ends" not in body and env.row_keys() == []
    # Once an end with features arrived, opening the link again adds them (the verdict stays the first).
    store_end(env, topic, start_event)
    replay = env.request(false_link)
    assert "Already recorded" in replay["body"] and "5 feature vector(s)" in replay["body"]
    assert len(env.row_keys()) == 1


def test_expired_link_is_410(env, topic, start_event, thing, event_id):
    false_link, _, _ = notify(env, topic, start_event)
    late = datetime.fromtimestamp(NOW.timestamp() + 7 * 86400 + 1, UTC)
    response = env.request(false_link, now=late)
    assert response["statusCode"] == 410 and "expired" in response["body"]
    assert env.item(thing, event_id) == {}


def _tampered(link: str, name: str, value: str) -> str:
    params = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    params[name] = value
    return f"{URL}?{urlencode(params)}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("e", "cam-02/0123456789abcdef0123456789abcdef"),  # another thing
        ("e", "cam-01/fedcba9876543210fedcba9876543210"),  # another event
        ("v", "true"),  # the other verdict
        ("x", str(int(NOW.timestamp()) + 30 * 86400)),  # a later expiry
        ("s", "0" * 64),
    ],
)
def test_tampered_link_is_403(env, topic, start_event, name, value):
    false_link, _, _ = notify(env, topic, start_event)
    response = env.request(_tampered(false_link, name, value))
    assert response["statusCode"] == 403, response["body"]
    assert "signature does not match" in response["body"]
    assert env.dynamodb.scan(TableName=EVENTS)["Items"] == []


def test_a_forged_expired_link_is_403_not_410(env, topic, start_event):
    false_link, _, _ = notify(env, topic, start_event)
    late = datetime.fromtimestamp(NOW.timestamp() + 8 * 86400, UTC)
    assert env.request(_tampered(false_link, "s", "f" * 64), now=late)["statusCode"] == 403


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("e=cam-01/0123456789abcdef0123456789abcdef&v=false&x=1", "'s'"),
        ("e=cam-01/0123456789abcdef0123456789abcdef&v=false&v=true&x=1&s=" + "0" * 64, "2 'v' parameters"),
        ("e=cam-01/0123456789abcdef0123456789abcdef&v=maybe&x=1&s=" + "0" * 64, "parameter 'v'"),
        ("e=cam-01&v=false&x=1&s=" + "0" * 64, "parameter 'e'"),
        ("e=cam-01/0123456789abcdef0123456789abcdef&v=false&x=-5&s=" + "0" * 64, "parameter 'x'"),
        ("e=cam-01/0123456789abcdef0123456789abcdef&v=false&x=1&s=XYZ", "parameter 's'"),
        ("e=cam-01/0123456789abcdef0123456789abcdef&v=false&x=1&s=" + "0" * 64 + "&utm=1", "unknown parameters"),
        ("", "no 'e' parameter"),
    ],
)
def test_malformed_link_is_400_naming_the_problem(env, query, named):
    response = env.request(f"{URL}?{query}")
    assert response["statusCode"] == 400
    assert named.replace("'", "&#x27;") in response["body"]


def test_other_methods_are_405(env, topic, start_event):
    false_link, _, _ = notify(env, topic, start_event)
    assert env.request(false_link, method="DELETE")["statusCode"] == 405


def test_the_key_is_read_once_per_cold_start_and_never_shown(env, topic, start_event, monkeypatch):
    calls = []
    original = env.secrets.get_secret_value

    def counting(**kwargs):
        calls.append(kwargs["SecretId"])
        return original(**kwargs)

    monkeypatch.setattr(env.secrets, "get_secret_value", counting)
    false_link, _, _ = notify(env, topic, start_event)
    for _ in range(3):
        body = env.request(false_link)["body"]
        assert "k" * 64 not in body
    assert calls == [env.secret_arn]


def test_handler_answers_503_without_details_when_aws_fails(env, monkeypatch, thing, event_id):
    false_link = env.signer.links(thing, event_id, datetime.now(UTC)).false_alarm  # the handler's clock is real
    monkeypatch.setenv("EVENTS_TABLE", "no-such-table")
    monkeypatch.setenv("FEEDBACK_SECRET_ARN", env.secret_arn)
    monkeypatch.setenv("TRAINING_BUCKET", BUCKET)
    feedback.use_clients(dynamodb=env.dynamodb, s3=env.s3, secrets=env.secrets)
    try:
        event = {"rawQueryString": urlsplit(false_link).query, "requestContext": {"http": {"method": "POST"}}}
        response = feedback.handler(event, None)
    finally:
        feedback.use_clients()
    assert response["statusCode"] == 503 and "no-such-table" not in response["body"]


def test_page_escapes_text():
    body = feedback.page(400, "<b>x</b>", "a & <script>")["body"]
    assert "<b>x" not in body and "&lt;script&gt;" in body and "a &amp;" in body


def test_lambda_feature_columns_match_the_edge():
    # A FEATURE_VERSION bump fails here until vigil_feedback/store.py has its columns.
    assert FEATURE_COLUMNS[FEATURE_VERSION] == FEATURE_NAMES


def test_signature_covers_the_exact_canonical_string():
    key = b"k" * 64
    base = sign(key, "cam-01", "0" * 32, "false", 100)
    assert base == sign(key, "cam-01", "0" * 32, "false", 100)
    assert len({base, sign(key, "cam-01", "0" * 32, "true", 100), sign(key, "cam-01", "0" * 32, "false", 101)}) == 3
    with pytest.raises(LinkError) as err:
        parse_link(f"e=cam-01/{'0' * 32}&v=false&x=100&s={base.upper()}", key, 0)
    assert err.value.status == 400  # upper-case hex is not the canonical form


def test_feedback_settings_name_missing_variables():
    with pytest.raises(RuntimeError, match="EVENTS_TABLE, TRAINING_BUCKET"):
        feedback.Settings.from_env({"FEEDBACK_SECRET_ARN": "arn"})


def test_alert_handler_wires_links_and_events_from_its_environment(env, app, topic, context, monkeypatch, thing):
    monkeypatch.setenv("EVENTS_TABLE", EVENTS)
    monkeypatch.setenv("FEEDBACK_URL", URL)
    monkeypatch.setenv("FEEDBACK_SECRET_ARN", env.secret_arn)
    monkeypatch.setenv("FEEDBACK_LINK_S", "3600")
    app.use_clients(sns=topic.sns, dynamodb=env.dynamodb, secrets=env.secrets)
    start = sample_event(thing_name=thing, topic_thing_name=thing)
    assert app.handler(start, context)["status"] == "notified"
    ((message,),) = [p[1:2] for p in topic.published()]
    links = re.findall(r"^(?:False alarm|Correct):\s+(\S+)$", json.loads(message)["email"], re.M)
    assert len(links) == 2
    lifetimes = [int(parse_qs(urlsplit(u).query)["x"][0]) - time.time() for u in links]
    assert all(3500 < life <= 3600 for life in lifetimes)  # FEEDBACK_LINK_S
    end = {**start, "schema_version": "1.2", "event_type": "end", "sequence": 1, "ended_at": start["sent_at"]}
    end["features"] = {"feature_version": FEATURE_VERSION, "windows": WINDOWS}
    assert app.handler(end, context)["features_stored"] is True
    assert env.item(thing, start["event_id"])["features"]["S"].startswith('{"feature_version"')


def test_alert_settings_need_url_and_secret_together():
    from vigil_alerts.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="FEEDBACK_URL and FEEDBACK_SECRET_ARN"):
        Settings.from_env({"ALERT_TOPIC_ARN": "arn:x", "FEEDBACK_URL": URL})
    settings = Settings.from_env({"ALERT_TOPIC_ARN": "arn:x"})
    assert settings.feedback_url is None and settings.feedback_link_s == 7 * 86400


def test_offline_end_notice_carries_links_and_stores_features(env, topic, start_event, thing, event_id):
    result = store_end(env, topic, start_event, end_reason="camera_offline")
    assert result["status"] == "notified" and result["features_stored"] is True
    ((message,),) = [p[1:2] for p in topic.published()]
    links = re.findall(r"^(?:False alarm|Correct):\s+(\S+)$", json.loads(message)["email"], re.M)
    assert [parse_qs(urlsplit(u).query)["v"] for u in links] == [["false"], ["true"]]
    assert env.request(links[0])["statusCode"] == 200
    assert env.item(thing, event_id)["verdict"]["S"] == "false"


def test_a_secrets_outage_sends_the_alert_without_links(env, topic, start_event, monkeypatch):
    def down(**_kwargs):
        raise RuntimeError("Secrets Manager unavailable")

    monkeypatch.setattr(env.secrets, "get_secret_value", down)
    result = process_alert(start_event(), sns_client=topic.sns, topic_arn=topic.arn, feedback=env.signer, now=NOW)
    assert result["status"] == "notified"
    ((message,),) = [p[1:2] for p in topic.published()]
    assert "False alarm:" not in json.loads(message)["email"]


def test_windows_beyond_float32_are_left_out_of_the_rows_and_training_reads_the_rest(
    env, topic, start_event, thing, event_id, tmp_path
):
    """A value the schema accepts (a JSON number) but float32 cannot hold: training's
    loader refuses a file holding one, so the writer leaves that window out and says so."""
    from training.dataset import FLOAT32_OVERFLOW
    from vigil_feedback.store import FLOAT32_OVERFLOW as copied

    assert copied == FLOAT32_OVERFLOW
    false_link, _, _ = notify(env, topic, start_event)
    windows = [[1e39] + [0.1] * 7, [-3.5e38] + [0.1] * 7, *WINDOWS[:3]]
    process_alert(
        start_event(
            schema_version="1.2",
            event_type="end",
            sequence=2,
            ended_at="2024-07-01T12:03:27Z",
            sent_at="2024-07-01T12:03:27.500Z",
            received_at_ms=1719835407600,
            end_reason="quiet",
            features={"feature_version": FEATURE_VERSION, "windows": windows},
        ),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        events_table=EVENTS,
        dynamodb_client=env.dynamodb,
        now=NOW,
    )
    body = env.request(false_link)["body"]
    assert "3 feature vector(s)" in body and "2 were left out" in body and "float32" in body
    (key,) = env.row_keys()
    channel = tmp_path / "train"
    local = channel / key.removeprefix("train/")
    local.parent.mkdir(parents=True)
    local.write_bytes(env.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    ds = load_channel(channel)
    np.testing.assert_allclose(ds.X, np.array(WINDOWS[:3], np.float32))


def test_an_event_whose_every_window_is_beyond_float32_writes_no_rows(env, topic, start_event):
    false_link, _, _ = notify(env, topic, start_event)
    store_end(env, topic, start_event)
    item = env.item(*_thing_event(false_link))
    from vigil_feedback.store import NoRows, training_csv

    item["features"] = {"S": json.dumps({"feature_version": FEATURE_VERSION, "windows": [[1e39] * 8]})}
    with pytest.raises(NoRows, match="beyond float32"):
        training_csv(item, "false")


def _thing_event(link: str) -> tuple[str, str]:
    thing, event_id = parse_qs(urlsplit(link).query)["e"][0].split("/")
    return thing, event_id


def test_a_verdict_given_while_the_event_is_open_becomes_rows_when_it_ends(env, topic, start_event, thing, event_id):
    """The notification arrives at the event's start, so the click usually comes before
    the end: the end (the alert Lambda's record_end) writes the rows then, at the key the
    feedback Lambda uses, so a later click finds them written and writes nothing new."""
    false_link, _, _ = notify(env, topic, start_event)
    assert "added when the event ends" in env.request(false_link)["body"]
    assert env.row_keys() == []
    options = {
        "sns_client": topic.sns,
        "topic_arn": topic.arn,
        "feedback": env.signer,
        "events_table": EVENTS,
        "dynamodb_client": env.dynamodb,
        "training_bucket": BUCKET,
        "training_s3_client": env.s3,
        "stage": "dev",
        "now": NOW,
    }
    result = process_alert(end_event(start_event), **options)
    key = rows_key("dev", FEATURE_VERSION, thing, event_id)
    assert result["rows_key"] == key and env.row_keys() == [key]
    assert env.item(thing, event_id)["rows_key"]["S"] == key
    body = env.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert body.count("\n") == 1 + len(WINDOWS) and body.splitlines()[1].endswith(",0")  # false alarm: 0
    # A redelivered end and a second click write nothing new.
    assert "rows_key" not in process_alert(end_event(start_event), **options)
    assert "already in the training data" in env.request(false_link)["body"]
    assert env.row_keys() == [key]


def test_an_end_without_a_verdict_writes_no_rows(env, topic, start_event, thing, event_id):
    result = process_alert(
        end_event(start_event),
        sns_client=topic.sns,
        topic_arn=topic.arn,
        events_table=EVENTS,
        dynamodb_client=env.dynamodb,
        training_bucket=BUCKET,
        training_s3_client=env.s3,
        now=NOW,
    )
    assert result["features_stored"] is True and "rows_key" not in result and env.row_keys() == []


def test_alert_handler_writes_rows_from_its_training_bucket(env, app, topic, context, monkeypatch, thing):
    monkeypatch.setenv("EVENTS_TABLE", EVENTS)
    monkeypatch.setenv("TRAINING_BUCKET", BUCKET)
    monkeypatch.setenv("STAGE", "dev")
    app.use_clients(sns=topic.sns, dynamodb=env.dynamodb, s3=env.s3)
    start = sample_event(thing_name=thing, topic_thing_name=thing)
    env.dynamodb.update_item(
        TableName=EVENTS,
        Key={"thing": {"S": thing}, "event_id": {"S": start["event_id"]}},
        UpdateExpression="SET verdict = :v",
        ExpressionAttributeValues={":v": {"S": "true"}},
    )
    end = {**start, "schema_version": "1.2", "event_type": "end", "sequence": 1, "ended_at": start["sent_at"]}
    end["features"] = {"feature_version": FEATURE_VERSION, "windows": WINDOWS}
    assert app.handler(end, context)["rows_key"] == rows_key("dev", FEATURE_VERSION, thing, start["event_id"])


MISSING_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"


def _handler_with(env, monkeypatch, query: str, *, secret_arn: str, method: str = "POST") -> dict:
    monkeypatch.setenv("EVENTS_TABLE", EVENTS)
    monkeypatch.setenv("FEEDBACK_SECRET_ARN", secret_arn)
    monkeypatch.setenv("TRAINING_BUCKET", BUCKET)
    feedback.use_clients(dynamodb=env.dynamodb, s3=env.s3, secrets=env.secrets)
    try:
        return feedback.handler({"rawQueryString": query, "requestContext": {"http": {"method": method}}}, None)
    finally:
        feedback.use_clients()


def test_a_malformed_link_is_400_even_when_the_secret_cannot_be_read(env, monkeypatch):
    response = _handler_with(env, monkeypatch, "e=cam-01&v=false", secret_arn=MISSING_SECRET, method="GET")
    assert response["statusCode"] == 400 and "parameter" in response["body"]


def test_a_missing_secret_is_a_config_error_not_try_again(env, monkeypatch, thing, event_id, caplog):
    """GetSecretValue's ResourceNotFoundException (a wrong ARN, a deleted secret) does not
    pass with a retry (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html#API_GetSecretValue_Errors)."""
    link = env.signer.links(thing, event_id, datetime.now(UTC)).false_alarm
    with caplog.at_level("ERROR", logger="vigil.feedback"):
        response = _handler_with(env, monkeypatch, urlsplit(link).query, secret_arn=MISSING_SECRET)
    assert response["statusCode"] == 500 and "not set up correctly" in response["body"]
    assert "try again" not in response["body"].replace("trying again will not help", "")
    assert [m for m in caplog.messages if m.startswith("config error") and "ResourceNotFoundException" in m]
    assert "verdict" not in env.item(thing, event_id)


def test_a_transient_secrets_manager_error_is_503_try_again(env, monkeypatch, thing, event_id):
    from botocore.exceptions import ClientError

    link = env.signer.links(thing, event_id, datetime.now(UTC)).false_alarm
    forget_keys()

    def failing(**_kwargs):
        raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, "GetSecretValue")

    monkeypatch.setattr(env.secrets, "get_secret_value", failing)
    response = _handler_with(env, monkeypatch, urlsplit(link).query, secret_arn=env.secret_arn)
    assert response["statusCode"] == 503 and "try again" in response["body"]


@pytest.mark.parametrize("value", ["7d", "0", "-5", "1.5"])
def test_a_bad_link_lifetime_fails_the_cold_start_naming_it(value):
    import os
    import subprocess
    import sys
    from pathlib import Path

    with pytest.raises(feedback.ConfigError, match=f"FEEDBACK_LINK_S .*{re.escape(repr(value))}"):
        feedback.Settings.from_env(
            {"EVENTS_TABLE": "t", "FEEDBACK_SECRET_ARN": "a", "TRAINING_BUCKET": "b", "FEEDBACK_LINK_S": value}
        )
    # In Lambda (AWS_LAMBDA_FUNCTION_NAME set) the import itself fails: an init error.
    root = Path(__file__).resolve().parents[3]
    environ = {
        **os.environ,
        "PYTHONPATH": f"{root / 'lambda'}{os.pathsep}{root}",
        "AWS_LAMBDA_FUNCTION_NAME": "vigil-feedback",
        "EVENTS_TABLE": "t",
        "FEEDBACK_SECRET_ARN": "a",
        "TRAINING_BUCKET": "b",
        "FEEDBACK_LINK_S": value,
    }
    code = "import logging; logging.basicConfig(); import vigil_feedback.handler"
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "config error: FEEDBACK_LINK_S" in done.stderr
