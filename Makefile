# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench bench-quick bench-fake setup

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m config.devenv .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	$(PY) manage.py sync_schedules_apply
	PY=$(PY) DEMO_TRAFFIC=1 ./scripts/run_platform.sh

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks (BENCHMARKS.md): the full suite takes about 30 minutes on 2 cores (run it on a quiet
# machine); the quick one is CI's smoke run. Both need PostgreSQL, Redis and wrk (apt-get install -y wrk).
# `make bench-fake` starts the lightweight fake Virtuous alone, for load experiments by hand, e.g.
# make bench-fake PORT=8123 ARGS="--latency-ms 500 --latency-sigma 0.3" (organisations: POST /_fake/orgs).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): bench/requirements.txt $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py $(ARGS)

bench-quick: $(BENCH_STAMP)
	$(PY) bench/run.py --quick $(ARGS)

bench-fake: $(STAMP)
	$(PY) -m bench.fake_virtuous --port $(or $(PORT),8123) $(ARGS)
