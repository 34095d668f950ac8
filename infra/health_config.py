"""The stage's health alarm settings (``health`` in ``cdk.json``): what counts as a dark
camera or a silent device, and who hears of it (infra/health.py builds the alarms)."""

from __future__ import annotations

from pydantic import Field

from infra.config_types import Frozen


class HealthConfig(Frozen):
    """Thresholds of the health alarms; periods are the devices' telemetry interval.

    Every alarm goes to the operations topic; ``notify_alert_recipients`` adds the alert
    topic (the people who get intrusion alerts learn that a camera went dark)."""

    period_s: int = Field(
        default=60,
        description="Seconds per alarm period: the component's telemetry_every_s (60 by default). "
        "Metrics Insights alarms aggregate at one minute, so 60 or a multiple of it.",
        ge=60,
        le=3600,
        multiple_of=60,
    )
    silent_heartbeats: int = Field(default=3, ge=1, le=60, description="Periods without telemetry: device silent")
    not_running_minutes: int = Field(default=5, ge=1, le=1440, description="A camera not running this long")
    blank_minutes: int = Field(default=5, ge=1, le=1440, description="A camera sending only blank frames this long")
    blank_ratio: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="Blank share of analysed frames in a period that counts as 'only blank' (a covered lens)",
    )
    notify_alert_recipients: bool = False

    def periods(self, minutes: int) -> int:
        """Alarm evaluation periods covering ``minutes`` (at least one)."""
        return max(1, -(-minutes * 60 // self.period_s))
