#!/bin/bash
# `make kind-e2e`: the scenarios of e2e/k8s on a kind cluster, for anyone with Docker and kind (README, "Kubernetes").
#
#   1. kind create cluster (its own kubeconfig in a temporary directory: the user's ~/.kube/config is not touched)
#   2. meshplane's image built (e2e/compose_build.py; BASE_IMAGE=python:3.11-slim by default, pulled by Docker, or
#      meshplane-base:bookworm made offline by .ci/docker-engine.sh) and loaded onto the node: kind load docker-image
#   3. pytest e2e/k8s with MESHPLANE_KUBECONFIG: install with kubectl apply -k, the bookinfo-format workloads in an
#      injected namespace, every scenario (the same code the local cluster runs)
#   4. kind delete cluster, whatever happened (KEEP_CLUSTER=1 keeps it, and prints how to reach it)
#
# Needs: docker, kind, kubectl on PATH. Variables: KIND_CLUSTER (meshplane-e2e), KIND_NODE_IMAGE (kind's default),
# BASE_IMAGE (python:3.11-slim), PYTEST_ARGS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CLUSTER=${KIND_CLUSTER:-meshplane-e2e}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e needs $tool on PATH" >&2; exit 2; }
done
work=$(mktemp -d)
kubeconfig=$work/kubeconfig
cleanup() {
  if [ "${KEEP_CLUSTER:-}" = 1 ]; then echo "kept: kind cluster $CLUSTER, KUBECONFIG=$kubeconfig"
  else kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; rm -rf "$work"; fi
}
trap cleanup EXIT
kind create cluster --name "$CLUSTER" --kubeconfig "$kubeconfig" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
.venv/bin/python -m e2e.compose_build --tag meshplane:latest --base-image "$BASE_IMAGE"
docker tag meshplane:latest localhost/meshplane:latest
kind load docker-image localhost/meshplane:latest --name "$CLUSTER"
MESHPLANE_KUBECONFIG=$kubeconfig MESHPLANE_IMAGE_LOADED=1 .venv/bin/pytest e2e/k8s ${PYTEST_ARGS:-}
