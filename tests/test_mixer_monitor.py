"""Mixer's monitor endpoints (mixer/monitor.py) over real HTTP on 127.0.0.1: /ready follows readiness, /metrics is
the Prometheus exposition, /graph and /debug/configz are the JSON the callables return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mixer.graph import ServiceGraph
from mixer.monitor import MixerMonitor
from tests.mixer_builders import REVIEWS, REVIEWS_REPORT, FakeClock


class Readiness:
    def __init__(self) -> None:
        self.ready = False

    def __call__(self) -> bool:
        return self.ready


@pytest.fixture
async def served() -> AsyncIterator[tuple[MixerMonitor, Readiness, ServiceGraph]]:
    readiness = Readiness()
    graph = ServiceGraph(window_seconds=60, clock=FakeClock())
    monitor = MixerMonitor(
        "127.0.0.1:0",
        ready=readiness,
        exposition=lambda: b"# TYPE mixer_checks_total counter\nmixer_checks_total 3.0\n",
        graph=graph.snapshot,
        configz=lambda: {"version": 7, "in_force_version": 7},
    )
    await monitor.start()
    try:
        yield monitor, readiness, graph
    finally:
        await monitor.stop()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.content_type, await response.text()


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        return await response.json()


async def test_ready_follows_readiness(served: tuple[MixerMonitor, Readiness, ServiceGraph]) -> None:
    monitor, readiness, _ = served
    assert await get(f"{monitor.url}/ready") == (503, "text/plain", "not ready: the gRPC server is not serving\n")
    readiness.ready = True
    assert await get(f"{monitor.url}/ready") == (200, "text/plain", "ready\n")


async def test_metrics_is_the_exposition(served: tuple[MixerMonitor, Readiness, ServiceGraph]) -> None:
    monitor, _, _ = served
    status, content_type, text = await get(f"{monitor.url}/metrics")
    assert (status, content_type) == (200, "text/plain")
    assert text == "# TYPE mixer_checks_total counter\nmixer_checks_total 3.0\n"


async def test_graph_and_configz_are_json(served: tuple[MixerMonitor, Readiness, ServiceGraph]) -> None:
    monitor, _, graph = served
    assert await get_json(f"{monitor.url}/graph") == {"window_seconds": 60, "nodes": [], "edges": []}
    graph.observe(REVIEWS_REPORT)
    served_graph = await get_json(f"{monitor.url}/graph")
    assert served_graph == graph.snapshot()
    assert [(e["source"], e["target"], e["requests"]) for e in served_graph["edges"]] == [
        (f"service:{REVIEWS}", "workload:default/reviews-v1", 1),
        ("workload:default/productpage-v1", f"service:{REVIEWS}", 1),
    ]
    assert await get_json(f"{monitor.url}/debug/configz") == {"version": 7, "in_force_version": 7}
