"""Telemetry for pods, end to end: Istio's ``istio_requests_total`` and Mixer's ``/graph`` from real pods' access
logs. The workloads are resolved from real addresses: the caller's pod IP (the downstream peer of the reviews pod's
virtualInbound), the called pod's IP (the upstream host of the productpage pod's ``outbound|9080|<subset>|...``
cluster); a caller outside the mesh (a network namespace without a sidecar) is ``unknown``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from e2e.control_plane import MixerProcess
from e2e.pod_mesh import REVIEWS_PORT, REVIEWS_URL, pod_mesh
from e2e.pods import pod_get, why_pods_cannot_run
from e2e.rules import JASON_TO_V2
from e2e.telemetry import RequestKey, graph_edge, istio_request_counts

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

JASON, OTHERS, STRANGER = 7, 5, 3
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


async def test_istio_requests_total_names_the_real_pods(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, JASON_TO_V2, citadel=True, mixer=True) as mesh:
        mixer = mesh.mixer
        assert mixer is not None
        ready = await _counts_when_settled(mixer, 1)  # the readiness requests, reported by both sidecars
        graph_before = await mixer.graph()
        jason = mesh.get(REVIEWS_URL, JASON, headers={"end-user": "jason"})
        others = mesh.get(REVIEWS_URL, OTHERS, headers={"end-user": "alice"})
        direct = f"http://{mesh.addresses['reviews-v1']}:{REVIEWS_PORT}/"
        stranger = pod_get(mesh.pod("stranger"), direct, STRANGER)
        counts = await _counts_when_settled(mixer, sum(ready.values()) + 2 * (JASON + OTHERS) + STRANGER)
        metrics = await mixer.metrics_text()
        graph = await mixer.graph()
    assert [status for status, _ in jason + others + stranger] == [200] * (JASON + OTHERS + STRANGER)
    assert counts - ready == Counter(
        {
            RequestKey("destination", "productpage", "reviews-v2", "v2", "200"): JASON,
            RequestKey("destination", "productpage", "reviews-v1", "v1", "200"): OTHERS,
            RequestKey("source", "productpage", "reviews-v2", "v2", "200"): JASON,
            RequestKey("source", "productpage", "reviews-v1", "v1", "200"): OTHERS,
            RequestKey("destination", "unknown", "reviews-v1", "v1", "200"): STRANGER,
        }
    )
    assert 'connection_security_policy="mutual_tls"' in metrics
    assert 'source_principal="cluster.local/ns/default/sa/bookinfo-productpage"' in metrics
    assert 'destination_principal="cluster.local/ns/default/sa/bookinfo-reviews"' in metrics
    assert f'destination_service="{SERVICE}"' in metrics
    assert 'source_app="productpage"' in metrics and 'destination_app="reviews"' in metrics

    service = f"service:{SERVICE}"
    assert _new_requests(graph_before, graph, "workload:default/productpage", service) == JASON + OTHERS, graph
    assert _new_requests(graph_before, graph, "workload:unknown", service) == STRANGER, graph
    for workload, requests in (("reviews-v2", JASON), ("reviews-v1", OTHERS + STRANGER)):
        assert _new_requests(graph_before, graph, service, f"workload:default/{workload}") == requests, graph
