"""Weighted routing between subsets, measured with real requests of an unmodified app: plain ``urllib`` in the
productpage pod (no proxy settings) calls ``http://reviews:9080/``; the name resolves through the pod's DNS agent to
the service's VIP, iptables sends the connection to the sidecar's virtualOutbound (15001), the ``0.0.0.0_9080``
listener's route picks a reviews pod, whose capture hands it to virtualInbound (15006) and its app. And the names
such an app resolves (``getaddrinfo`` in the pod, its UDP 53 captured to the sidecar's DNS agent): the service's
names to its VIP, and a ServiceEntry's host following the config directory within seconds (address changed, host
added, renamed, removed: then forwarded to the upstream resolver, which answers or says NXDOMAIN). Real Pilot,
Envoy, iptables and network namespaces; one world of pods per module (``pods``, ``delta_pods`` in e2e/conftest.py),
reset after each test."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Sequence

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import OUTSIDE_NAME, REVIEWS_URL, PodMesh
from e2e.pods import envoy_stat, pod_get, pod_resolve, why_pods_cannot_run
from e2e.rules import weighted_reviews
from e2e.traffic import binomial_bounds, count_by
from pilot.model.vips import AUTO_VIP_NETWORK

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


@pytest.mark.parametrize("host", ["reviews", "reviews:8080", "reviews.default.svc.cluster.local:443"])
async def test_the_host_headers_port_does_not_choose_the_virtual_host(pods: PodMesh, host: str) -> None:
    """Istio's sidecar route tables ignore the Host header's port (``ignore_port_in_host_matching``; the listener
    has chosen the port already): a client that writes another port, or none, still gets the service's routes."""
    await pods.config.apply("reviews-vs", weighted_reviews(v3=100))
    await pods.config.wait_synced()

    responses = await pods.responses(REVIEWS_URL, 2, headers={"Host": host})

    assert [(r.status, r.version) for r in responses] == [(200, "v3")] * 2, [r.text for r in responses]


async def test_host_without_virtual_service_gets_a_default_route_to_every_endpoint(pods: PodMesh) -> None:
    responses = await pods.responses(REVIEWS_URL, 60, concurrency=CONCURRENCY)

    assert all(r.status == 200 for r in responses), [r.text for r in responses if r.status != 200][:5]
    assert set(count_by(responses)) == {"v1", "v2", "v3"}


async def test_a_name_outside_the_registry_and_upstream_dns_does_not_resolve(pods: PodMesh) -> None:
    [response] = await pods.responses("http://ratings:9080/")

    assert response.status == 0
    assert "Name or service not known" in response.text or "No address associated" in response.text, response.text


async def test_the_services_names_resolve_to_its_vip_inside_the_pod(pods: PodMesh) -> None:
    names = ["reviews", "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local"]

    answers = await asyncio.to_thread(pod_resolve, pods.client, names)

    vips = answers["reviews"]
    assert isinstance(vips, list) and len(vips) == 1, answers
    assert ipaddress.ip_address(vips[0]) in AUTO_VIP_NETWORK, answers  # no addresses in the ServiceEntry: allocated
    assert answers == {name: vips for name in names}


NAME_CHANGE_SECONDS = 5.0  # from the config file written to the pod's changed answer
NOT_FOUND = "EAI_NONAME"  # getaddrinfo's answer to NXDOMAIN: the upstream resolver does not know the name
UPSTREAMS_ANSWER = "the upstream resolver's answer"  # ``outside.example``'s address in the test world's DNS


def external_service(hosts: Sequence[str], addresses: Sequence[str]) -> str:
    """A ServiceEntry ``database`` for ``hosts`` with these VIPs (``resolution: NONE``: the app's destination is
    kept, as for a database outside the mesh)."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: database
  namespace: default
spec:
  hosts: [{", ".join(hosts)}]
  addresses: [{", ".join(addresses)}]
  location: MESH_EXTERNAL
  ports: [{{number: 5432, name: tcp-postgres, protocol: TCP}}]
  resolution: NONE
"""


DB = "db.example.internal"


