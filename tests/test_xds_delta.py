"""Delta (incremental) ADS over real gRPC: only differences are sent, removals are named."""

from __future__ import annotations

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse

from meshplane import names
from pilot.config.types import ConfigKey
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE
from pilot.xds import DiscoveryServer
from tests.xds_fakes import (
    DEFAULT_ROUTES,
    PRODUCTPAGE,
    REVIEWS_CLUSTER,
    REVIEWS_V1_CLUSTER,
    REVIEWS_V2_CLUSTER,
    AdsStream,
    bookinfo,
    configs_of,
    destination_rule,
    resource_names,
    service_entry,
    wait_until,
    workload_entry,
)

RATINGS_CLUSTER = names.outbound_cluster_name(9080, "", "ratings.default.svc.cluster.local")
PRODUCTPAGE_CLUSTER = names.outbound_cluster_name(9080, "", "productpage.default.svc.cluster.local")


async def _ack(stream: AdsStream, response: DeltaDiscoveryResponse) -> None:
    await stream.delta_request(response.type_url, nonce=response.nonce)


def _versions(response: DeltaDiscoveryResponse) -> dict[str, str]:
    return {r.name: r.version for r in response.resources}


def _types(server: DiscoveryServer) -> dict[str, dict[str, object]]:
    [proxy] = server.syncz()["proxies"]
    assert proxy["mode"] == "delta"
    types: dict[str, dict[str, object]] = proxy["types"]
    return types


async def test_initial_delta_state(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel, delta=True)
    await stream.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    cds = await stream.recv()
    assert sorted(_versions(cds)) == sorted(
        [REVIEWS_CLUSTER, REVIEWS_V1_CLUSTER, REVIEWS_V2_CLUSTER, PRODUCTPAGE_CLUSTER, "inbound|9080||"]
    )
    assert resource_names(cds) == list(_versions(cds))  # each Resource's name matches its packed cluster
    assert all(len(version) == 16 for version in _versions(cds).values())
    await _ack(stream, cds)
    await stream.delta_request(ENDPOINT_TYPE, subscribe=[REVIEWS_V1_CLUSTER, "outbound|1||nope"])
    eds = await stream.recv()
    assert list(_versions(eds)) == [REVIEWS_V1_CLUSTER]
    assert list(eds.removed_resources) == ["outbound|1||nope"]  # delta says "does not exist" with a removal
    await _ack(stream, eds)
    await wait_until(lambda: bool(xds_server.syncz()["proxies"][0]["synced"]))
    cds_state = _types(xds_server)["cds"]
    assert cds_state["sent"] == cds_state["acked"] == cds.system_version_info
    assert cds_state["nonce_acked"] == cds.nonce and cds_state["resources"] == 5


async def test_add_update_remove(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel, delta=True)
    await stream.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    await _ack(stream, await stream.recv())
    await stream.delta_request(ENDPOINT_TYPE, subscribe=[REVIEWS_V1_CLUSTER, REVIEWS_CLUSTER])
    before = await stream.recv()
    await _ack(stream, before)
    # v2 subset removed, ratings added, and a second v1 endpoint: reviews' load assignments change.
    configs = configs_of(
        *bookinfo().values(),
        destination_rule("reviews", ("v1",)),
        service_entry("ratings"),
        workload_entry("reviews", "v1", "127.0.0.13", name="reviews-v1b"),
    )
    xds_server.update_config(configs, 2)
    cds = await stream.recv()
    assert cds.type_url == CLUSTER_TYPE
    assert list(_versions(cds)) == [RATINGS_CLUSTER]
    assert list(cds.removed_resources) == [REVIEWS_V2_CLUSTER]
    await _ack(stream, cds)
    eds = await stream.recv()
    assert eds.type_url == ENDPOINT_TYPE
    assert sorted(_versions(eds)) == sorted([REVIEWS_CLUSTER, REVIEWS_V1_CLUSTER])
    assert all(_versions(eds)[n] != _versions(before)[n] for n in _versions(eds))
    assert list(eds.removed_resources) == []
    await _ack(stream, eds)
    # Removing the ratings service removes its cluster, and nothing else is sent.
    configs.pop(ConfigKey(kind="ServiceEntry", namespace="default", name="ratings"))
    xds_server.update_config(configs, 3)
    removal = await stream.recv()
    assert removal.type_url == CLUSTER_TYPE and list(removal.resources) == []
    assert list(removal.removed_resources) == [RATINGS_CLUSTER]
    await stream.assert_silent()


async def test_subscribe_and_unsubscribe(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    stream = AdsStream(ads_channel, delta=True)
    await stream.delta_request(ROUTE_TYPE, node=PRODUCTPAGE, subscribe=[DEFAULT_ROUTES])
    await _ack(stream, await stream.recv())
    await stream.delta_request(ENDPOINT_TYPE, subscribe=[REVIEWS_V1_CLUSTER])
    await _ack(stream, await stream.recv())
    await stream.delta_request(ENDPOINT_TYPE, subscribe=[REVIEWS_V2_CLUSTER])
    added = await stream.recv()
    assert list(_versions(added)) == [REVIEWS_V2_CLUSTER]  # only the new name
    await _ack(stream, added)
    await stream.delta_request(ENDPOINT_TYPE, unsubscribe=[REVIEWS_V1_CLUSTER])
    await stream.assert_silent()
    xds_server.update_config(
        configs_of(*bookinfo().values(), workload_entry("reviews", "v1", "127.0.0.13", name="reviews-v1b")), 2
    )
    await wait_until(lambda: xds_server.syncz()["snapshot_version"] == 2)
    await stream.assert_silent()  # only v1 changed, and it is no longer watched
    await stream.delta_request(ENDPOINT_TYPE, subscribe=[REVIEWS_V1_CLUSTER])
    again = await stream.recv()
    assert list(_versions(again)) == [REVIEWS_V1_CLUSTER]


async def test_reconnect_sends_only_differences(ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer) -> None:
    first = AdsStream(ads_channel, delta=True)
    await first.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    known = _versions(await first.recv())
    await first.close()
    known[REVIEWS_V2_CLUSTER] = "0123456789abcdef"  # stale
    known["outbound|9080||gone.default.svc.cluster.local"] = "fedcba9876543210"  # no longer exists
    second = AdsStream(ads_channel, delta=True)
    await second.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE, initial=known)
    response = await second.recv()
    assert list(_versions(response)) == [REVIEWS_V2_CLUSTER]
    assert list(response.removed_resources) == ["outbound|9080||gone.default.svc.cluster.local"]
    await _ack(second, response)
    third = AdsStream(ads_channel, delta=True)  # up to date: an empty response, which completes Envoy's init
    await third.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE, initial=_versions(await _full(ads_channel)))
    empty = await third.recv()
    assert list(empty.resources) == [] and list(empty.removed_resources) == [] and empty.nonce


async def test_delta_nack_is_recorded_and_not_resent(
    ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    stream = AdsStream(ads_channel, delta=True)
    await stream.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    cds = await stream.recv()
    await stream.delta_request(CLUSTER_TYPE, nonce=cds.nonce, error="bad cluster")
    await wait_until(lambda: _types(xds_server)["cds"]["last_nack"] is not None)
    nack = _types(xds_server)["cds"]["last_nack"]
    assert isinstance(nack, dict) and nack["error"] == "bad cluster" and nack["version"] == cds.system_version_info
    await stream.assert_silent()


async def _full(channel: grpc.aio.Channel) -> DeltaDiscoveryResponse:
    stream = AdsStream(channel, delta=True)
    await stream.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    response: DeltaDiscoveryResponse = await stream.recv()
    await stream.close()
    return response
