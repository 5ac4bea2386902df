"""meshplane's install manifests (``manifests/``) as objects: what ``kubectl apply -k manifests/`` applies.

``kustomization_objects`` reads the files the kustomization lists (it uses no transformer, so they are exactly what
kustomize renders; ``tests/test_manifests.py`` checks that against ``kubectl kustomize``); ``kustomize`` runs the
kubectl 1.20 that ``e2e/k8s/cluster.sh build`` made (its kustomize is v2.0.3, the oldest the manifests support).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS_DIR = REPO / "manifests"
CHART_DIR = MANIFESTS_DIR / "charts" / "meshplane"
LOCAL_INSTALL_DIR = Path(__file__).with_name("local-install")
CONTROL_PLANE_NAMESPACE = "istio-system"

Manifest = dict[str, Any]
ObjectKey = tuple[str, str, str]  # kind, namespace ("" for cluster-scoped), name


def kubectl_1_20() -> Path:
    """The kubectl 1.20 of the local cluster's build (it may not be built: check ``.exists()``)."""
    home = Path(os.environ.get("K8S_HOME", Path.home() / ".cache" / "meshplane" / "k8s"))
    return home / "bin" / "kubectl"


def kustomization_objects(directory: Path = MANIFESTS_DIR) -> list[Manifest]:
    """Every object of the files ``directory/kustomization.yaml`` lists, in order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return [obj for name in kustomization["resources"] for obj in load_manifests((directory / name).read_text())]


def load_manifests(text: str) -> list[Manifest]:
    """The objects of a multi-document YAML text (empty documents dropped)."""
    return [obj for obj in yaml.safe_load_all(text) if obj is not None]


def kustomize(directory: Path, kubectl: Path | None = None) -> list[Manifest]:
    """``kubectl kustomize directory`` with kubectl 1.20 (or ``kubectl``); raises with kustomize's error."""
    done = subprocess.run(
        [str(kubectl or kubectl_1_20()), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {done.stderr.strip()}")
    return load_manifests(done.stdout)


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj["metadata"]
    return (obj["kind"], metadata.get("namespace", ""), metadata["name"])


def by_key(objects: Iterable[Manifest]) -> dict[ObjectKey, Manifest]:
    """The objects by kind, namespace and name; raises on a duplicate (kubectl would apply only the last)."""
    indexed: dict[ObjectKey, Manifest] = {}
    for obj in objects:
        key = object_key(obj)
        if key in indexed:
            raise ValueError(f"{key} is defined twice")
        indexed[key] = obj
    return indexed


def relocated(objects: Iterable[Manifest], namespace: str) -> list[Manifest]:
    """The objects with ``istio-system`` replaced by ``namespace`` wherever they name it (metadata, binding
    subjects, the webhook's service) and the Namespace itself left out: the control plane validated by a server-side
    dry run in a test namespace, without touching a shared cluster's istio-system."""
    moved: list[Manifest] = []
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        text = yaml.safe_dump(obj)
        text = text.replace(f"namespace: {CONTROL_PLANE_NAMESPACE}\n", f"namespace: {namespace}\n")
        moved.append(yaml.safe_load(text))
    return moved
