"""The alert Lambda's logic, in plain modules the handler (``app.py``) wires together.

- :mod:`vigil_alerts.validation`: the alert contract as the Lambda enforces it.
- :mod:`vigil_alerts.notify`: subject, body, SMS text and attributes; the SNS publish.
- :mod:`vigil_alerts.delivery`: optional idempotency (Powertools) and per-camera throttle.
- :mod:`vigil_alerts.processing`: :func:`process_alert`, one alert end to end.
- :mod:`vigil_alerts.config`: the environment, read into a frozen dataclass.

A package rather than top-level modules because the bundle root is on ``sys.path`` in
Lambda and tests, and names such as ``app`` or ``config`` would collide with the CDK app
and other folders in one pytest run.
"""
