"""Live rule changes, invalid rules, and Pilot going away, all while real traffic flows."""

from __future__ import annotations

import asyncio

from e2e.harness import LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_URL
from e2e.rules import reviews_virtual_service, weighted_reviews
from e2e.traffic import MeshResponse, count_by


async def _traffic_until(mesh: LocalMesh, stop: asyncio.Event) -> list[MeshResponse]:
    responses: list[MeshResponse] = []
    while not stop.is_set():
        responses.extend(await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 4, concurrency=4))
    return responses


async def test_live_rule_changes_lose_no_request(any_mode_demo_mesh: LocalMesh) -> None:
    mesh = any_mode_demo_mesh
    await mesh.apply("reviews-vs", weighted_reviews(v1=100))
    await mesh.wait_synced()
    stop = asyncio.Event()
    traffic = asyncio.create_task(_traffic_until(mesh, stop))

    for step in ({"v2": 100}, {"v1": 50, "v3": 50}, {"v3": 100}, {"v1": 100}):
        await mesh.apply("reviews-vs", weighted_reviews(**step))
        await mesh.wait_synced()
        await asyncio.sleep(0.3)
    stop.set()
    responses = await traffic

    failed = [(r.status, r.text[:80]) for r in responses if r.status != 200]
    assert not failed, f"{len(failed)} of {len(responses)} requests failed during the changes: {failed[:5]}"
    assert set(count_by(responses)) == {"v1", "v2", "v3"}, "every step's routing was seen"


async def test_invalid_rule_is_rejected_and_previous_routing_keeps_serving(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", weighted_reviews(v2=100))
    await demo_mesh.wait_synced()

    path = await demo_mesh.apply("reviews-vs", weighted_reviews(v1=80, v3=10))  # sums to 90
    configz = await demo_mesh.wait_synced()

    rejected = {(r["kind"], r["name"]): r for r in configz["rejected"]}
    assert ("VirtualService", "reviews") in rejected, configz
    errors = " ".join(rejected[("VirtualService", "reviews")]["errors"])
    assert str(path) in errors and "spec.http[0].route" in errors and "100" in errors, errors
    assert rejected[("VirtualService", "reviews")]["in_force"], "the last good version stays in force"
    responses = await demo_mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 30)
    assert count_by(responses) == {"v2": 30}

    await demo_mesh.apply("reviews-vs", weighted_reviews(v1=90, v3=10))  # fixed
    configz = await demo_mesh.wait_synced()
    assert not configz["rejected"]
    responses = await demo_mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 30)
    assert set(count_by(responses)) <= {"v1", "v3"} and count_by(responses)["v1"] > 0


async def test_rule_referencing_a_missing_subset_is_rejected(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", weighted_reviews(v1=100))
    await demo_mesh.wait_synced()

    await demo_mesh.apply(
        "reviews-vs", reviews_virtual_service("- route:\n  - destination: {host: reviews, subset: v9}\n")
    )
    configz = await demo_mesh.wait_synced()

    errors = " ".join(e for r in configz["rejected"] for e in r["errors"])
    assert "v9" in errors, configz["rejected"]
    responses = await demo_mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 10)
    assert count_by(responses) == {"v1": 10}


async def test_envoy_keeps_serving_while_pilot_restarts_and_then_reconnects(any_mode_demo_mesh: LocalMesh) -> None:
    mesh = any_mode_demo_mesh
    await mesh.apply("reviews-vs", weighted_reviews(v2=100))
    await mesh.wait_synced()

    await mesh.pilot.stop()
    during = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 40)
    assert count_by(during) == {"v2": 40}, "sidecars keep their last config while Pilot is down"

    await mesh.pilot.start()
    await mesh.wait_synced(timeout=30)  # every sidecar reconnected and ACKed the new Pilot's state
    after = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 20)
    assert count_by(after) == {"v2": 20}

    await mesh.apply("reviews-vs", weighted_reviews(v3=100))
    await mesh.wait_synced()
    changed = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 20)
    assert count_by(changed) == {"v3": 20}, "the reconnected sidecars take new rules"
