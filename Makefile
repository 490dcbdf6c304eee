# covidct — see README.md. `make demo` and `make test` work on a fresh machine with Python 3.11.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
# uv from PATH, else the uv that `pip install uv` puts beside this Python (run as a module).
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen --no-sync
SHARED ?= $(abspath ../shared)

# The embedded default: everything under .demo/ (SQLite, local folders, CPU).
DEMO_HOME ?= $(abspath .demo)
export COVIDCT_HOME ?= $(DEMO_HOME)
export AIRFLOW_HOME ?= $(DEMO_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(abspath dags)
export AIRFLOW__CORE__PLUGINS_FOLDER := $(abspath plugins)
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
export TF_CPP_MIN_LOG_LEVEL := 2
# Python must cache its bytecode: with PYTHONDONTWRITEBYTECODE set (some CI images and sandboxes
# set it) every process compiles TensorFlow, Airflow and MLflow from source again, which cost
# 35 s instead of 11 s to import covidct's pipeline, in each of the hundreds of processes a
# DAG run and the tests start. The first process writes the cache; the rest read it.
unexport PYTHONDONTWRITEBYTECODE
export GIT_PYTHON_REFRESH := quiet

.PHONY: help install demo demo-rerun demo-clean test test-fast lint airflow-ui mlflow-ui bench

help:
	@echo "make demo      install from the lock file and run the retraining DAG end to end (CPU)"
	@echo "make test      install from the lock file and run lint + every test"
	@echo "make airflow-ui / make mlflow-ui   open the UIs on the demo's stores"

# one line ("Installed 266 packages in 11.2s", or "Checked ..." when nothing changed); the whole
# output only when the sync fails
install:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	out=$$(mktemp)
	if ! $(UV) sync --frozen --python 3.11 >"$$out" 2>&1; then cat "$$out" >&2; rm -f "$$out"; exit 1; fi
	echo "uv sync: $$(grep -E '^(Installed|Uninstalled|Audited|Checked) ' "$$out" | paste -sd ';' - || true)"
	rm -f "$$out"

demo: install
	SHARED=$(SHARED) RUN="$(RUN)" bash infra/demo.sh

demo-rerun: install
	SHARED=$(SHARED) RUN="$(RUN)" bash infra/demo.sh rerun

demo-clean:
	rm -rf $(DEMO_HOME)

lint: install
	$(RUN) ruff check covidct dags plugins tests benchmarks
	$(RUN) ruff format --check covidct dags plugins tests benchmarks
	$(RUN) mypy covidct

# two workers (2 cores; most tests use about one): one file per unit, the slow files first
# (tests/conftest.py HEAVY_FIRST); --durations prints the slowest tests
XDIST := -n 2 --dist loadfile --no-loadscope-reorder
# browser tests (tests/browser/, tests/report/test_report_pages.py): Chromium from the OS packages, installed here when root
test: install lint
	bash infra/ensure-chromium.sh
	$(RUN) pytest -q -p no:cacheprovider $(XDIST) --timeout 1500 --durations=15

test-fast: install
	$(RUN) pytest -q -m "not slow" $(XDIST) --timeout 900

# bound to 127.0.0.1 like mlflow-ui: Airflow's default API host 0.0.0.0 exposes the demo to the
# network, and SimpleAuthManager then warns that the deployment "looks like production".
# infra/airflow-ui.sh: 1 API worker, 2 executor slots, 1 parsing process; Ctrl-C or SIGTERM
# stops every process standalone started
airflow-ui: install
	@echo "Airflow UI on http://localhost:8080 (user admin; password printed below by 'airflow standalone')"
	RUN="$(RUN)" bash infra/airflow-ui.sh

# MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: nothing uses MLflow server jobs, and their runner
# processes burn CPU while idle (MLflow 3.17 starts them by default)
mlflow-ui: install
	@echo "MLflow UI on http://localhost:5000/#/experiments?workflowType=machine_learning"
	@echo "(the covidct experiment is tagged model training; the URL's workflowType opens those views)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(RUN) mlflow ui --backend-store-uri sqlite:///$(COVIDCT_HOME)/mlflow.db --host 127.0.0.1 --port 5000

bench: install
	$(RUN) python benchmarks/manifest_speed.py
	$(RUN) python benchmarks/folds_speed.py
	$(RUN) python benchmarks/bootstrap_speed.py
	$(RUN) python benchmarks/pipeline_speed.py
	$(RUN) python benchmarks/cpu_train.py --keras-trace --grappler
	$(RUN) python benchmarks/gate_null.py
