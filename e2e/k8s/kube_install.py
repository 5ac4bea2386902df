"""meshplane on a cluster, as a user installs it (README, "Kubernetes"), and the demo's workloads beside it:

1. ``kubectl apply -f manifests/crds/`` (Istio's CRDs and meshplane's), until they are established;
2. ``kubectl apply -k e2e/k8s/local-install`` (``manifests/`` with the image this tree built, ``localhost/meshplane``,
   never pulled), until every control-plane Deployment is available;
3. the namespace ``default`` labelled ``istio-injection=enabled``, the demo's workloads (``e2e/k8s/demo/``) applied
   into it, until every pod is Ready: each with the sidecar the injector added.

``uninstall`` removes them again, in the reverse order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from e2e.k8s.kube_mesh import APP_NAMESPACE, CONTROL_NAMESPACE, DEMO_APP_DIR, OUTSIDER_NAMESPACE
from e2e.k8s.kubectl import Kubectl

__all__ = ["CRDS_DIR", "OVERLAY_DIR", "Installed", "apply_crds", "install_mesh", "uninstall_mesh"]

ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = ROOT / "manifests" / "crds"
OVERLAY_DIR = Path(__file__).with_name("local-install")
DEMO_FILES = ("bookinfo.yaml", "outsider.yaml", "destination-rules.yaml")
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Installed:
    """How long each part of the install took (seconds)."""

    crds: float
    control_plane: float
    workloads: float


def _rollout(kubectl: Kubectl, namespace: str, timeout: float) -> None:
    """Until every Deployment of ``namespace`` is available."""
    for deployment in kubectl.run("get", "deployments", "-n", namespace, "-o", "name").split():
        kubectl.run("rollout", "status", "-n", namespace, deployment, f"--timeout={timeout:.0f}s", timeout=timeout)


def _timed(started: float) -> float:
    return round(time.monotonic() - started, 1)


def apply_crds(kubectl: Kubectl) -> None:
    """``kubectl apply -f manifests/crds/``, until every CRD is established (its kind can be created)."""
    kubectl.run("apply", "-f", str(CRDS_DIR))
    kubectl.run("wait", "--for", "condition=established", "--timeout", "60s", "-f", str(CRDS_DIR))


def install_mesh(kubectl: Kubectl, *, timeout: float = 180.0) -> Installed:
    """Install meshplane and the demo's workloads; raises KubectlError with kubectl's message on a failure."""
    started = time.monotonic()
    apply_crds(kubectl)
    crds = _timed(started)

    started = time.monotonic()
    kubectl.run("apply", "-k", str(OVERLAY_DIR))
    _rollout(kubectl, CONTROL_NAMESPACE, timeout)
    control_plane = _timed(started)

    started = time.monotonic()
    kubectl.run("label", "namespace", APP_NAMESPACE, "istio-injection=enabled", "--overwrite")
    for name in DEMO_FILES:  # bookinfo.yaml and destination-rules.yaml name no namespace: the injected one
        kubectl.run(
            "apply", *(() if name == "outsider.yaml" else ("-n", APP_NAMESPACE)), "-f", str(DEMO_APP_DIR / name)
        )
    for namespace in (APP_NAMESPACE, OUTSIDER_NAMESPACE):
        _rollout(kubectl, namespace, timeout)
        kubectl.run(
            "wait",
            "-n",
            namespace,
            "--for",
            "condition=Ready",
            "pod",
            "--all",
            f"--timeout={timeout:.0f}s",
            timeout=timeout,
        )
    installed = Installed(crds=crds, control_plane=control_plane, workloads=_timed(started))
    log.info("meshplane installed", **vars(installed))
    return installed


def uninstall_mesh(kubectl: Kubectl) -> None:
    """The demo's workloads, the injection label, the control plane (the CRDs with every custom resource too;
    applied again, empty, for the session's other scenarios)."""
    for name in reversed(DEMO_FILES):
        namespace = () if name == "outsider.yaml" else ("-n", APP_NAMESPACE)
        kubectl.run("delete", *namespace, "-f", str(DEMO_APP_DIR / name), "--ignore-not-found", "--wait=false")
    kubectl.run("label", "namespace", APP_NAMESPACE, "istio-injection-", check=False)
    kubectl.run("delete", "-k", str(OVERLAY_DIR), "--ignore-not-found", timeout=120.0)
    apply_crds(kubectl)  # the overlay has the CRDs too: the session's other tests still need them
