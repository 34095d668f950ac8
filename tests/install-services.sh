#!/usr/bin/env bash
# Services the tests need that pip cannot install, run by `make test` (and so by CI).
# mosquitto: the stand-in for AWS IoT Core's mutual-TLS MQTT broker (Debian package).
# The tests start their own broker on 127.0.0.1; nothing is left running.
# jq: tests/infra/test_readme_deploy.py runs the README's jq command as a user would.
set -euo pipefail
if { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } && command -v jq >/dev/null 2>&1; then
  exit 0
fi
echo "== installing mosquitto and jq (Debian packages) for the MQTT delivery and README tests"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: mosquitto or jq is missing and there is no apt-get; install mosquitto and jq with your package manager" >&2
  exit 1
fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto jq