async def resolved_within(pods: PodMesh, expected: dict[str, list[str] | str], seconds: float) -> float:
    """Resolve the names inside the client pod until it answers ``expected``, within ``seconds``: how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    names = list(expected)
    while (answers := await asyncio.to_thread(pod_resolve, pods.client, names)) != expected:
        assert loop.time() - start < seconds, f"after {seconds:g}s the pod answers {answers}, not {expected}"
        await asyncio.sleep(0.1)
    return loop.time() - start


@pytest.mark.parametrize(
    ("before", "after", "answers"),
    [
        (
            external_service([DB], ["192.0.2.10"]),
            external_service([DB], ["192.0.2.20"]),
            {DB: (["192.0.2.10"], ["192.0.2.20"])},
        ),
        (
            external_service([DB], ["192.0.2.10"]),
            external_service([DB, "cache.example.internal"], ["192.0.2.10"]),
            {DB: (["192.0.2.10"], ["192.0.2.10"]), "cache.example.internal": (NOT_FOUND, ["192.0.2.10"])},
        ),
        (
            external_service([DB], ["192.0.2.10"]),
            external_service(["database.example.internal"], ["192.0.2.10"]),
            {DB: (["192.0.2.10"], NOT_FOUND), "database.example.internal": (NOT_FOUND, ["192.0.2.10"])},
        ),
        (external_service([DB], ["192.0.2.10"]), None, {DB: (["192.0.2.10"], NOT_FOUND)}),
        (
            external_service([OUTSIDE_NAME], ["192.0.2.10"]),
            None,
            {OUTSIDE_NAME: (["192.0.2.10"], UPSTREAMS_ANSWER)},
        ),
    ],
    ids=[
        "address-changed",
        "host-added",
        "host-renamed",
        "removed-name-nxdomain-upstream",
        "removed-name-forwarded-upstream",
    ],
)
async def test_a_name_change_in_config_reaches_the_pods_answers_within_seconds(
    pods: PodMesh,
    before: str,
    after: str | None,
    answers: dict[str, tuple[list[str] | str, list[str] | str]],
) -> None:
    def expected(index: int) -> dict[str, list[str] | str]:
        upstream = [pods.addresses["outside"]]
        return {name: upstream if pair[index] == UPSTREAMS_ANSWER else pair[index] for name, pair in answers.items()}

    await pods.config.apply("database", before)
    await pods.config.wait_synced()
    await resolved_within(pods, expected(0), NAME_CHANGE_SECONDS)

    if after is None:
        await pods.config.remove("database")
    else:
        await pods.config.apply("database", after)
    seconds = await resolved_within(pods, expected(1), NAME_CHANGE_SECONDS)
    await pods.config.wait_synced()  # and the sidecars have it too, before the next test

    assert seconds < NAME_CHANGE_SECONDS


async def test_a_delta_sidecar_takes_a_route_change_as_one_virtual_host_over_vhds(delta_pods: PodMesh) -> None:
    """Delta sidecars get their route tables over VHDS (Pilot's default): the table ``9080`` has no virtual hosts of
    its own and Envoy assembles them from ``9080/<host>`` resources; a VirtualService change reaches Envoy as a VHDS
    update, the table itself is not sent again, and traffic follows it."""
    pod = delta_pods.pod("productpage")
    table_updates = "http.outbound_0.0.0.0_9080.rds.9080.update_success"
    host_updates = "http.outbound_0.0.0.0_9080.rds.vhds.9080.update_success"
    await delta_pods.config.apply("reviews-vs", weighted_reviews(v1=100))
    await delta_pods.config.wait_synced()
    tables_before = await asyncio.to_thread(envoy_stat, pod, table_updates)
    hosts_before = await asyncio.to_thread(envoy_stat, pod, host_updates)

    await delta_pods.config.apply("reviews-vs", weighted_reviews(v2=100))
    await delta_pods.config.wait_synced()

    assert count_by(await delta_pods.responses(REVIEWS_URL, 20, concurrency=4)) == {"v2": 20}
    assert await asyncio.to_thread(envoy_stat, pod, host_updates) > hosts_before
    assert await asyncio.to_thread(envoy_stat, pod, table_updates) == tables_before, "the table was not resent"
    url = "http://127.0.0.1:15000/config_dump?resource=dynamic_route_configs"
    [(status, body)] = await asyncio.to_thread(pod_get, pod, url)
    assert status == 200, body
    [table] = [c["route_config"] for c in json.loads(body)["configs"] if c["route_config"]["name"] == "9080"]
    assert "vhds" in table
    hosts = [host["name"] for host in table["virtual_hosts"]]
    assert "9080/reviews.default.svc.cluster.local:9080" in hosts, hosts
    assert all(name.startswith("9080/") for name in hosts), hosts
