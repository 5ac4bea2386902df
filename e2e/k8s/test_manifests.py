"""manifests/ against a real apiserver (Kubernetes 1.20): every object of ``kubectl apply -k manifests/`` passes the
server's validation (a server-side dry run: nothing of the control plane is created; its namespaced objects are
moved to a test namespace so that the shared cluster's istio-system is never touched), and Istio-format YAML as
Istio's docs write it (e2e/k8s/istio-samples) applies to Istio's CRDs, reads back unchanged (nothing pruned: a field
meshplane rejects reaches meshplane) and is listed by Istio's short names with Istio's columns.

The CRDs must already be applied (``kubectl apply -f manifests/crds/``); they are cluster-wide and shared, so these
tests neither create nor delete them."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.k8s.install_manifests import (
    Manifest,
    by_key,
    kubectl_1_20,
    kustomization_objects,
    load_manifests,
    object_key,
    relocated,
)
from e2e.k8s.local_cluster import LocalCluster

NAMESPACE_PREFIX = "mf"  # kube_namespace's

SAMPLES_DIR = Path(__file__).with_name("istio-samples")
SAMPLES = [(path.name, obj) for path in sorted(SAMPLES_DIR.glob("*.yaml")) for obj in load_manifests(path.read_text())]
SAMPLE_IDS = [f"{obj['kind']}-{obj['metadata']['name']}-{obj['apiVersion'].rsplit('/', 1)[1]}" for _, obj in SAMPLES]


def _kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl_1_20()), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def samples_applied(local_kubernetes: LocalCluster) -> Iterator[str]:
    """The Istio samples applied for real into a fresh ``mf-`` namespace (once for the module), then deleted."""
    namespace = f"mf-samples-{uuid.uuid4().hex[:6]}"
    created = _kubectl(local_kubernetes, "create", "namespace", namespace)
    assert created.returncode == 0, created.stderr
    try:
        applied = _kubectl(local_kubernetes, "apply", "-n", namespace, "-f", str(SAMPLES_DIR))
        assert applied.returncode == 0, applied.stderr
        yield namespace
    finally:
        # waited for: a mesh installed after this module must not find the samples' VirtualServices still there
        _kubectl(local_kubernetes, "delete", "namespace", namespace, "--timeout=90s")


def test_every_object_of_the_install_passes_the_servers_validation(
    local_kubernetes: LocalCluster, kube_namespace: str
) -> None:
    objects = relocated(kustomization_objects(), kube_namespace)
    done = _kubectl(
        local_kubernetes, "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=yaml.safe_dump_all(objects)
    )
    assert done.returncode == 0, done.stderr
    applied = sorted(line.split("/", 1)[1] for line in done.stdout.split())
    assert applied == sorted(obj["metadata"]["name"] for obj in objects)
    assert len(objects) == len(by_key(kustomization_objects())) - 1  # everything but the Namespace istio-system
    pods = _kubectl(local_kubernetes, "get", "deployments,services,configmaps", "-n", kube_namespace, "-o", "name")
    assert pods.returncode == 0, pods.stderr
    assert [name for name in pods.stdout.split() if "istio" in name] == []  # a dry run: nothing was created


def _read_back(cluster: LocalCluster, namespace: str, sample: Manifest) -> dict[str, Any]:
    group_version = sample["apiVersion"]
    group, version = group_version.split("/")
    plural = next(
        crd["spec"]["names"]["plural"]
        for crd in kustomization_objects()
        if crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == sample["kind"]
    )
    done = _kubectl(
        cluster, "get", f"{plural}.{version}.{group}", sample["metadata"]["name"], "-n", namespace, "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    read: dict[str, Any] = json.loads(done.stdout)
    return read


@pytest.mark.parametrize(("file", "sample"), SAMPLES, ids=SAMPLE_IDS)
def test_each_istio_sample_reads_back_unchanged_in_its_version(
    local_kubernetes: LocalCluster, samples_applied: str, file: str, sample: Manifest
) -> None:
    read = _read_back(local_kubernetes, samples_applied, sample)
    assert (read["apiVersion"], read["kind"]) == (sample["apiVersion"], sample["kind"])
    assert read["spec"] == sample["spec"], f"{file}: the apiserver changed the spec"
    assert object_key(read)[2] == sample["metadata"]["name"]


def test_a_field_meshplane_rejects_is_kept_by_the_apiserver(
    local_kubernetes: LocalCluster, samples_applied: str
) -> None:
    """The CRDs prune nothing: the typo reaches meshplane, which rejects it (not accepted and ignored)."""
    sample = next(obj for name, obj in SAMPLES if name == "rejected-field-typo.yaml")
    read = _read_back(local_kubernetes, samples_applied, sample)
    assert read["spec"]["http"][0]["routes"] == [{"destination": {"host": "ratings", "subset": "v1"}}]


@pytest.mark.parametrize(
    ("short_names", "header"),
    [
        ("vs", ["NAME", "GATEWAYS", "HOSTS", "AGE"]),
        ("dr", ["NAME", "HOST", "AGE"]),
        ("se", ["NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE"]),
        ("pa", ["NAME", "MODE", "AGE"]),
        ("ap", ["NAME", "ACTION", "AGE"]),
        ("gw", ["NAME", "AGE"]),
        ("al", ["NAME", "MODE", "VALUE", "AGE"]),
        ("rl", ["NAME", "REQUESTS", "PER", "KEY", "AGE"]),
    ],
    ids=["vs", "dr", "se", "pa", "ap", "gw", "al", "rl"],
)
def test_kubectl_lists_the_samples_by_istios_short_names_and_columns(
    local_kubernetes: LocalCluster, samples_applied: str, short_names: str, header: list[str]
) -> None:
    done = _kubectl(local_kubernetes, "get", short_names, "-n", samples_applied)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == header
    assert len(lines) > 1


def test_the_istio_category_lists_every_istio_sample(local_kubernetes: LocalCluster, samples_applied: str) -> None:
    done = _kubectl(local_kubernetes, "get", "istio-io", "-n", samples_applied, "-o", "name")
    assert done.returncode == 0, done.stderr
    istio = [obj for _, obj in SAMPLES if obj["apiVersion"].split("/")[0].endswith(".istio.io")]
    assert len(done.stdout.split()) == len(istio)
