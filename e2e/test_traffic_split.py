"""Weighted routing between subsets, measured with real requests of an unmodified app: plain ``urllib`` in the
productpage pod (no proxy settings) calls ``http://reviews:9080/``; the name resolves through the pod's DNS agent to
the service's VIP, iptables sends the connection to the sidecar's virtualOutbound (15001), the ``0.0.0.0_9080``
listener's route picks a reviews pod, whose capture hands it to virtualInbound (15006) and its app. Real Pilot,
Envoy, iptables and network namespaces; one world of pods per module (``pods``, ``delta_pods`` in e2e/conftest.py),
reset after each test."""

from __future__ import annotations

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import REVIEWS_URL, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import weighted_reviews
from e2e.traffic import binomial_bounds, count_by

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

REQUESTS = 600
CONCURRENCY = 8  # requests in flight, as many apps do (and ~3x faster than one at a time here)


async def test_all_traffic_goes_to_the_single_weighted_subset(any_mode_pods: PodMesh) -> None:
    await any_mode_pods.config.apply("reviews-vs", weighted_reviews(v1=100))
    await any_mode_pods.config.wait_synced()

    responses = await any_mode_pods.responses(REVIEWS_URL, 100, concurrency=CONCURRENCY)

    assert [r.status for r in responses] == [200] * 100
    assert count_by(responses) == {"v1": 100}


async def test_90_10_split_is_within_binomial_tolerance(any_mode_pods: PodMesh) -> None:
    await any_mode_pods.config.apply("reviews-vs", weighted_reviews(v1=90, v2=10))
    await any_mode_pods.config.wait_synced()

    responses = await any_mode_pods.responses(REVIEWS_URL, REQUESTS, concurrency=CONCURRENCY)

    assert all(r.status == 200 for r in responses), [r.text for r in responses if r.status != 200][:5]
    counts = count_by(responses)
    assert set(counts) <= {"v1", "v2"}, counts
    low, high = binomial_bounds(REQUESTS, 0.10)
    assert low <= counts["v2"] <= high, f"v2 got {counts['v2']} of {REQUESTS}, expected {low:.0f}..{high:.0f}"


@pytest.mark.parametrize(
    "url",
    [
        "http://reviews:9080/",
        "http://reviews.default:9080/",
        "http://reviews.default.svc:9080/",
        "http://reviews.default.svc.cluster.local:9080/",
    ],
    ids=["short", "name.ns", "name.ns.svc", "fqdn"],
)
async def test_short_and_qualified_host_names_reach_the_same_service(pods: PodMesh, url: str) -> None:
    await pods.config.apply("reviews-vs", weighted_reviews(v3=100))
    await pods.config.wait_synced()

    responses = await pods.responses(url, 3)

    assert [(r.status, r.version) for r in responses] == [(200, "v3")] * 3, [r.text for r in responses]


async def test_host_without_virtual_service_gets_a_default_route_to_every_endpoint(pods: PodMesh) -> None:
    responses = await pods.responses(REVIEWS_URL, 60, concurrency=CONCURRENCY)

    assert all(r.status == 200 for r in responses), [r.text for r in responses if r.status != 200][:5]
    assert set(count_by(responses)) == {"v1", "v2", "v3"}


async def test_a_name_outside_the_registry_and_upstream_dns_does_not_resolve(pods: PodMesh) -> None:
    [response] = await pods.responses("http://ratings:9080/")

    assert response.status == 0
    assert "Name or service not known" in response.text or "No address associated" in response.text, response.text
