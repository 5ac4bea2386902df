"""End-to-end: a real Pilot, Citadel and Mixer on the host, real Envoy sidecars in pods, and the demo mesh.

``pod_mesh`` (``e2e.pod_mesh``) runs a mesh of pods (network namespaces with iptables capture, ``meshplane pod run``)
on a pod network of its own; ``e2e.mesh_config`` holds the demo topology and the YAML in ``e2e/demo_config/``.
``e2e.harness`` holds the control plane's ports (Pilot, Citadel and Mixer share one host address, as in istiod)
and finds a free loopback ``/24`` for a test's own control plane.

Exports are imported lazily, so that ``python -m e2e.<module>`` does not import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e2e.config_sync import ConfigSync, MeshNotSyncedError
    from e2e.control_plane import PilotError, PilotProcess
    from e2e.harness import find_free_subnet
    from e2e.mesh_config import DEMO_CLIENT, DEMO_MESH_FILE, DEMO_ROUTE_FILES, DEMO_WORKLOADS, WorkloadSpec
    from e2e.pod_mesh import PodMesh, pod_mesh
    from e2e.traffic import MeshResponse, count_by

_EXPORTS = {
    "ConfigSync": "e2e.config_sync",
    "DEMO_CLIENT": "e2e.mesh_config",
    "DEMO_MESH_FILE": "e2e.mesh_config",
    "DEMO_ROUTE_FILES": "e2e.mesh_config",
    "DEMO_WORKLOADS": "e2e.mesh_config",
    "MeshNotSyncedError": "e2e.config_sync",
    "MeshResponse": "e2e.traffic",
    "PilotError": "e2e.control_plane",
    "PilotProcess": "e2e.control_plane",
    "PodMesh": "e2e.pod_mesh",
    "WorkloadSpec": "e2e.mesh_config",
    "count_by": "e2e.traffic",
    "find_free_subnet": "e2e.harness",
    "pod_mesh": "e2e.pod_mesh",
}

__all__ = [
    "DEMO_CLIENT",
    "DEMO_MESH_FILE",
    "DEMO_ROUTE_FILES",
    "DEMO_WORKLOADS",
    "ConfigSync",
    "MeshNotSyncedError",
    "MeshResponse",
    "PilotError",
    "PilotProcess",
    "PodMesh",
    "WorkloadSpec",
    "count_by",
    "find_free_subnet",
    "pod_mesh",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'e2e' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
