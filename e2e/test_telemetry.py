"""Telemetry with real Envoy: every request through a sidecar becomes Istio's metrics in Mixer and an edge of its
service graph, counted exactly."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from e2e.harness import DemoMeshFactory, LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_HOST, DEMO_ROUTE_FILES, DEMO_URL, demo_config_text
from e2e.telemetry import RequestKey, graph_edge, istio_request_counts

JASON, OTHERS, UNKNOWN_HOST = 7, 5, 3


async def _counts_when_settled(mesh: LocalMesh, expected_total: int, timeout: float = 10.0) -> Counter[RequestKey]:
    """Mixer's ``istio_requests_total`` once it holds at least ``expected_total`` requests, and again a little later
    (sidecars flush access logs every 250 ms), so that an overcount would show too."""
    assert mesh.mixer is not None
    deadline = time.monotonic() + timeout
    while True:
        counts = istio_request_counts(await mesh.mixer.metrics_text())
        if sum(counts.values()) >= expected_total or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.6)
    return istio_request_counts(await mesh.mixer.metrics_text())


async def test_istio_requests_total_counts_every_request_exactly_and_graph_shows_the_edges(
    mixer_mesh: DemoMeshFactory,
) -> None:
    mesh = await mixer_mesh(citadel=True, route_to_v1=False)
    await mesh.apply("reviews-vs", demo_config_text(DEMO_ROUTE_FILES[2], mesh.subnet))  # jason -> v2, others -> v3
    await mesh.wait_synced()
    client = DEMO_CLIENT.name
    jason = await mesh.send_many(client, DEMO_URL, JASON, headers={"end-user": "jason"})
    others = await mesh.send_many(client, DEMO_URL, OTHERS, headers={"end-user": "alice"})
    unknown = await mesh.send_many(client, "http://nowhere.default.svc.cluster.local:9080/", UNKNOWN_HOST)
    assert [r.status for r in jason + others] == [200] * (JASON + OTHERS)
    assert [r.status for r in unknown] == [404] * UNKNOWN_HOST

    counts = await _counts_when_settled(mesh, 2 * (JASON + OTHERS) + UNKNOWN_HOST)
    assert counts == Counter(
        {
            RequestKey("destination", client, "reviews-v2", "v2", "200"): JASON,
            RequestKey("destination", client, "reviews-v3", "v3", "200"): OTHERS,
            RequestKey("source", client, "reviews-v2", "v2", "200"): JASON,
            RequestKey("source", client, "reviews-v3", "v3", "200"): OTHERS,
            RequestKey("source", client, "unknown", "unknown", "404"): UNKNOWN_HOST,
        }
    )
    assert mesh.mixer is not None
    metrics = await mesh.mixer.metrics_text()
    assert 'connection_security_policy="mutual_tls"' in metrics
    assert f'source_principal="cluster.local/ns/default/sa/{DEMO_CLIENT.service_account}"' in metrics
    assert "istio_request_duration_milliseconds_bucket{" in metrics

    graph = await mesh.mixer.graph()
    service = f"service:{DEMO_HOST}"
    caller = graph_edge(graph, f"workload:default/{client}", service)
    assert caller is not None, graph
    assert caller["requests"] == JASON + OTHERS and caller["mtls"] is True and caller["error_rate"] == 0
    for workload, requests in (("reviews-v2", JASON), ("reviews-v3", OTHERS)):
        edge = graph_edge(graph, service, f"workload:default/{workload}")
        assert edge is not None and edge["requests"] == requests, graph
        assert edge["p99_ms"] >= edge["p50_ms"] > 0
    nowhere = graph_edge(graph, f"workload:default/{client}", "service:nowhere.default.svc.cluster.local")
    assert nowhere is not None and nowhere["requests"] == UNKNOWN_HOST and nowhere["error_rate"] == 0, graph
