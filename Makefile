# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench bench-quick bench-fake setup docs lock

# Both locks are hashed (pip-compile --generate-hashes, see docs/dependencies.md): pip refuses
# any file whose hash is not in them.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt -r requirements-dev.txt
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

# Regenerate both hashed locks after editing requirements.in or requirements-dev.in.
lock: $(STAMP)
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-docs.txt requirements-docs.in

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

# The manual as a site (docs/ → var/site/); strict: a broken link or anchor fails the build.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): requirements-docs.txt $(STAMP)
	$(PY) -m pip install --quiet --require-hashes -r requirements-docs.txt
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict

bench-fake: $(STAMP)
	$(PY) -m bench.fake_virtuous --port $(or $(PORT),8123) $(ARGS)
