"""README.md "Deploying a stage" against the synthesized stack: the fleet provisioning
commands name real outputs, download the pinned nucleus and plugin, and give the plugin
the configuration AWS documents.

AWS sources:
- https://docs.aws.amazon.com/greengrass/v2/developerguide/fleet-provisioning.html
  (claim certificate under ``<root>/claim-certs``, Amazon root CA download, the
  ``config.yaml`` with ``services.aws.greengrass.Nucleus.version`` and the plugin's
  ``configuration``, the jar saved as ``aws.greengrass.FleetProvisioningByClaim.jar``,
  the installer run with ``--trusted-plugin`` and ``--init-config``);
- https://docs.aws.amazon.com/greengrass/v2/developerguide/fleet-provisioning-configuration.html
  (the plugin's parameters);
- https://docs.aws.amazon.com/greengrass/v2/developerguide/fleet-provisioning-changelog.html
  (1.2.2 adds ``certificatePath`` and ``privateKeyPath``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

from infra.greengrass_versions import FLEET_PROVISIONING_PLUGIN_VERSION, fleet_provisioning_plugin_url
from infra.provisioning_hook.hook import THING_NAME_PARAMETER
from infra.stage import installer_url

README = Path(__file__).resolve().parents[2] / "README.md"
PLUGIN = "aws.greengrass.FleetProvisioningByClaim"
NUCLEUS = "aws.greengrass.Nucleus"
ROOT_CA_URL = "https://www.amazontrust.com/repository/AmazonRootCA1.pem"

# The parameters fleet-provisioning.html's Linux example sets (all but templateParameters
# are required by the plugin, fleet-provisioning-configuration.html).
DOCUMENTED_KEYS = {
    "rootPath",
    "awsRegion",
    "iotDataEndpoint",
    "iotCredentialEndpoint",
    "iotRoleAlias",
    "provisioningTemplate",
    "claimCertificatePath",
    "claimCertificatePrivateKeyPath",
    "rootCaPath",
    "templateParameters",
}
# Every parameter fleet-provisioning-configuration.html, the 1.2.2 changelog and the plugin's
# README (github.com/aws-greengrass/aws-greengrass-fleet-provisioning-by-claim: csrPath) name:
# a key outside this set is a typo the plugin ignores (AWS's FIPS example spells
# iotCredEndpoint, the nucleus's name, which the plugin does not read).
OPTIONAL_KEYS = {
    "deviceId",
    "mqttPort",
    "proxyUrl",
    "proxyUserName",
    "proxyPassword",
    "csrPath",
    "certificatePath",
    "privateKeyPath",
}
# Backticked CamelCase names in the section that are not stack outputs.
NOT_OUTPUTS = {
    "DeadLetters",  # an alarm
    "PublishToIoTCore",  # a Greengrass IPC operation
    "UnreservedConcurrentExecutions",  # a field of lambda get-account-settings
}


def section(text: str, heading: str, level: str) -> str:
    """The lines under ``heading`` up to the next heading of ``level`` (``"##"``, ``"###"``)."""
    start = text.index(f"\n{heading}\n")
    end = text.find(f"\n{level} ", start + len(heading) + 2)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def shell_lines(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def deploying() -> str:
    return section(README.read_text(), "## Deploying a stage", "##")


@pytest.fixture(scope="module")
def fleet(deploying) -> str:
    return section(deploying, "### A fleet (fleet provisioning by claim)", "###")


@pytest.fixture(scope="module")
def fleet_code(fleet) -> str:
    blocks = code_blocks(fleet)
    assert blocks, "the fleet section has no ```sh blocks"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def config_yaml(fleet_code) -> dict:
    """The ``config.yaml`` the README's heredoc writes, parsed (its ``$(...)`` stay literal)."""
    found = re.findall(r"^cat > config\.yaml <<EOF\n(.*?)^EOF$", fleet_code, flags=re.MULTILINE | re.DOTALL)
    assert len(found) == 1, "the fleet section must write config.yaml with exactly one heredoc"
    return yaml.safe_load(found[0])


@pytest.fixture(scope="module")
def installer(fleet_code) -> list[str]:
    commands = [line for line in shell_lines(fleet_code) if "Greengrass.jar" in line and " java " in f" {line}"]
    assert len(commands) == 1, f"expected one installer command, found {commands}"
    return shlex.split(commands[0])


@pytest.fixture(scope="module")
def fleet_stages(synthesized):
    stages = [s for s in synthesized.values() if s.config.fleet_provisioning]
    assert stages, "no stage of cdk.json has fleet_provisioning on: nothing to check the README against"
    return stages


def outputs(stage) -> dict:
    return stage.template_json["Outputs"]


