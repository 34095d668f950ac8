"""Which Greengrass public components accept which nucleus: facts from AWS's component
documentation that the stack checks its pins against."""

from __future__ import annotations

# aws.greengrass.DiskSpooler versions and the nucleus versions each accepts (a Hard
# dependency), from https://docs.aws.amazon.com/greengrass/v2/developerguide/disk-spooler-component.html.
# None accepts the nucleus pinned in infra/config.py (GreengrassConfig), so the stack
# deploys no DiskSpooler: the nucleus spools in memory, and the component's outbox is the
# durability layer (README).
DISK_SPOOLER_NUCLEUS_RANGES: dict[str, tuple[str, str]] = {
    "1.0.5": ("2.11.0", "2.15.0"),  # >=, <
    "1.0.6": ("2.11.0", "2.16.0"),
}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.16.1"`` -> ``(2, 16, 1)``; a pre-release suffix (``-rc1``) is ignored."""
    return tuple(int(part) for part in version.split("-")[0].split("."))


def disk_spoolers_for(nucleus_version: str) -> list[str]:
    """The documented DiskSpooler versions whose nucleus range holds ``nucleus_version``."""
    v = version_tuple(nucleus_version)
    return [s for s, (lo, hi) in DISK_SPOOLER_NUCLEUS_RANGES.items() if version_tuple(lo) <= v < version_tuple(hi)]
