"""Pre-provisioning hook of Vigil's fleet provisioning template.

AWS IoT calls this function (payload version 2020-04-01) on every ``RegisterThing`` by a
claim certificate, with::

    {"claimCertificateId": str, "certificateId": str, "certificatePem": str,
     "templateArn": str, "clientId": str, "parameters": {"ThingName": str, ...}}

and provisions the device only if it returns ``{"allowProvisioning": true}``. A
failing or timing-out function refuses the request (ACCESS_DENIED). Source: AWS IoT
developer guide, "Pre-provisioning hooks".

Here a claim may register only a thing name matching the stage's pattern
(``vigil-<stage>-[a-z0-9-]{1,64}`` by default) that is not in the stage's deny list.
The rules are written into the bundle at synth time (``hook_rules.json`` beside this
module): ``{"thing_name_pattern": str, "denied_thing_names": [str, ...]}``.

Standard library only: the function has no layer and no AWS client.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

RULES_FILE_NAME = "hook_rules.json"
RULES_FILE = Path(__file__).with_name(RULES_FILE_NAME)
# The provisioning template's parameter that names the thing (infra/fleet_provisioning.py).
THING_NAME_PARAMETER = "ThingName"
REFUSE: dict[str, bool] = {"allowProvisioning": False}
ALLOW: dict[str, bool] = {"allowProvisioning": True}

logger = logging.getLogger("vigil.provisioning_hook")
logger.setLevel(logging.INFO)


def decide(
    payload: Any,
    *,
    thing_name_pattern: str,
    denied_thing_names: Collection[str],
    thing_exists: Callable[[str], bool] | None = None,
) -> tuple[dict[str, bool], str]:
    """``({"allowProvisioning": bool}, reason)`` for one hook payload. Never raises.

    Allows only a payload whose ``parameters.ThingName`` is a string that matches
    ``thing_name_pattern`` in full (``re.fullmatch``: a trailing newline does not pass),
    is not in ``denied_thing_names`` and, when ``thing_exists`` is given, is not already
    a registered thing (a claim must not attach its certificate to another device's
    thing; to re-provision a device, delete its thing first). Anything else (not an
    object, no parameters, a missing or non-string name, a pattern that does not
    compile, a failed existence check) is refused.
    """
    try:
        if not isinstance(payload, Mapping):
            return REFUSE, f"payload is {type(payload).__name__}, not an object"
        parameters = payload.get("parameters")
        if not isinstance(parameters, Mapping):
            return REFUSE, "payload has no parameters object"
        thing_name = parameters.get(THING_NAME_PARAMETER)
        if not isinstance(thing_name, str):
            return REFUSE, f"parameter {THING_NAME_PARAMETER} is missing or not a string"
        if re.fullmatch(thing_name_pattern, thing_name) is None:
            return REFUSE, f"thing name {thing_name[:200]!r} does not match {thing_name_pattern!r}"
        if thing_name in denied_thing_names:
            return REFUSE, f"thing name {thing_name!r} is denied"
        if thing_exists is not None and thing_exists(thing_name):
            return REFUSE, (
                f"thing {thing_name!r} already exists: a claim cannot take over a registered thing "
                "(delete it first to re-provision that device)"
            )
        return ALLOW, f"thing name {thing_name!r} allowed"
    except Exception as exc:  # noqa: BLE001 (a hook that raises is a refusal without a reason in the logs)
        return REFUSE, f"refused on {type(exc).__name__}: {exc}"


@lru_cache(maxsize=1)
def load_rules(path: Path = RULES_FILE) -> tuple[str, frozenset[str]]:
    """``(thing_name_pattern, denied_thing_names)`` from the bundled rules file.

    Raises ValueError (or OSError) if the file is missing or malformed; the handler
    then refuses every request.
    """
    rules = json.loads(path.read_text(encoding="utf-8"))
    pattern = rules["thing_name_pattern"]
    denied = rules["denied_thing_names"]
    if not isinstance(pattern, str) or not isinstance(denied, list) or not all(isinstance(d, str) for d in denied):
        raise ValueError(f"{path.name}: thing_name_pattern must be a string and denied_thing_names a list of strings")
    re.compile(pattern)
    return pattern, frozenset(denied)


_iot_client = None


def iot_client():
    """The IoT client, created on first use (none at import), replaceable in tests."""
    global _iot_client
    if _iot_client is None:
        import boto3  # in the Lambda runtime

        _iot_client = boto3.client("iot")
    return _iot_client


def thing_exists(thing_name: str) -> bool:
    """True if ``thing_name`` is a registered thing. Raises on any other error, which
    :func:`decide` turns into a refusal (fail closed)."""
    client = iot_client()
    try:
        client.describe_thing(thingName=thing_name)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True


def handler(event: Any, context: Any) -> dict[str, bool]:  # noqa: ARG001 (Lambda's signature)
    """Lambda entry point: the decision for ``event``; refuses if the rules cannot be read."""
    try:
        pattern, denied = load_rules()
    except Exception as exc:  # noqa: BLE001 (fail closed, with the cause in the logs)
        response, reason = REFUSE, f"rules unreadable, refusing: {type(exc).__name__}: {exc}"
    else:
        response, reason = decide(
            event, thing_name_pattern=pattern, denied_thing_names=denied, thing_exists=thing_exists
        )
    # Identifiers only: never the certificate PEM.
    fields = ("templateArn", "clientId", "certificateId", "claimCertificateId")
    ids = {k: event.get(k) for k in fields if isinstance(event, Mapping) and isinstance(event.get(k), str)}
    logger.info(json.dumps({"allowProvisioning": response["allowProvisioning"], "reason": reason, **ids}))
    return dict(response)