def output_value(stage, name: str) -> str:
    value = outputs(stage)[name]["Value"]
    assert isinstance(value, str), f"{name} is not a literal in the template: {value}"
    return value


def names_in_code(code: str) -> set[str]:
    """Outputs the commands read: ``out X``, ``$(out X)`` and ``<X output>`` placeholders."""
    called = re.findall(r"(?:\$\(|^|;\s*|\|\s*)out ([A-Za-z]\w*)", code, flags=re.MULTILINE)
    placeholders = re.findall(r"<([A-Z]\w*) output>", code)
    return set(called) | set(placeholders)


def test_every_output_the_readme_names_exists(deploying, fleet_code, fleet_stages):
    in_code = names_in_code("\n".join(code_blocks(deploying)))
    in_prose = set(re.findall(r"`([A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+)`", deploying)) - NOT_OUTPUTS
    # The fleet commands read these; a renamed output must fail here, not on a device.
    assert {"ClaimPolicyName", "RoleAliasName", "ProvisioningTemplateName", "ThingNamePrefix"} <= names_in_code(
        fleet_code
    )
    for stage in fleet_stages:
        missing = sorted((in_code | in_prose) - set(outputs(stage)))
        assert not missing, f"README names outputs the {stage.config.name} stack lacks: {missing}"


def test_claim_certificate_commands(fleet_code, config_yaml):
    lines = shell_lines(fleet_code)
    create = [line for line in lines if "aws iot create-keys-and-certificate" in line]
    assert len(create) == 1, create
    args = shlex.split(create[0].split("$(", 1)[1].rstrip(")"))
    assert "--set-as-active" in args
    cert_out = args[args.index("--certificate-pem-outfile") + 1]
    key_out = args[args.index("--private-key-outfile") + 1]
    assert args[args.index("--query") + 1] == "certificateArn"
    arn_var = create[0].split("=", 1)[0]

    attach = [line for line in lines if line.startswith("aws iot attach-policy")]
    assert len(attach) == 1, attach
    attach_args = shlex.split(attach[0])
    assert attach_args[attach_args.index("--policy-name") + 1] == "$(out ClaimPolicyName)"
    assert attach_args[attach_args.index("--target") + 1] == f"${arn_var}"
    assert not any("attach-thing-principal" in line for line in lines), "a claim certificate belongs to no thing"

    # The files the CLI writes are the ones the plugin reads, under <rootPath>/claim-certs.
    configuration = config_yaml["services"][PLUGIN]["configuration"]
    root = PurePosixPath(configuration["rootPath"])
    assert PurePosixPath(configuration["claimCertificatePath"]) == root / cert_out
    assert PurePosixPath(configuration["claimCertificatePrivateKeyPath"]) == root / key_out
    assert any(f"mv {PurePosixPath(cert_out).parent} {root}/" in line for line in lines), (
        "the claim-certs folder must be moved into the Greengrass root"
    )


def test_root_ca_is_downloaded_where_the_plugin_reads_it(fleet_code, config_yaml):
    ca_path = config_yaml["services"][PLUGIN]["configuration"]["rootCaPath"]
    downloads = [line for line in shell_lines(fleet_code) if ROOT_CA_URL in line]
    assert len(downloads) == 1, downloads
    args = shlex.split(downloads[0])
    assert args[args.index("-o") + 1] == ca_path


def test_config_yaml_has_the_documented_keys(config_yaml, fleet_code, fleet_stages, cfn):
    configuration = config_yaml["services"][PLUGIN]["configuration"]
    assert DOCUMENTED_KEYS <= set(configuration), f"missing {sorted(DOCUMENTED_KEYS - set(configuration))}"
    unknown = set(configuration) - DOCUMENTED_KEYS - OPTIONAL_KEYS
    assert not unknown, f"not parameters of the plugin: {sorted(unknown)}"
    assert configuration["iotRoleAlias"] == "$(out RoleAliasName)"
    assert configuration["provisioningTemplate"] == "$(out ProvisioningTemplateName)"
    assert configuration["awsRegion"] == "$AWS_REGION"
    assert configuration["templateParameters"] == {THING_NAME_PARAMETER: "$(out ThingNamePrefix)$DEVICE"}

    # The endpoints come from describe-endpoint of the right types.
    lines = shell_lines(fleet_code)
    endpoint_types = {"iotDataEndpoint": "iot:Data-ATS", "iotCredentialEndpoint": "iot:CredentialProvider"}
    for key, endpoint_type in endpoint_types.items():
        variable = configuration[key].removeprefix("$")
        assert f"{variable}=$(aws iot describe-endpoint --endpoint-type {endpoint_type} " in "\n".join(lines)

    # The device names only what the template declares; the example name passes the hook.
    device = re.search(r"^DEVICE=(\S+)", fleet_code, flags=re.MULTILINE)
    assert device, "the fleet commands must set DEVICE"
    for stage in fleet_stages:
        devices = stage.stage.stack.devices
        body = cfn.rendered_json(cfn.properties(stage.template_json, devices.provisioning_template)["TemplateBody"])
        assert set(configuration["templateParameters"]) == set(body["Parameters"]) - {"AWS::IoT::Certificate::Id"}
        thing = output_value(stage, "ThingNamePrefix") + device.group(1)
        assert stage.config.may_provision(thing), f"the README's example {thing!r} would be refused"


