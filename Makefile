# ecom: the two commands a newcomer needs are `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The shopper simulator as a bounded headless load test against the running
# edge; prints Locust's summary (requests/s, failures, p50/p95/p99 per
# endpoint). Override: make simulate SIM_USERS=50 SIM_DURATION=5m.
SIM_USERS ?= 20
SIM_SPAWN_RATE ?= 2
SIM_DURATION ?= 60s
SIM_HOST ?= http://127.0.0.1:$${ECOM_EDGE_PORT:-8080}

.PHONY: simulate web bench bench-compare doctor doctor-test up down status test test-unit proto proto-check lint breaking venv infra-up infra-down infra-status infra-reset infra-install

# The project's virtualenv, installed from the pinned lock file.
$(STAMP): pyproject.toml requirements.lock
	[ -x $(PY) ] || $$(command -v $(PYTHON) || command -v python3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev,sim]'
	touch $(STAMP)

venv: $(STAMP)

# Regenerate generated/ (Python stubs, .pyi, descriptor set) from proto/.
proto: $(STAMP)
	$(PY) proto/generate.py

# Fail when generated/ does not match proto/.
proto-check: $(STAMP)
	$(PY) proto/generate.py --check

lint: $(STAMP)
	$(PY) -m infra.lint

# Wire-compatibility of the contracts against main (run on a branch): the
# working tree's contracts versus the generated/ecom.protoset committed on main
# (buf reads images because the google/* imports live in Python wheels).
breaking: $(STAMP)
	$(PY) -m infra.lint --breaking main

# Which prerequisite is missing (Python 3.11, Java 17, Go, npm, Maven, apt and
# root, disk, ports) and how to get it. Standard library only: it runs with
# the system Python, before the virtualenv is built.
SYSPY = $$(command -v $(PYTHON) || command -v python3)
doctor:
	@$(SYSPY) -m infra.doctor
doctor-test:
	@$(SYSPY) -m infra.doctor --for test

# The storefront (web/): TypeScript + Vite, built into web/dist, which the
# edge serves at `/`. npm ci runs only when the lock file changed, the build
# only when a source did; npm's own cache (~/.npm) keeps re-installs offline.
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --prefer-offline
	touch $@
web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run build
web: web/dist/index.html

# Bring up the whole system in three timed phases: the datastores (servers),
# every service and the Envoy edge, supervised (services), then the demo data;
# prints each phase's duration, the total, and where to reach it.
UP_STARTED := $(shell date +%s.%N)
up: doctor $(STAMP) web
	$(PY) -m infra.up_all --since $(UP_STARTED)

down: $(STAMP)
	$(PY) -m infra.services down
	$(PY) -m infra down

status: $(STAMP)
	$(PY) -m infra status
	$(PY) -m infra.services status

infra-up: up
infra-down: down
infra-status: status
infra-reset: $(STAMP)
	$(PY) -m infra reset
infra-install: $(STAMP)
	$(PY) -m infra install

# The full suite. Starts the servers it needs and stops those it started.
test: doctor-test $(STAMP) web
	$(PY) -m infra install
	$(PY) -m pytest -p no:cacheprovider tests $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

simulate: $(STAMP)
	$(PY) -m sim --users $(SIM_USERS) --spawn-rate $(SIM_SPAWN_RATE) \
	  --duration $(SIM_DURATION) --host $(SIM_HOST) \
	  --csv $${ECOM_STACK_DIR:-.stack}/sim/simulate $(SIM_ARGS)

# Benchmarks (tests/perf): print latency percentiles, throughput and ratios,
# end with one table of every figure (path, ours, baseline, ratio) and write
# it as JSON under .bench/ (git-ignored).
bench: $(STAMP)
	$(PY) -m pip install -q -c requirements.lock -e '.[dev,sim,bench]'
	ECOM_BENCH=1 $(PY) -m pytest -p no:cacheprovider -s tests/perf $(PYTEST_ARGS)

# Compare two benchmark runs: `make bench-compare A B` (file names under
# .bench/, paths, `latest` or `previous`; default: previous latest).
ifeq (bench-compare,$(firstword $(MAKECMDGOALS)))
BENCH_RUNS := $(wordlist 2,3,$(MAKECMDGOALS))
$(eval $(BENCH_RUNS):;@:)
endif
bench-compare: $(STAMP)
	$(PY) -m tests.perf.report compare $(BENCH_RUNS)
