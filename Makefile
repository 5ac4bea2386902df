# meshplane: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Citadel's gRPC code and the NDS name table, generated from citadel/proto and meshplane/proto at build time and never
# committed (see citadel/proto/generate.py)
PROTOS := $(shell find citadel/proto meshplane/proto -name '*.proto')
GENERATED := citadel/v1/ca_pb2.py meshplane/nds/v1/nds_pb2.py meshplane/proxyconfig/v1/proxy_config_pb2.py

.PHONY: demo test unit e2e k8s-e2e kind-e2e lint typecheck bench venv clean system-packages docker-engine image k8s-cluster

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python citadel/proto/generate.py >/dev/null  # again with the venv's grpcio-tools, matching its grpcio
	# xds-protos ships an old copy of opentelemetry/proto that overwrites opentelemetry-proto's files (as it does
	# envoy/__init__.py); put the real ones back, or the OTLP exporter (mixer --otlp-endpoint) cannot import
	$(BIN)/pip install --quiet --force-reinstall --no-deps \
		"opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	touch $(STAMP)

$(GENERATED): $(PROTOS) citadel/proto/generate.py | $(STAMP)
	$(BIN)/python citadel/proto/generate.py >/dev/null

venv: $(STAMP) $(GENERATED)

## The demo mesh as pods: Pilot, Citadel, Mixer, three versions of a service and a client as pods, each with a real
## Envoy sidecar and iptables capture; as root on the machine, as a normal user inside a user namespace (rootless).
demo: $(STAMP) $(GENERATED)
	$(BIN)/meshplane demo

## What the pod scenarios need from Debian (e2e/test_capture.py, e2e/test_pod_run.py): iptables. Installed when
## running as root and missing; without root those scenarios are skipped, saying why.
system-packages:
	@if [ "$$(id -u)" = 0 ] && ! { command -v iptables-restore && command -v newuidmap; } >/dev/null; then \
		echo "installing Debian's iptables and uidmap for the pod scenarios (uidmap: the rootless demo)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables uidmap >/dev/null; \
	fi
	@if [ "$$(id -u)" = 0 ] && ! command -v redis-server >/dev/null; then \
		echo "installing Debian's redis-server for Mixer's shared quota store tests (mixer --quota-store)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			redis-server >/dev/null; \
	fi

## The docker-compose mesh (README, "docker-compose"): a Docker engine and the offline base image (root; idempotent),
## then meshplane's image built from the host's wheelhouse on it, without network (cached in ~/.cache/meshplane).
docker-engine:
	.ci/docker-engine.sh

image: $(STAMP) $(GENERATED)
	$(BIN)/python -m e2e.compose_build

## The local single-node Kubernetes the scenarios in e2e/k8s run on (README, "Kubernetes"): built once from Debian's
## source package when root with a Docker engine (~18 min cold on 2 cores; cached in ~/.cache/meshplane/k8s).
## Elsewhere it says why not, and those scenarios are skipped saying the same.
k8s-cluster:
	@reason="$$(e2e/k8s/cluster.sh why-not)"; \
	if [ "$$(id -u)" = 0 ] && docker info >/dev/null 2>&1; then e2e/k8s/cluster.sh build; \
	else echo "not building the local Kubernetes cluster: $$reason"; fi

# A test that hangs fails with every thread's stack (pytest-timeout) instead of stalling the run: a unit test takes at
# most seconds (thread method: it also ends a worker stuck in C, e.g. in gRPC); an e2e test, setup included (a cluster's
# start, an image build), at most minutes (signal method: its fixtures still clean up).
UNIT_TIMEOUT := --timeout 120 --timeout-method thread
E2E_TIMEOUT := --timeout 900 --timeout-method signal

## Everything: lint, types, unit tests, end-to-end tests with real Envoy, then the scenarios on a real Kubernetes
## (their own session: the cluster's kube-proxy rules must not be in the host's tables while the pod scenarios run).
test: system-packages k8s-cluster $(STAMP) $(GENERATED)
	$(BIN)/ruff check meshplane xdscore pilot mixer citadel envoy_bootstrap agent injector e2e tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n auto $(UNIT_TIMEOUT) tests
	$(BIN)/pytest $(E2E_TIMEOUT) e2e --ignore=e2e/k8s
	$(BIN)/pytest $(E2E_TIMEOUT) e2e/k8s

unit: $(STAMP) $(GENERATED)
	$(BIN)/pytest $(UNIT_TIMEOUT) tests

e2e: system-packages $(STAMP) $(GENERATED)
	$(BIN)/pytest $(E2E_TIMEOUT) e2e --ignore=e2e/k8s

## The same scenarios on a kind cluster, created and deleted around them (needs docker, kind and kubectl on PATH).
kind-e2e: $(STAMP) $(GENERATED)
	e2e/k8s/kind-e2e.sh

## The scenarios on Kubernetes alone; MESHPLANE_KUBECONFIG=FILE runs them on that cluster instead of the local one.
k8s-e2e: system-packages k8s-cluster $(STAMP) $(GENERATED)
	$(BIN)/pytest $(E2E_TIMEOUT) e2e/k8s

lint: $(STAMP) $(GENERATED)
	$(BIN)/ruff check meshplane xdscore pilot mixer citadel envoy_bootstrap agent injector e2e tests bench

typecheck: $(STAMP) $(GENERATED)
	$(BIN)/mypy

## Every benchmark, each number beside its reference measured in the same run (README, "Performance"): start-up of
## Pilot and Mixer against the stand-in on the 1000-service mesh of ../shared/tools (override with TOOLS=DIR), the
## ADS push benchmark (ARGS="--streams N --services M"), Pilot beside the xds stand-in under xds_load, Mixer's
## checks and telemetry (part 1 in pods, as root), Citadel's certificates.
TOOLS ?= ../shared/tools
bench: $(STAMP) $(GENERATED)
	$(BIN)/python -m bench.startup --tools-dir $(TOOLS)
	$(BIN)/python -m bench.ads_push $(ARGS)
	$(BIN)/python -m bench.ads_push --mode delta $(ARGS)
	$(BIN)/python -m bench.xds_reference --tools-dir $(TOOLS) --mode both
	$(BIN)/python -m bench.xds_scale
	$(BIN)/python -m bench.xds_scale --steps 2000 --skip-storm --services 200  # two Pilots where the clients leave room
	$(BIN)/python -m bench.mixer_policy --tools-dir $(TOOLS) --rate 300 --envoy-rounds 4
	$(BIN)/python -m bench.citadel_certs --reference --rounds 7  # beside the code before issue 13

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info citadel/v1 meshplane/nds meshplane/proxyconfig .wheelhouse
