"""Armed schedules (edge_component/events/schedule.py)."""

from __future__ import annotations

from datetime import UTC

import pytest

from edge_component.config import ConfigError, parse_config

WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def test_armed_schedule_windows_follow_days_midnight_and_daylight_saving():
    from datetime import datetime

    from edge_component.events.schedule import ArmedSchedule

    s = ArmedSchedule.model_validate(
        {"time_zone": "Europe/London", "windows": [{"days": ["fri"], "start": "22:00", "end": "06:00"}]}
    )
    utc = UTC
    assert s.is_armed(datetime(2026, 1, 9, 22, 30, tzinfo=utc))  # Friday 22:30 GMT
    assert s.is_armed(datetime(2026, 1, 10, 5, 59, tzinfo=utc))  # Saturday 05:59, still Friday's window
    assert not s.is_armed(datetime(2026, 1, 10, 22, 30, tzinfo=utc))  # Saturday evening
    assert not s.is_armed(datetime(2026, 1, 9, 6, 30, tzinfo=utc))  # Friday morning belongs to Thursday
    assert s.is_armed(datetime(2026, 7, 10, 21, 30, tzinfo=utc))  # 22:30 BST in summer
    with pytest.raises(ConfigError, match="unknown IANA time zone"):
        parse_config(
            {
                "cameras": [
                    {
                        "name": "c",
                        "source": "x",
                        "zones": [{"name": "z", "polygon": WHOLE}],
                        "armed": {"time_zone": "Mars/Olympus", "windows": [{"start": "1:00", "end": "2:00"}]},
                    }
                ]
            }
        )


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("start: 22:00\nend: '06:00'", "quoted string 'HH:MM'"),  # YAML 1.1 reads 22:00 as 1320
        ("start: '22:00+01:00'\nend: '06:00'", "not a local time"),
        ("start: '25:00'\nend: '06:00'", "not a local time"),
        ("start: '08:00'\nend: '08:00'", "never be armed"),
    ],
)
def test_armed_window_times_must_be_quoted_local_hh_mm(yaml_text, message):
    import yaml

    window = yaml.safe_load(yaml_text)
    with pytest.raises(ConfigError, match=message):
        parse_config(
            {
                "cameras": [
                    {
                        "name": "c",
                        "source": "x",
                        "zones": [{"name": "z", "polygon": WHOLE}],
                        "armed": {"windows": [window]},
                    }
                ]
            }
        )
