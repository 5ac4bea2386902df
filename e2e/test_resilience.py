"""Retries, timeouts and fault injection from VirtualService rules, through real Envoy."""

from __future__ import annotations

import time
import uuid

from e2e.harness import LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_URL
from e2e.rules import reviews_virtual_service


def _only_v1(extra: str) -> str:
    return reviews_virtual_service("- route:\n  - destination: {host: reviews, subset: v1}\n" + extra)


async def test_retries_recover_from_a_failing_first_attempt(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply(
        "reviews-vs", _only_v1("  retries:\n    attempts: 3\n    perTryTimeout: 2s\n    retryOn: 5xx\n")
    )
    await demo_mesh.wait_synced()
    app = demo_mesh.app("reviews-v1")
    app.reset_counts()

    response = await demo_mesh.request(DEMO_CLIENT.name, f"{DEMO_URL}flaky/{uuid.uuid4().hex}")

    assert (response.status, response.version) == (200, "v1")
    assert app.requests_total == 2, "the first attempt failed with 503 and exactly one retry succeeded"


async def test_without_retries_the_failure_reaches_the_caller(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", _only_v1("  retries:\n    attempts: 0\n"))
    await demo_mesh.wait_synced()
    app = demo_mesh.app("reviews-v1")
    app.reset_counts()

    response = await demo_mesh.request(DEMO_CLIENT.name, f"{DEMO_URL}flaky/{uuid.uuid4().hex}")

    assert response.status == 503
    assert app.requests_total == 1


async def test_route_timeout_answers_504(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", _only_v1("  timeout: 0.3s\n"))
    await demo_mesh.wait_synced()

    slow = await demo_mesh.request(DEMO_CLIENT.name, f"{DEMO_URL}delay/3000", timeout=10)
    fast = await demo_mesh.request(DEMO_CLIENT.name, f"{DEMO_URL}delay/10", timeout=10)

    assert slow.status == 504
    assert "upstream request timeout" in slow.text
    assert fast.status == 200


async def test_injected_abort_answers_the_configured_status(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply(
        "reviews-vs", _only_v1("  fault:\n    abort:\n      httpStatus: 503\n      percentage:\n        value: 100\n")
    )
    await demo_mesh.wait_synced()
    app = demo_mesh.app("reviews-v1")
    app.reset_counts()

    responses = await demo_mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 20)

    assert [r.status for r in responses] == [503] * 20
    assert all("fault filter abort" in r.text for r in responses)
    assert app.requests_total == 0, "aborted requests never reach the app"


async def test_injected_delay_holds_requests_back(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply(
        "reviews-vs",
        _only_v1("  fault:\n    delay:\n      fixedDelay: 0.6s\n      percentage:\n        value: 100\n"),
    )
    await demo_mesh.wait_synced()

    started = time.monotonic()
    response = await demo_mesh.request(DEMO_CLIENT.name, DEMO_URL, timeout=10)
    elapsed = time.monotonic() - started

    assert (response.status, response.version) == (200, "v1")
    assert elapsed >= 0.6, f"answered after {elapsed:.3f}s, before the injected 0.6s delay"
