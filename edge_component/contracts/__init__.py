"""Contracts shared by the edge, the alert Lambda, the training job and the infrastructure.

This package is the one home of each contract. Where a contract must travel inside
another artifact (the Lambda bundle, the SageMaker ``sourcedir.tar.gz``), the
infrastructure copies it in at synth time from here, and ``tests/test_contracts.py``
proves the copies cannot drift.
"""
