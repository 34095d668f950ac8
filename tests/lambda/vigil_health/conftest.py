"""Fixtures shared by the health Lambda's tests (moto: ``aws`` and ``region`` come from
tests/lambda/conftest.py)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

DEVICE_STATUS_TABLE = "vigil-dev-device-status"


@pytest.fixture
def status_table(aws, region) -> Any:
    """The DeviceStatus table (key ``thing_name``, as infra/model_loop.py makes it) in moto."""
    return boto3.resource("dynamodb", region_name=region).create_table(
        TableName=DEVICE_STATUS_TABLE,
        KeySchema=[{"AttributeName": "thing_name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "thing_name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
