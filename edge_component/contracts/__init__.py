"""Contracts shared by the edge, the alert Lambda, the training job and the infrastructure.

This package is the one home of each contract: the alert message (``alert.schema.json``,
:mod:`.alert_rules`, :mod:`.alerts`), the MQTT topics (:mod:`.topics`) and the model
bundle's manifest (:mod:`.manifest`). Where a contract must travel inside another
artifact (the Lambda bundle, the SageMaker ``sourcedir.tar.gz``), the infrastructure
copies it in at synth time from here, and the tests prove the copies cannot drift
(``tests/edge/contracts/test_alert_rules.py``, ``tests/infra/test_alerting.py``).
"""
