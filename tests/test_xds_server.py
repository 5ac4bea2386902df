"""State-of-the-world ADS over real gRPC: an in-process grpc.aio server and real client streams."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse

from meshplane import names
from pilot.config.types import ConfigKey
from pilot.config.types import Resource as ConfigResource
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import KUBERNETES_PROVIDER, SERVICE_ENTRIES, ProxyNode, RegistryState, parse_node_id
from pilot.xds import DiscoveryServer
from tests.source_builders import registry
from tests.xds_fakes import (
    DEFAULT_ROUTES,
    PRODUCTPAGE,
    REVIEWS_CLUSTER,
    REVIEWS_V1,
    REVIEWS_V1_CLUSTER,
    REVIEWS_V2_CLUSTER,
    WAIT,
    AdsStream,
    bookinfo,
    configs_of,
    fake_generators,
    resource_names,
    service_entry,
    unpack_route,
    wait_until,
    workload_entry,
)

PRODUCTPAGE_CLUSTER = names.outbound_cluster_name(9080, "", "productpage.default.svc.cluster.local")


async def _sync(stream: AdsStream, node: str, eds: list[str], rds: list[str]) -> dict[str, DiscoveryResponse]:
    """The Envoy start-up sequence: CDS, EDS, LDS, RDS requests, each response ACKed."""
    responses: dict[str, DiscoveryResponse] = {}
    for type_url, subscribed in ((CLUSTER_TYPE, []), (ENDPOINT_TYPE, eds), (LISTENER_TYPE, []), (ROUTE_TYPE, rds)):
        await stream.request(type_url, subscribed, node=node if type_url == CLUSTER_TYPE else None)
        response = await stream.recv()
        assert response.type_url == type_url
        await stream.ack(response, subscribed)
        responses[type_url] = response
    return responses


def _proxy(server: DiscoveryServer, node: str) -> dict[str, Any]:
    [proxy] = [p for p in server.syncz()["proxies"] if p["id"] == node]
    assert isinstance(proxy, dict)
    return proxy


async def test_initial_state_wildcard_and_named(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel)
    got = await _sync(
        stream, PRODUCTPAGE, eds=[REVIEWS_V1_CLUSTER, "outbound|1||nope"], rds=[DEFAULT_ROUTES, "inbound|9080||"]
    )
    assert sorted(_names(got[CLUSTER_TYPE])) == sorted(
        [REVIEWS_CLUSTER, REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER, PRODUCTPAGE_CLUSTER, "inbound|9080||"]
    )
    assert _names(got[ENDPOINT_TYPE]) == [REVIEWS_V1_CLUSTER]  # the requested names that exist
    assert sorted(_names(got[LISTENER_TYPE])) == ["virtualInbound_127.0.0.21_9080", "virtualOutbound"]
    assert sorted(_names(got[ROUTE_TYPE])) == [DEFAULT_ROUTES, "inbound|9080||"]
    assert unpack_route(got[ROUTE_TYPE], DEFAULT_ROUTES).virtual_hosts[1].routes[0].route.cluster == REVIEWS_V1_CLUSTER
    nonces = [r.nonce for r in got.values()]
    assert len(set(nonces)) == 4 and all(nonces)
    assert all(r.control_plane.identifier == "meshplane-pilot" for r in got.values())


async def test_acks_are_recorded_in_syncz(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel)
    got = await _sync(stream, PRODUCTPAGE, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    await wait_until(lambda: bool(_proxy(xds_server, PRODUCTPAGE)["synced"]))
    proxy = _proxy(xds_server, PRODUCTPAGE)
    assert (proxy["workload"], proxy["namespace"], proxy["address"], proxy["mode"]) == (
        "productpage-v1",
        "default",
        "127.0.0.21",
        "sotw",
    )
    types = proxy["types"]
    assert list(types) == ["cds", "eds", "lds", "rds"]
    cds = types["cds"]
    assert cds["sent"] == cds["acked"] == got[CLUSTER_TYPE].version_info
    assert cds["nonce_sent"] == cds["nonce_acked"] == got[CLUSTER_TYPE].nonce
    assert cds["last_nack"] is None and cds["resources"] == 5
    assert xds_server.syncz()["snapshot_version"] == 1


async def test_nack_is_recorded_and_not_resent(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel)
    await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
    first = await stream.recv()
    await stream.request(CLUSTER_TYPE, version="", nonce=first.nonce, error="cluster rejected: bad timeout")
    await wait_until(lambda: _proxy(xds_server, PRODUCTPAGE)["types"]["cds"]["last_nack"] is not None)
    nack = _proxy(xds_server, PRODUCTPAGE)["types"]["cds"]["last_nack"]
    assert nack["version"] == first.version_info and nack["error"] == "cluster rejected: bad timeout"
    assert b'pilot_total_xds_rejects_total{type="cds"} 1.0' in xds_server.metrics.exposition()
    await stream.assert_silent()  # the rejected config is not sent again...
    xds_server.update_config(configs_of(*bookinfo().values(), service_entry("ratings")), 2)
    pushed = await stream.recv()  # ...the next change is
    assert pushed.type_url == CLUSTER_TYPE and pushed.version_info != first.version_info
    assert names.outbound_cluster_name(9080, "", "ratings.default.svc.cluster.local") in _names(pushed)


async def test_stale_nonce_is_ignored(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel)
    got = await _sync(stream, PRODUCTPAGE, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    eds = got[ENDPOINT_TYPE]
    await stream.request(ENDPOINT_TYPE, [REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER], version=eds.version_info, nonce="x-1")
    await stream.assert_silent()
    assert _proxy(xds_server, PRODUCTPAGE)["types"]["eds"]["nonce_acked"] == eds.nonce
    # The same subscription with the current nonce is answered.
    await stream.request(
        ENDPOINT_TYPE, [REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER], version=eds.version_info, nonce=eds.nonce
    )
    assert sorted(_names(await stream.recv())) == [REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER]


async def test_change_pushes_changed_types_in_order_only_where_changed(
    ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    productpage, reviews = AdsStream(ads_channel), AdsStream(ads_channel)
    await _sync(productpage, PRODUCTPAGE, eds=[REVIEWS_V1_CLUSTER, PRODUCTPAGE_CLUSTER], rds=[DEFAULT_ROUTES])
    await _sync(reviews, REVIEWS_V1, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    # productpage moves to .22 (its EDS and LDS change) and a ratings service appears (CDS and RDS change).
    moved = configs_of(
        *bookinfo().values(), workload_entry("productpage", "v1", "127.0.0.22"), service_entry("ratings")
    )
    xds_server.update_config(moved, 2)
    subscribed = {ENDPOINT_TYPE: [REVIEWS_V1_CLUSTER, PRODUCTPAGE_CLUSTER], ROUTE_TYPE: [DEFAULT_ROUTES]}
    pushed = []
    for _ in range(4):
        response = await productpage.recv()
        pushed.append(response)
        await productpage.ack(response, subscribed.get(response.type_url, []))
    assert [r.type_url for r in pushed] == [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]
    assert _names(pushed[1]) == [PRODUCTPAGE_CLUSTER]  # EDS: only the changed subscribed name
    # reviews-v1 watches neither productpage's endpoints nor its listeners: CDS and RDS only.
    assert [(await reviews.recv()).type_url, (await reviews.recv()).type_url] == [CLUSTER_TYPE, ROUTE_TYPE]
    await reviews.assert_silent()
    # A change to productpage alone reaches productpage alone.
    xds_server.update_config(configs_of(*moved.values(), workload_entry("productpage", "v1", "127.0.0.23")), 3)
    assert [(await productpage.recv()).type_url, (await productpage.recv()).type_url] == [ENDPOINT_TYPE, LISTENER_TYPE]
    await reviews.assert_silent()


async def test_eds_subscribe_and_unsubscribe(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel)
    got = await _sync(stream, PRODUCTPAGE, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    eds = got[ENDPOINT_TYPE]
    await stream.ack(eds, [REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER])  # subscribe v2: the full subscribed set comes
    both = await stream.recv()
    assert sorted(_names(both)) == [REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER]
    await stream.ack(both, [REVIEWS_V2_CLUSTER])  # unsubscribe v1: nothing to send
    await stream.assert_silent()
    # A second v1 endpoint changes only clusters this proxy no longer watches.
    more_v1 = configs_of(*bookinfo().values(), workload_entry("reviews", "v1", "127.0.0.13", name="reviews-v1b"))
    xds_server.update_config(more_v1, 2)
    await wait_until(lambda: xds_server.syncz()["snapshot_version"] == 2)
    await stream.assert_silent()
    await stream.ack(both, [REVIEWS_V2_CLUSTER, REVIEWS_V1_CLUSTER])  # subscribe v1 again: current endpoints
    again = await stream.recv()
    assert sorted(_names(again)) == [REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER]


async def test_reconnect_gets_full_state(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    first = AdsStream(ads_channel)
    got = await _sync(first, PRODUCTPAGE, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    await first.close()
    second = AdsStream(ads_channel)
    cds = got[CLUSTER_TYPE]
    await second.request(CLUSTER_TYPE, node=PRODUCTPAGE, version=cds.version_info, nonce=cds.nonce)
    again = await second.recv()
    assert again.version_info == cds.version_info and sorted(_names(again)) == sorted(_names(cds))
    # A nonce names one response content in the process (``xdscore.payload.PayloadMemo``): the same response again,
    # remembered, has the same nonce, so the kept one can only ACK or NACK what it names.
    assert again.nonce == cds.nonce and again.SerializeToString() == cds.SerializeToString()


async def test_a_push_is_one_response_for_every_stream(
    ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    streams = [AdsStream(ads_channel) for _ in range(2)]
    for stream, node in zip(streams, (PRODUCTPAGE, REVIEWS_V1), strict=True):
        await _sync(stream, node, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    xds_server.update_config(bookinfo("v2"), 2)
    pushed = [await stream.recv() for stream in streams]
    assert all(p.type_url == ROUTE_TYPE for p in pushed)
    assert pushed[0].SerializeToString() == pushed[1].SerializeToString(), "the same bytes, nonce included"
    assert unpack_route(pushed[1], DEFAULT_ROUTES).virtual_hosts[1].routes[0].route.cluster == REVIEWS_V2_CLUSTER
    for stream, response in zip(streams, pushed, strict=True):  # each stream ACKs it with the shared nonce
        await stream.request(ROUTE_TYPE, names=[DEFAULT_ROUTES], version=response.version_info, nonce=response.nonce)
    for stream in streams:
        await stream.assert_silent()
    routes = [proxy["types"]["rds"] for proxy in xds_server.syncz()["proxies"]]
    assert [(r["acked"], r["nonce_acked"]) for r in routes] == [(pushed[0].version_info, pushed[0].nonce)] * 2


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("", "must carry node.id"),
        ("envoy-1", "is not Istio's form"),
        ("gateway~127.0.0.1~a.default~default.svc.cluster.local", "proxy type must be 'sidecar' or 'router'"),
    ],
    ids=["missing", "not-istio-form", "unknown-proxy-type"],
)
async def test_bad_node_id_is_rejected(ads_channel: grpc.aio.Channel, node: str, message: str) -> None:
    stream = AdsStream(ads_channel)
    await stream.request(CLUSTER_TYPE, node=node)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stream.recv()
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.value.details() or "")


async def test_streams_share_the_same_bytes(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    for node in (PRODUCTPAGE, REVIEWS_V1):
        await _sync(AdsStream(ads_channel), node, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    cache = xds_server.cache
    assert cache is not None
    a, b = (cache.resources_for(CLUSTER_TYPE, cache.proxy(_node(n))) for n in (PRODUCTPAGE, REVIEWS_V1))
    assert a[REVIEWS_CLUSTER] is b[REVIEWS_CLUSTER]
    assert a[REVIEWS_CLUSTER].any_bytes is b[REVIEWS_CLUSTER].any_bytes
    routes = [cache.view(ROUTE_TYPE, _node(n)) for n in (PRODUCTPAGE, REVIEWS_V1)]
    assert routes[0].sotw_bodies[0] is routes[1].sotw_bodies[0]  # the namespace's route table, concatenated once


async def test_debounce_coalesces_a_burst_into_one_push(
    ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer, xds_calls: Counter[str]
) -> None:
    stream = AdsStream(ads_channel)
    await _sync(stream, PRODUCTPAGE, eds=[REVIEWS_V1_CLUSTER], rds=[DEFAULT_ROUTES])
    builds = xds_calls["rds"]
    for version in range(2, 12):  # ten changes in a burst, alternating, ending with v2
        xds_server.update_config(bookinfo("v2" if version % 2 else "v1"), version)
    pushed = await stream.recv()
    assert pushed.type_url == ROUTE_TYPE
    assert unpack_route(pushed, DEFAULT_ROUTES).virtual_hosts[1].routes[0].route.cluster == REVIEWS_V2_CLUSTER
    await stream.assert_silent()
    assert xds_server.syncz()["snapshot_version"] == 11
    assert xds_calls["rds"] == builds + 1  # one snapshot built for the whole burst


def _names(response: DiscoveryResponse) -> list[str]:
    return resource_names(response)


def _node(node_id: str) -> ProxyNode:
    return parse_node_id(node_id)


async def test_default_server_serves_the_real_generators() -> None:
    """The integrator's call, ``DiscoveryServer()``: the registry's generators, end to end over gRPC."""
    server = DiscoveryServer(debounce=0.01)
    server.update_config(bookinfo(), 1)
    await server.start("127.0.0.1:0")
    try:
        await wait_until(lambda: server.ready)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stream = AdsStream(channel)
            await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
            cds = await stream.recv()
            eds_names = sorted(
                c.eds_cluster_config.service_name or c.name for c in _unpack(cds, Cluster) if c.type == Cluster.EDS
            )
            assert REVIEWS_V1_CLUSTER in eds_names
            await stream.ack(cds)
            await stream.request(ENDPOINT_TYPE, eds_names)
            eds = await stream.recv()
            assert sorted(_names(eds)) == eds_names
            await stream.request(LISTENER_TYPE)
            lds = await stream.recv()
            assert {"virtualOutbound", "0.0.0.0_9080", "virtualInbound"} <= set(_names(lds))
            await stream.request(ROUTE_TYPE, [DEFAULT_ROUTES])
            assert _names(await stream.recv()) == [DEFAULT_ROUTES]
    finally:
        await server.stop(grace=0)


def _unpack(response: DiscoveryResponse, cls: type[Cluster]) -> list[Cluster]:
    out = []
    for packed in response.resources:
        message = cls()
        packed.Unpack(message)
        out.append(message)
    return out


async def test_requests_before_the_first_snapshot_are_answered_once_it_exists() -> None:
    server = DiscoveryServer(generators=fake_generators(), debounce=0.01)
    await server.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stream = AdsStream(channel)
            await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
            await stream.request(ENDPOINT_TYPE, [REVIEWS_V1_CLUSTER])
            await stream.assert_silent()
            assert not server.ready and server.syncz()["snapshot_version"] == -1
            server.update_config(bookinfo(), 1)
            assert [(await stream.recv()).type_url, (await stream.recv()).type_url] == [CLUSTER_TYPE, ENDPOINT_TYPE]
            assert server.ready
    finally:
        await server.stop(grace=0)
    assert not server.ready
    await server.stop(grace=0)  # idempotent


DETAILS = "details.default.svc.cluster.local"
DETAILS_CLUSTER = names.outbound_cluster_name(9080, "", DETAILS)


class _ChangingRegistry:
    """A registry whose contents change on their own, as a Kubernetes watch's do."""

    name = "kubernetes"
    provider = KUBERNETES_PROVIDER

    def __init__(self) -> None:
        self.contents = RegistryState()

    def state(self, configs: Mapping[ConfigKey, ConfigResource]) -> RegistryState:
        return self.contents


