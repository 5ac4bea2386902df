"""Retries, timeouts and fault injection from VirtualService rules, through real Envoy sidecars in pods, for an
unmodified app (plain ``urllib`` in the productpage pod) calling ``http://reviews:9080/``; what reached the reviews
app is asked from the app itself (``e2e.pod_app``'s ``/count/<path>``, on 127.0.0.1 inside its pod). One world of
pods per module (``pods`` in e2e/conftest.py), reset after each test."""

from __future__ import annotations

import time
import uuid

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import REVIEWS_URL, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import reviews_virtual_service

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]


def _only_v1(extra: str) -> str:
    return reviews_virtual_service("- route:\n  - destination: {host: reviews, subset: v1}\n" + extra)


async def test_retries_recover_from_a_failing_first_attempt(pods: PodMesh) -> None:
    await pods.config.apply(
        "reviews-vs", _only_v1("  retries:\n    attempts: 3\n    perTryTimeout: 2s\n    retryOn: 5xx\n")
    )
    await pods.config.wait_synced()
    path = f"/flaky/{uuid.uuid4().hex}"

    response = await pods.request(REVIEWS_URL.rstrip("/") + path)

    assert (response.status, response.version) == (200, "v1")
    assert await pods.app_requests("reviews-v1", path) == 2, "the first attempt got 503, exactly one retry succeeded"


async def test_without_retries_the_failure_reaches_the_caller(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", _only_v1("  retries:\n    attempts: 0\n"))
    await pods.config.wait_synced()
    path = f"/flaky/{uuid.uuid4().hex}"

    response = await pods.request(REVIEWS_URL.rstrip("/") + path)

    assert response.status == 503
    assert await pods.app_requests("reviews-v1", path) == 1


async def test_route_timeout_answers_504(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", _only_v1("  timeout: 0.3s\n"))
    await pods.config.wait_synced()

    slow = await pods.request(f"{REVIEWS_URL}delay/3000")
    fast = await pods.request(f"{REVIEWS_URL}delay/10")

    assert slow.status == 504
    assert "upstream request timeout" in slow.text
    assert fast.status == 200


async def test_injected_abort_answers_the_configured_status(pods: PodMesh) -> None:
    await pods.config.apply(
        "reviews-vs", _only_v1("  fault:\n    abort:\n      httpStatus: 503\n      percentage:\n        value: 100\n")
    )
    await pods.config.wait_synced()
    path = f"/aborted/{uuid.uuid4().hex}"

    responses = await pods.responses(REVIEWS_URL.rstrip("/") + path, 20, concurrency=4)

    assert [r.status for r in responses] == [503] * 20
    assert all("fault filter abort" in r.text for r in responses)
    assert await pods.app_requests("reviews-v1", path) == 0, "aborted requests never reach the app"


async def test_injected_delay_holds_requests_back(pods: PodMesh) -> None:
    await pods.config.apply(
        "reviews-vs",
        _only_v1("  fault:\n    delay:\n      fixedDelay: 0.6s\n      percentage:\n        value: 100\n"),
    )
    await pods.config.wait_synced()

    started = time.monotonic()
    response = await pods.request(REVIEWS_URL)
    elapsed = time.monotonic() - started

    assert (response.status, response.version) == (200, "v1")
    assert elapsed >= 0.6, f"answered after {elapsed:.3f}s, before the injected 0.6s delay"


async def test_retries_back_off_between_attempts(pods: PodMesh) -> None:
    """``backoff: 1s``: Envoy waits a random time under 1s before the first retry and under 3s before the second
    (fully jittered, base interval 1s), instead of its default 25ms; a flaky upstream still recovers."""
    await pods.config.apply(
        "reviews-vs",
        _only_v1(
            "  retries:\n    attempts: 2\n    retryOn: 5xx\n    backoff: 1s\n    retryIgnorePreviousHosts: false\n"
        ),
    )
    await pods.config.wait_synced()
    flaky = f"/flaky/{uuid.uuid4().hex}"
    failing = f"/status/503?run={uuid.uuid4().hex}"

    recovered = await pods.request(REVIEWS_URL.rstrip("/") + flaky)
    started = time.monotonic()
    exhausted = await pods.responses(REVIEWS_URL.rstrip("/") + failing, 3)
    elapsed = time.monotonic() - started

    assert (recovered.status, recovered.version) == (200, "v1")
    assert await pods.app_requests("reviews-v1", flaky) == 2, "the first attempt got 503, one retry succeeded"
    assert [r.status for r in exhausted] == [503] * 3
    assert await pods.app_requests("reviews-v1", failing) == 9, "every request tried three times"
    # Six back-offs, each uniform in [0, 1s) or [0, 3s): under 1.5s together about once in 50000 runs; with
    # Envoy's default 25ms base interval they take under 0.3s (0.07s seen with backoff: 1ms).
    assert elapsed >= 1.5, f"3 requests with 2 retries each took {elapsed:.2f}s: no back-off between attempts"
