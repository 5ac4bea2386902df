"""Telemetry for pods, end to end: every request through a sidecar becomes Istio's metrics in Mixer and an edge of its
service graph, counted exactly, from real pods' access logs. The workloads are resolved from real addresses: the
caller's pod IP (the downstream peer of the reviews pod's virtualInbound), the called pod's IP (the upstream host of
the productpage pod's ``outbound|9080|<subset>|...`` cluster); a caller outside the mesh (a network namespace without
a sidecar) is ``unknown``, and so is the destination of a request to a host outside the registry (``ALLOW_ANY``:
``PassthroughCluster``), which only the caller's sidecar reports. The world is ``mixer_pods`` (Citadel and Mixer)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.control_plane import MixerProcess
from e2e.pod_mesh import OUTSIDE_NAME, REVIEWS_PORT, REVIEWS_URL, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import JASON_TO_V2
from e2e.telemetry import RequestKey, graph_edge, istio_request_counts

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

JASON, OTHERS, STRANGER, OUTSIDE = 7, 5, 3, 4
SERVICE = "reviews.default.svc.cluster.local"


async def _counts_when_settled(mixer: MixerProcess, expected_total: int, timeout: float = 10.0) -> Counter[RequestKey]:
    """``istio_requests_total`` once it holds ``expected_total`` requests, and again a little later (sidecars flush
    access logs every 250 ms), so that an overcount would show too."""
    deadline = time.monotonic() + timeout
    while True:
        counts = istio_request_counts(await mixer.metrics_text())
        if sum(counts.values()) >= expected_total or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.6)
    return istio_request_counts(await mixer.metrics_text())


def _new_requests(before: dict[str, Any], after: dict[str, Any], source: str, target: str) -> int:
    """The requests the ``/graph`` edge ``source`` -> ``target`` gained from ``before`` to ``after``."""
    counts = [
        0 if (edge := graph_edge(graph, source, target)) is None else int(edge["requests"]) for graph in (before, after)
    ]
    return counts[1] - counts[0]


async def test_istio_requests_total_counts_every_request_exactly_and_graph_shows_the_edges(
    mixer_pods: PodMesh,
) -> None:
    mixer = mixer_pods.mixer
    assert mixer is not None
    await mixer_pods.config.apply("reviews-vs", JASON_TO_V2)
    await mixer_pods.config.wait_synced()  # a route change (RDS) is in force when ACKed
    before = await _counts_when_settled(mixer, 1)  # the readiness requests, reported by both sidecars
    graph_before = await mixer.graph()

    jason = await mixer_pods.responses(REVIEWS_URL, JASON, headers={"end-user": "jason"})
    others = await mixer_pods.responses(REVIEWS_URL, OTHERS, headers={"end-user": "alice"})
    direct = f"http://{mixer_pods.addresses['reviews-v1']}:{REVIEWS_PORT}/"
    stranger = await mixer_pods.responses(direct, STRANGER, client="stranger")
    outside = await mixer_pods.responses(f"http://{OUTSIDE_NAME}:{REVIEWS_PORT}/", OUTSIDE)
    counts = await _counts_when_settled(mixer, sum(before.values()) + 2 * (JASON + OTHERS) + STRANGER + OUTSIDE)
    metrics = await mixer.metrics_text()
    graph = await mixer.graph()

    statuses = [r.status for r in jason + others + stranger + outside]
    assert statuses == [200] * (JASON + OTHERS + STRANGER + OUTSIDE), [r.text for r in jason + others + stranger]
    assert counts - before == Counter(
        {
            RequestKey("destination", "productpage", "reviews-v2", "v2", "200"): JASON,
            RequestKey("destination", "productpage", "reviews-v1", "v1", "200"): OTHERS,
            RequestKey("source", "productpage", "reviews-v2", "v2", "200"): JASON,
            RequestKey("source", "productpage", "reviews-v1", "v1", "200"): OTHERS,
            RequestKey("destination", "unknown", "reviews-v1", "v1", "200"): STRANGER,
            RequestKey("source", "productpage", "unknown", "unknown", "200"): OUTSIDE,
        }
    )
    assert 'connection_security_policy="mutual_tls"' in metrics
    assert 'source_principal="cluster.local/ns/default/sa/bookinfo-productpage"' in metrics
    assert 'destination_principal="cluster.local/ns/default/sa/bookinfo-reviews"' in metrics
    assert f'destination_service="{SERVICE}"' in metrics
    assert 'source_app="productpage"' in metrics and 'destination_app="reviews"' in metrics
    assert "istio_request_duration_milliseconds_bucket{" in metrics

    service = f"service:{SERVICE}"
    caller = graph_edge(graph, "workload:default/productpage", service)
    assert caller is not None and caller["mtls"] is True and caller["error_rate"] == 0, graph
    assert _new_requests(graph_before, graph, "workload:default/productpage", service) == JASON + OTHERS, graph
    assert _new_requests(graph_before, graph, "workload:unknown", service) == STRANGER, graph
    for workload, requests in (("reviews-v2", JASON), ("reviews-v1", OTHERS + STRANGER)):
        assert _new_requests(graph_before, graph, service, f"workload:default/{workload}") == requests, graph
        edge = graph_edge(graph, service, f"workload:default/{workload}")
        assert edge is not None and edge["p99_ms"] >= edge["p50_ms"] > 0, edge
    passthrough = f"service:{OUTSIDE_NAME}"
    assert _new_requests(graph_before, graph, "workload:default/productpage", passthrough) == OUTSIDE, graph
    outside_edge = graph_edge(graph, "workload:default/productpage", passthrough)
    assert outside_edge is not None and outside_edge["error_rate"] == 0, outside_edge