async def test_a_registry_change_is_pushed_to_connected_proxies() -> None:
    """A second service registry beside ServiceEntries: its service appears in CDS once it says it changed."""
    kubernetes = _ChangingRegistry()
    server = DiscoveryServer(debounce=0.01, registries=(SERVICE_ENTRIES, kubernetes))
    server.update_config(bookinfo(), 1)
    await server.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stream = AdsStream(channel)
            await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
            first = await stream.recv()
            assert DETAILS_CLUSTER not in [c.name for c in _unpack(first, Cluster)]
            await stream.ack(first)
            kubernetes.contents = registry("kubernetes", KUBERNETES_PROVIDER, DETAILS, "127.0.0.60").contents
            server.registries_changed()
            pushed = await stream.recv()
            assert pushed.version_info != first.version_info
            assert DETAILS_CLUSTER in [c.name for c in _unpack(pushed, Cluster)]
    finally:
        await server.stop(grace=0)


async def test_new_streams_wait_for_admission_and_are_not_refused() -> None:
    """One stream's burst, a rate that gives no second token during the test: the second stream's requests are not
    read (it waits, counted in ``admission.waiting``) and it is not refused; a stream that closes while waiting
    leaves the queue."""
    server = DiscoveryServer(
        generators=fake_generators(), debounce=0.01, new_streams_per_second=0.001, new_streams_burst=1
    )
    server.update_config(bookinfo(), 1)
    await server.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            first = AdsStream(channel)  # a stream is admitted when its call starts, before its first request
            await first.request(CLUSTER_TYPE, node=PRODUCTPAGE)
            assert (await first.recv()).type_url == CLUSTER_TYPE
            second = AdsStream(channel)
            await second.request(CLUSTER_TYPE, node=PRODUCTPAGE)
            await wait_until(lambda: server.admission.waiting == 1, WAIT)
            await second.assert_silent()
            assert server.admission.waiting == 1  # still waiting, not refused
            second.call.cancel()
            await wait_until(lambda: server.admission.waiting == 0, WAIT)
    finally:
        await server.stop(grace=0)
