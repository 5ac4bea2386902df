"""Live rule changes, invalid rules, and Pilot going away, all while an unmodified app in a pod (plain ``urllib``,
no proxy settings) keeps calling ``http://reviews:9080/``. One world of pods per module (``pods``, ``delta_pods`` in
e2e/conftest.py), reset after each test."""

from __future__ import annotations

import asyncio

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import REVIEWS_URL, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import reviews_virtual_service, weighted_reviews
from e2e.traffic import MeshResponse, count_by

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]


async def _traffic_until(mesh: PodMesh, stop: asyncio.Event) -> list[MeshResponse]:
    responses: list[MeshResponse] = []
    while not stop.is_set():
        responses.extend(await mesh.responses(REVIEWS_URL, 8, concurrency=4))
    return responses


async def test_live_rule_changes_lose_no_request(any_mode_pods: PodMesh) -> None:
    mesh = any_mode_pods
    await mesh.config.apply("reviews-vs", weighted_reviews(v1=100))
    await mesh.config.wait_synced()
    stop = asyncio.Event()
    traffic = asyncio.create_task(_traffic_until(mesh, stop))

    for step in ({"v2": 100}, {"v1": 50, "v3": 50}, {"v3": 100}, {"v1": 100}):
        await mesh.config.apply("reviews-vs", weighted_reviews(**step))
        await mesh.config.wait_synced()
        await asyncio.sleep(0.5)
    stop.set()
    responses = await traffic

    failed = [(r.status, r.text[:80]) for r in responses if r.status != 200]
    assert not failed, f"{len(failed)} of {len(responses)} requests failed during the changes: {failed[:5]}"
    assert set(count_by(responses)) == {"v1", "v2", "v3"}, "every step's routing was seen"


async def test_invalid_rule_is_rejected_and_previous_routing_keeps_serving(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", weighted_reviews(v2=100))
    await pods.config.wait_synced()

    path = await pods.config.apply("reviews-vs", weighted_reviews(v1=80, v3=10))  # sums to 90
    configz = await pods.config.wait_synced()

    rejected = {(r["kind"], r["name"]): r for r in configz["rejected"]}
    assert ("VirtualService", "reviews") in rejected, configz
    errors = " ".join(rejected[("VirtualService", "reviews")]["errors"])
    assert str(path) in errors and "spec.http[0].route" in errors and "100" in errors, errors
    assert rejected[("VirtualService", "reviews")]["in_force"], "the last good version stays in force"
    assert count_by(await pods.responses(REVIEWS_URL, 30, concurrency=4)) == {"v2": 30}

    await pods.config.apply("reviews-vs", weighted_reviews(v1=90, v3=10))  # fixed
    configz = await pods.config.wait_synced()
    assert not configz["rejected"]
    counts = count_by(await pods.responses(REVIEWS_URL, 30, concurrency=4))
    assert set(counts) <= {"v1", "v3"} and counts["v1"] > 0, counts


async def test_rule_referencing_a_missing_subset_is_rejected(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", weighted_reviews(v1=100))
    await pods.config.wait_synced()

    await pods.config.apply(
        "reviews-vs", reviews_virtual_service("- route:\n  - destination: {host: reviews, subset: v9}\n")
    )
    configz = await pods.config.wait_synced()

    errors = " ".join(e for r in configz["rejected"] for e in r["errors"])
    assert "v9" in errors, configz["rejected"]
    assert count_by(await pods.responses(REVIEWS_URL, 10)) == {"v1": 10}


async def test_envoy_keeps_serving_while_pilot_restarts_and_then_reconnects(any_mode_pods: PodMesh) -> None:
    mesh = any_mode_pods
    await mesh.config.apply("reviews-vs", weighted_reviews(v2=100))
    await mesh.config.wait_synced()

    await mesh.pilot.stop()
    during = await mesh.responses(REVIEWS_URL, 40, concurrency=4)
    assert count_by(during) == {"v2": 40}, "sidecars keep their last config (and the agents their names)"

    await mesh.pilot.start()
    await mesh.config.wait_synced(timeout=30)  # every sidecar reconnected and ACKed the new Pilot's state
    assert count_by(await mesh.responses(REVIEWS_URL, 20, concurrency=4)) == {"v2": 20}

    await mesh.config.apply("reviews-vs", weighted_reviews(v3=100))
    await mesh.config.wait_synced()
    changed = await mesh.responses(REVIEWS_URL, 20, concurrency=4)
    assert count_by(changed) == {"v3": 20}, "the reconnected sidecars take new rules"
