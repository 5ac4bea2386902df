# meshplane: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit e2e lint typecheck bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The demo mesh on loopback: Pilot, three versions of a service, a client, each with a real Envoy sidecar.
demo: $(STAMP)
	$(BIN)/meshplane demo

## Everything: lint, types, unit tests, end-to-end tests with real Envoy.
test: $(STAMP)
	$(BIN)/ruff check pilot mixer citadel envoy_bootstrap e2e tests bench
	$(BIN)/mypy
	$(BIN)/pytest tests e2e

unit: $(STAMP)
	$(BIN)/pytest tests

e2e: $(STAMP)
	$(BIN)/pytest e2e

lint: $(STAMP)
	$(BIN)/ruff check pilot mixer citadel envoy_bootstrap e2e tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## ADS push benchmark: 1000 simulated proxies x 1000 services (override with ARGS="--streams N --services M").
bench: $(STAMP)
	$(BIN)/python -m bench.ads_push $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
