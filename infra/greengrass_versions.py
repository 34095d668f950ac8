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


# aws.greengrass.FleetProvisioningByClaim, the installer's --trusted-plugin for fleet
# provisioning: the newest release in
# https://docs.aws.amazon.com/greengrass/v2/developerguide/fleet-provisioning-changelog.html
# (1.2.2 reads certificatePath/privateKeyPath). The README's fleet commands download this
# version, never fleetprovisioningbyclaim-latest.jar (tests/infra/test_readme_deploy.py).
FLEET_PROVISIONING_PLUGIN_VERSION = "1.2.2"


def fleet_provisioning_plugin_url(version: str = FLEET_PROVISIONING_PLUGIN_VERSION) -> str:
    """The plugin jar of exactly ``version`` (fleet-provisioning.html, "Download the AWS IoT
    fleet provisioning plugin")."""
    return f"https://d2s8p88vqu9w66.cloudfront.net/releases/aws-greengrass-FleetProvisioningByClaim/fleetprovisioningbyclaim-{version}.jar"
