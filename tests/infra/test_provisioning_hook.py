"""infra/provisioning_hook/hook.py: the pre-provisioning hook's decision (plain function, every
payload shape) and its handler."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from infra.config import provisioned_thing_pattern
from infra.provisioning_hook import hook
from infra.provisioning_hook.hook import RULES_FILE_NAME, decide, handler, load_rules

PATTERN = provisioned_thing_pattern("vigil-dev-")


DENIED = frozenset({"vigil-dev-stolen"})


def payload(thing_name: object = "vigil-dev-cam-02", **extra: object) -> dict:
    """A hook input as AWS IoT sends it (payload version 2020-04-01)."""
    return {
        "claimCertificateId": "claim-id",
        "certificateId": "new-cert-id",
        "certificatePem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "templateArn": "arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/Vigil",
        "clientId": "221a6d10-9c7f-42f1-9153-e52e6fc869c1",
        "parameters": {"ThingName": thing_name, "AWS::IoT::Certificate::Id": "new-cert-id"},
        **extra,
    }


def allowed(event: object, pattern: str = PATTERN, denied: frozenset[str] = DENIED) -> bool:
    response, reason = decide(event, thing_name_pattern=pattern, denied_thing_names=denied)
    assert set(response) == {"allowProvisioning"} and isinstance(response["allowProvisioning"], bool)
    assert reason
    return response["allowProvisioning"]


@pytest.mark.parametrize("name", ["vigil-dev-cam-02", "vigil-dev-0", "vigil-dev-" + "a" * 64, "vigil-dev-shop-2-door"])
def test_stage_thing_names_are_allowed(name):
    assert allowed(payload(name))


@pytest.mark.parametrize(
    "name",
    [
        "vigil-prod-cam-02",  # another stage's namespace
        "cam-02",
        "vigil-dev-",  # prefix only
        "vigil-dev-" + "a" * 65,
        "vigil-dev-Cam-02",  # upper case
        "vigil-dev-cam_02",
        "vigil-dev-cam:02",
        "vigil-dev-cam-02\n",  # $ would let this through; fullmatch does not
        "xvigil-dev-cam-02",
        "vigil-devxcam-02",  # the prefix's dashes are literal
        "",
    ],
)
def test_other_thing_names_are_refused(name):
    assert not allowed(payload(name))


def test_denied_thing_name_is_refused():
    assert not allowed(payload("vigil-dev-stolen"))
    assert allowed(payload("vigil-dev-stolen"), denied=frozenset())


@pytest.mark.parametrize(
    "event",
    [
        None,
        "vigil-dev-cam-02",
        ["vigil-dev-cam-02"],
        {},
        {"parameters": None},
        {"parameters": ["ThingName", "vigil-dev-cam-02"]},
        {"parameters": {}},
        {"parameters": {"thingName": "vigil-dev-cam-02"}},  # the name is case-sensitive
        {"ThingName": "vigil-dev-cam-02"},  # not inside parameters
        payload(None),
        payload(42),
        payload(["vigil-dev-cam-02"]),
        payload({"S": "vigil-dev-cam-02"}),
    ],
    ids=repr,
)
def test_malformed_payloads_are_refused(event):
    assert not allowed(event)


def test_decide_never_raises():
    assert not allowed(payload(), pattern="(")  # a pattern that does not compile
    assert not allowed(payload(), denied=None)  # type: ignore[arg-type]


def _rules_file(tmp_path: Path, rules: object) -> Path:
    path = tmp_path / RULES_FILE_NAME
    path.write_text(json.dumps(rules))
    return path


def test_handler_decides_with_the_bundled_rules(tmp_path, monkeypatch, caplog):
    path = _rules_file(tmp_path, {"thing_name_pattern": PATTERN, "denied_thing_names": sorted(DENIED)})
    monkeypatch.setattr(hook, "load_rules", lambda: load_rules.__wrapped__(path))
    monkeypatch.setattr(hook, "thing_exists", lambda name: False)
    caplog.set_level(logging.INFO, logger=hook.logger.name)
    assert handler(payload(), None) == {"allowProvisioning": True}
    assert handler(payload("vigil-dev-stolen"), None) == {"allowProvisioning": False}
    assert handler(payload("vigil-prod-cam-01"), None) == {"allowProvisioning": False}
    assert handler("not an object", None) == {"allowProvisioning": False}
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    assert [line["allowProvisioning"] for line in logged] == [True, False, False, False]
    assert logged[0]["certificateId"] == "new-cert-id" and "denied" in logged[1]["reason"]
    assert "CERTIFICATE" not in caplog.text, "the certificate is never logged"


def test_an_existing_thing_cannot_be_taken_over_by_a_claim():
    registered = {"vigil-dev-cam-07"}
    kwargs = dict(thing_name_pattern=PATTERN, denied_thing_names=DENIED, thing_exists=registered.__contains__)
    assert decide(payload("vigil-dev-cam-08"), **kwargs)[0] == {"allowProvisioning": True}
    response, reason = decide(payload("vigil-dev-cam-07"), **kwargs)
    assert response == {"allowProvisioning": False} and "already exists" in reason

    def unreachable(name):
        raise ConnectionError("endpoint unreachable")

    response, reason = decide(
        payload(), thing_name_pattern=PATTERN, denied_thing_names=DENIED, thing_exists=unreachable
    )
    assert response == {"allowProvisioning": False} and "ConnectionError" in reason  # fails closed


def test_handler_asks_iot_whether_the_thing_exists(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    path = _rules_file(tmp_path, {"thing_name_pattern": PATTERN, "denied_thing_names": []})
    monkeypatch.setattr(hook, "load_rules", lambda: load_rules.__wrapped__(path))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        monkeypatch.setattr(hook, "_iot_client", None)  # created inside the mock, as in Lambda on first use
        boto3.client("iot").create_thing(thingName="vigil-dev-cam-07")
        assert handler(payload("vigil-dev-cam-07"), None) == {"allowProvisioning": False}
        assert handler(payload("vigil-dev-cam-08"), None) == {"allowProvisioning": True}
    monkeypatch.setattr(hook, "_iot_client", None)


@pytest.mark.parametrize(
    "rules",
    [
        None,
        {},
        {"thing_name_pattern": PATTERN},
        {"thing_name_pattern": "(", "denied_thing_names": []},
        {"thing_name_pattern": PATTERN, "denied_thing_names": "vigil-dev-stolen"},
        "missing",
    ],
    ids=repr,
)
def test_handler_refuses_when_the_rules_are_unreadable(tmp_path, monkeypatch, rules):
    path = tmp_path / "absent.json" if rules == "missing" else _rules_file(tmp_path, rules)
    monkeypatch.setattr(hook, "load_rules", lambda: load_rules.__wrapped__(path))
    assert handler(payload(), None) == {"allowProvisioning": False}
