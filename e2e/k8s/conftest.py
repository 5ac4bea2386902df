"""Fixtures of the scenarios on a real Kubernetes (``e2e/k8s/``).

These run in their own pytest session (``make test`` runs ``pytest e2e/k8s`` after the other end-to-end tests): the
cluster's kube-proxy and CNI rules live in the host's iptables while it is up, and the pod scenarios elsewhere in
``e2e/`` check that the host's tables hold nothing but their own.

- ``local_kubernetes``: the cluster the scenarios run on, once per session. With ``MESHPLANE_KUBECONFIG=FILE`` set,
  the cluster of that kubeconfig (kind's, ``make kind-e2e``; or a local cluster already up, while developing): used,
  never brought up or down. Otherwise a real single-node Kubernetes on this machine (``e2e/k8s/cluster.sh``), brought
  up and torn down; skipped, saying why, where it cannot run (not root, no Docker engine, binaries not built).
  Either way with meshplane's CRDs applied (``manifests/crds/``: Istio's and Mixer's kinds), as a user's first step.
- ``kube_mesh``: meshplane (control plane and gateways) and the demo's workloads installed (``e2e.k8s.kube_install``),
  once per session for every scenario that asks for it (test_mesh.py, test_gateway_ingress.py); removed at its end.
  Those scenarios run last: a live mesh writes status to every namespace's rejected objects, publishes
  ``istio-ca-root-cert`` into every namespace and validates every VirtualService against every other, which the
  scenarios that start their own Pilot or check an empty namespace must not see.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from e2e.compose_build import DEFAULT_TAG, build_image
from e2e.k8s.kube_install import apply_crds, install_mesh, uninstall_mesh
from e2e.k8s.kube_mesh import KubeMesh
from e2e.k8s.kubectl import Kubectl
from e2e.k8s.local_cluster import (
    LocalCluster,
    localhost_image,
    start_cluster,
    stop_cluster,
    why_cluster_cannot_start,
)

# the kubernetes client (37.x) leaves one TLS socket to the apiserver for the garbage collector (found, not yet
# pinned down: the exec websocket or a pooled connection); only that warning is let through, in these tests only
CLIENT_SOCKET_WARNING = "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(__file__).parent in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings(CLIENT_SOCKET_WARNING))
    items.sort(key=_needs_installed_mesh)  # stable: the scenarios on the installed mesh last, in their own order


def _needs_installed_mesh(item: pytest.Item) -> bool:
    return "kube_mesh" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session")
def local_kubernetes() -> Iterator[LocalCluster]:
    """A real single-node Kubernetes 1.20.2 on this machine (``e2e/k8s/cluster.sh``), brought up once per session
    and torn down at its end (every process, pod, iptables rule, device and mount it made). Skipped, with the reason,
    where it cannot run: not root, no Docker engine, or the binaries not built (``e2e/k8s/cluster.sh build``, once,
    ~18 min; cached under ~/.cache/meshplane/k8s)."""
    given = os.environ.get("MESHPLANE_KUBECONFIG")
    if given:
        cluster = LocalCluster(kubeconfig=Path(given), up_seconds=0.0)
        apply_crds(Kubectl(kubeconfig=cluster.kubeconfig))
        yield cluster
        return
    reason = why_cluster_cannot_start()
    if reason is not None:
        pytest.skip(reason)
    cluster = start_cluster()
    try:
        apply_crds(Kubectl(kubeconfig=cluster.kubeconfig))
        yield cluster
    finally:
        stop_cluster()


@pytest.fixture(scope="session")
def kube_mesh(local_kubernetes: LocalCluster) -> Iterator[KubeMesh]:
    """meshplane and the demo's workloads installed on the cluster, once per session; removed at its end."""
    if not os.environ.get("MESHPLANE_IMAGE_LOADED"):  # kind: e2e/k8s/kind-e2e.sh built and loaded it already
        build_image()
        localhost_image(DEFAULT_TAG)
    kubectl = Kubectl(kubeconfig=local_kubernetes.kubeconfig)
    install_mesh(kubectl)
    try:
        yield KubeMesh(kubectl=kubectl)
    finally:
        uninstall_mesh(kubectl)


@pytest.fixture
def kube_api(local_kubernetes: LocalCluster) -> Iterator[client.ApiClient]:
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]  # untyped upstream
        config_file=str(local_kubernetes.kubeconfig)
    )
    with api_client:
        yield api_client
    gc.collect()  # the sockets the client left behind are reported now, under this module's warning filter


@pytest.fixture
def kube_namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, deleted after the test: ``<NAMESPACE_PREFIX>-xxxxxx``, the prefix a module may set
    (``smoke`` otherwise), so that what a test left is traced to its module."""
    prefix = getattr(request.module, "NAMESPACE_PREFIX", "smoke")
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