def test_nucleus_version_is_the_pin(fleet, fleet_code, config_yaml, fleet_stages):
    urls = re.findall(r"https://d2s8p88vqu9w66\.cloudfront\.net/releases/greengrass-[^\s/]+\.zip", fleet_code)
    assert len(urls) == 1, urls
    assert "greengrass-nucleus-latest" not in fleet
    for stage in fleet_stages:
        pin = stage.config.greengrass.nucleus_version
        assert urls[0] == installer_url(pin) == output_value(stage, "InstallerUrl")
        assert str(config_yaml["services"][NUCLEUS]["version"]) == pin
        # Any nucleus version the prose mentions is the pin too.
        assert set(re.findall(r"\b2\.\d+\.\d+\b", fleet)) == {pin}


def test_plugin_download_is_the_pinned_version(fleet, fleet_code, installer, fleet_stages):
    downloads = [line for line in shell_lines(fleet_code) if "fleetprovisioningbyclaim-" in line]
    assert len(downloads) == 1, downloads
    args = shlex.split(downloads[0])
    url = next(a for a in args if a.startswith("https://"))
    assert url == fleet_provisioning_plugin_url(FLEET_PROVISIONING_PLUGIN_VERSION)
    assert re.fullmatch(r".*/fleetprovisioningbyclaim-(.+)\.jar", url).group(1) == FLEET_PROVISIONING_PLUGIN_VERSION
    assert "fleetprovisioningbyclaim-latest" not in fleet
    for stage in fleet_stages:
        assert url == output_value(stage, "FleetProvisioningPluginUrl")
    # Saved under the name AWS gives it, the file the installer trusts.
    saved = args[args.index("-o") + 1]
    assert PurePosixPath(saved).name == f"{PLUGIN}.jar"
    assert PurePosixPath(installer[installer.index("--trusted-plugin") + 1]) == PurePosixPath(saved)


def test_installer_command(installer, config_yaml):
    assert installer[:3] == ["sudo", "-E", "java"]
    assert installer[installer.index("-jar") + 1] == "./GreengrassInstaller/lib/Greengrass.jar"
    assert "--trusted-plugin" in installer
    assert installer[installer.index("--init-config") + 1] == "./config.yaml"
    assert f"-Droot={config_yaml['services'][PLUGIN]['configuration']['rootPath']}" in installer
    assert installer[installer.index("--component-default-user") + 1] == "ggc_user:ggc_group"
    assert installer[installer.index("--setup-system-service") + 1] == "true"
    # The plugin provisions through the stack's template; the installer's own provisioning
    # would create a thing, policy and role of its own.
    provision = [installer[i + 1] for i, a in enumerate(installer) if a == "--provision"]
    assert "true" not in provision and not any(a.startswith("--provision=") for a in installer)


def test_listed_camera_downloads_and_installs_what_the_outputs_say(deploying, synthesized):
    camera = section(deploying, "### A camera (a listed thing)", "###")
    lines = shell_lines("\n".join(code_blocks(camera)))
    urls = re.findall(r"https://d2s8p88vqu9w66\.cloudfront\.net/releases/greengrass-[^\s/]+\.zip", "\n".join(lines))
    installs = [line for line in lines if "Greengrass.jar" in line]
    assert len(urls) == 1 and len(installs) == 1, (urls, installs)
    for stage in synthesized.values():
        assert urls[0] == output_value(stage, "InstallerUrl"), f"{stage.config.name}: not the pinned nucleus"
        assert installs[0] == output_value(stage, "InstallerCommand")


def test_commands_have_no_placeholders_the_shell_would_take_as_redirections(deploying):
    # `scp f pi@<device>:` pasted into a shell reads a file "device" and writes one called ":".
    for line in shell_lines("\n".join(code_blocks(deploying))):
        unquoted = re.sub(r"\"[^\"]*\"|'[^']*'", "", line).replace("<<EOF", "")
        assert not re.search(r"<\w", unquoted), f"a <placeholder> in a command to paste: {line}"
