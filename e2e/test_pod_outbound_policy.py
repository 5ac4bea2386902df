"""MeshConfig ``outboundTrafficPolicy`` for pods: a plain HTTP server in a network namespace on the pod network, not
in the registry (``outside.example``, resolved by the pod's DNS agent through the upstream DNS server, on :9080, a
port the mesh has an HTTP listener for) is reached through PassthroughCluster under ``ALLOW_ANY`` (the default) and
refused with Envoy's 502 under ``REGISTRY_ONLY``; the app's own traffic to itself on 127.0.0.1 is never captured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.pod_mesh import OUTSIDE_NAME, REVIEWS_PORT, pod_mesh
from e2e.pods import pod_get, why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

OUTSIDE_URL = f"http://{OUTSIDE_NAME}:{REVIEWS_PORT}/"


async def test_allow_any_reaches_a_server_outside_the_mesh_through_passthrough(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path) as mesh:
        responses = mesh.get(OUTSIDE_URL, 5)
    assert [status for status, _ in responses] == [200] * 5, responses
    body = json.loads(responses[0][1])
    assert body["service"] == "outside"
    assert body["peer"] == mesh.addresses["productpage"]  # the original source: no proxy in between rewrote it


async def test_registry_only_refuses_a_server_outside_the_mesh_with_502(tmp_path: Path) -> None:
    mesh_config = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"
    async with pod_mesh(tmp_path, mesh_config=mesh_config) as mesh:
        refused = mesh.get(OUTSIDE_URL, 5)
        by_ip = mesh.get(f"http://{mesh.addresses['outside']}:{REVIEWS_PORT}/", 2)
    assert [status for status, _ in refused] == [502] * 5, refused
    assert [status for status, _ in by_ip] == [502] * 2, by_ip


async def test_the_apps_own_traffic_to_itself_on_loopback_is_not_captured(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path) as mesh:
        responses = pod_get(mesh.pod("reviews-v1"), f"http://127.0.0.1:{REVIEWS_PORT}/", 3)
    assert [status for status, _ in responses] == [200] * 3, responses
    body = json.loads(responses[0][1])
    assert body["peer"] == "127.0.0.1"  # through the sidecar's inbound it would come from 127.0.0.6
    assert "x-request-id" not in body["headers"] and "x-envoy-attempt-count" not in body["headers"], body
