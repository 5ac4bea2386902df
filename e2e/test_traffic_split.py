"""Weighted routing between subsets, measured with real requests through real Envoy sidecars."""

from __future__ import annotations

from e2e.harness import LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_URL
from e2e.rules import weighted_reviews
from e2e.traffic import binomial_bounds, count_by

REQUESTS = 600


async def test_all_traffic_goes_to_the_single_weighted_subset(any_mode_demo_mesh: LocalMesh) -> None:
    mesh = any_mode_demo_mesh
    await mesh.apply("reviews-vs", weighted_reviews(v1=100))
    await mesh.wait_synced()

    responses = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 100)

    assert [r.status for r in responses] == [200] * 100
    assert count_by(responses) == {"v1": 100}


async def test_90_10_split_is_within_binomial_tolerance(any_mode_demo_mesh: LocalMesh) -> None:
    mesh = any_mode_demo_mesh
    await mesh.apply("reviews-vs", weighted_reviews(v1=90, v2=10))
    await mesh.wait_synced()

    responses = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, REQUESTS, concurrency=16)

    assert all(r.status == 200 for r in responses), [r.status for r in responses if r.status != 200][:5]
    counts = count_by(responses)
    assert set(counts) <= {"v1", "v2"}, counts
    low, high = binomial_bounds(REQUESTS, 0.10)
    assert low <= counts["v2"] <= high, f"v2 got {counts['v2']} of {REQUESTS}, expected {low:.0f}..{high:.0f}"


async def test_short_and_qualified_host_names_reach_the_same_service(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", weighted_reviews(v3=100))
    await demo_mesh.wait_synced()

    for url in (
        "http://reviews:9080/",
        "http://reviews.default:9080/",
        "http://reviews.default.svc:9080/",
        "http://reviews.default.svc.cluster.local:9080/",
    ):
        response = await demo_mesh.request(DEMO_CLIENT.name, url)
        assert (response.status, response.version) == (200, "v3"), url


async def test_host_without_virtual_service_gets_a_default_route_to_every_endpoint(demo_mesh: LocalMesh) -> None:
    responses = await demo_mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 60)

    assert all(r.status == 200 for r in responses)
    assert set(count_by(responses)) == {"v1", "v2", "v3"}


async def test_unknown_host_is_not_routed(demo_mesh: LocalMesh) -> None:
    response = await demo_mesh.request(DEMO_CLIENT.name, "http://ratings:9080/")

    assert response.status == 404
