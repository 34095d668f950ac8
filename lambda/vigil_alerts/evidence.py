"""Which snapshot keys an alert may point at.

Devices upload snapshots under ``snapshots/<thing>/`` (the IoT credentials role pins
them there; the prefix is the alert contract's, ``edge_component/contracts/alert_rules.py``). The Lambda shows and
signs a key only there, so a device can neither get a link to another thing's snapshot
nor have a foreign object presented as its evidence.
"""

from __future__ import annotations

from vigil_alerts.validation import rules

SNAPSHOT_PREFIX = rules.SNAPSHOT_PREFIX


def own_snapshot_key(key: str, thing_name: str) -> bool:
    """True if ``key`` names an object under ``snapshots/<thing_name>/``: no leading
    ``/``, no empty, ``.`` or ``..`` segment (S3 keeps them literally, so they would be
    other keys than they look), and something after the prefix."""
    parts = key.split("/")
    return (
        len(parts) >= 3
        and parts[0] == SNAPSHOT_PREFIX
        and parts[1] == thing_name
        and all(part not in ("", ".", "..") for part in parts)
    )
