"""Vigil health Lambda: device telemetry (``vigil/<thing>/telemetry``) into CloudWatch metrics."""
