"""End-to-end: real Envoy sidecars driven by a real Pilot on loopback, the sample app, and the demo mesh.

``LocalMesh`` (``e2e.harness``) runs a mesh on one 127.x.y.0/24; ``SampleApp`` is the workload behind each
sidecar; ``e2e.mesh_config`` holds the demo topology and the YAML in ``e2e/demo_config/``.

Exports are imported lazily, so that ``python -m e2e.sample_app`` does not import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e2e.control_plane import PilotError, PilotProcess
    from e2e.harness import LocalMesh, MeshNotSyncedError, Workload, find_free_subnet
    from e2e.mesh_config import (
        DEMO_CLIENT,
        DEMO_MESH_FILE,
        DEMO_ROUTE_FILES,
        DEMO_URL,
        DEMO_WORKLOADS,
        WorkloadSpec,
        demo_config_text,
        render_demo_mesh,
    )
    from e2e.sample_app import SampleApp
    from e2e.traffic import MeshResponse, SidecarClient, count_by

_EXPORTS = {
    "DEMO_CLIENT": "e2e.mesh_config",
    "DEMO_MESH_FILE": "e2e.mesh_config",
    "DEMO_ROUTE_FILES": "e2e.mesh_config",
    "DEMO_URL": "e2e.mesh_config",
    "DEMO_WORKLOADS": "e2e.mesh_config",
    "LocalMesh": "e2e.harness",
    "MeshNotSyncedError": "e2e.harness",
    "MeshResponse": "e2e.traffic",
    "PilotError": "e2e.control_plane",
    "PilotProcess": "e2e.control_plane",
    "SampleApp": "e2e.sample_app",
    "SidecarClient": "e2e.traffic",
    "Workload": "e2e.harness",
    "WorkloadSpec": "e2e.mesh_config",
    "count_by": "e2e.traffic",
    "demo_config_text": "e2e.mesh_config",
    "find_free_subnet": "e2e.harness",
    "render_demo_mesh": "e2e.mesh_config",
}

__all__ = [
    "DEMO_CLIENT",
    "DEMO_MESH_FILE",
    "DEMO_ROUTE_FILES",
    "DEMO_URL",
    "DEMO_WORKLOADS",
    "LocalMesh",
    "MeshNotSyncedError",
    "MeshResponse",
    "PilotError",
    "PilotProcess",
    "SampleApp",
    "SidecarClient",
    "Workload",
    "WorkloadSpec",
    "count_by",
    "demo_config_text",
    "find_free_subnet",
    "render_demo_mesh",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'e2e' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
