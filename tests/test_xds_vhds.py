"""VHDS over real gRPC (``pilot.xds.vhds``): delta streams get route tables without virtual hosts and each virtual
host as a ``VirtualHost`` resource named ``<table>/<name>``, after the table; a VirtualService change sends one
virtual host and no table. SotW streams, and delta ones with ``vhds=False``, get whole tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse

from pilot.config.types import ConfigKey
from pilot.generate.registry import CLUSTER_TYPE, ROUTE_TYPE
from pilot.xds import DiscoveryServer
from pilot.xds.vhds import VhdsSplits
from tests.xds_fakes import (
    DEFAULT_ROUTES,
    PRODUCTPAGE,
    REVIEWS_HOST,
    REVIEWS_V2_CLUSTER,
    AdsStream,
    bookinfo,
    fake_generators,
    serving,
    unpack_route,
    wait_until,
)
from xdscore.resources import ProxyResources, ResourceGroup, make_resource
from xdscore.types import VIRTUAL_HOST_TYPE

REVIEWS_VHOST = f"{DEFAULT_ROUTES}/{REVIEWS_HOST}:9080"
PRODUCTPAGE_VHOST = f"{DEFAULT_ROUTES}/productpage.default.svc.cluster.local:9080"


async def _ack(stream: AdsStream, response: DeltaDiscoveryResponse) -> None:
    await stream.delta_request(response.type_url, nonce=response.nonce)


def _table(response: DeltaDiscoveryResponse) -> RouteConfiguration:
    [resource] = response.resources
    table = RouteConfiguration()
    resource.resource.Unpack(table)
    return table


def _hosts(response: DeltaDiscoveryResponse) -> dict[str, VirtualHost]:
    hosts = {}
    for resource in response.resources:
        host = VirtualHost()
        assert resource.resource.Unpack(host)
        assert resource.name == host.name  # Envoy keys VHDS virtual hosts by name and removes them by resource name
        hosts[resource.name] = host
    return hosts


async def _routes_then_hosts(stream: AdsStream) -> tuple[DeltaDiscoveryResponse, DeltaDiscoveryResponse]:
    await stream.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    await _ack(stream, await stream.recv())
    await stream.delta_request(ROUTE_TYPE, subscribe=[DEFAULT_ROUTES])
    routes = await stream.recv()
    assert routes.type_url == ROUTE_TYPE
    await _ack(stream, routes)
    await stream.delta_request(VIRTUAL_HOST_TYPE)  # Envoy's VHDS request: no names (it matches by namespace)
    hosts = await stream.recv()
    assert hosts.type_url == VIRTUAL_HOST_TYPE
    await _ack(stream, hosts)
    return routes, hosts


async def test_delta_tables_come_without_virtual_hosts_and_the_hosts_one_by_one(ads_channel: grpc.aio.Channel) -> None:
    stream = AdsStream(ads_channel, delta=True)
    routes, hosts = await _routes_then_hosts(stream)

    table = _table(routes)
    assert table.name == DEFAULT_ROUTES and list(table.virtual_hosts) == []
    assert table.vhds.config_source.HasField("ads")
    by_name = _hosts(hosts)
    assert sorted(by_name) == sorted([PRODUCTPAGE_VHOST, REVIEWS_VHOST])
    assert list(by_name[REVIEWS_VHOST].domains) == [REVIEWS_HOST]
    assert list(hosts.removed_resources) == []


async def test_a_virtual_service_change_sends_one_virtual_host_and_no_table(
    ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    stream = AdsStream(ads_channel, delta=True)
    await _routes_then_hosts(stream)

    xds_server.update_config(bookinfo(reviews_subset="v2"), 2)

    change = await stream.recv()
    assert change.type_url == VIRTUAL_HOST_TYPE, "the table did not change, only one of its virtual hosts"
    [host] = _hosts(change).values()
    assert host.name == REVIEWS_VHOST and host.routes[0].route.cluster == REVIEWS_V2_CLUSTER
    await _ack(stream, change)
    await stream.assert_silent()


async def test_a_tables_virtual_hosts_follow_the_table_never_precede_it(ads_channel: grpc.aio.Channel) -> None:
    """Envoy drops a virtual host whose table's VHDS watch does not exist yet (it exists once the table is applied):
    asked for virtual hosts before any table, the stream says nothing; the table's response brings them after it."""
    stream = AdsStream(ads_channel, delta=True)
    await stream.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    await _ack(stream, await stream.recv())
    await stream.delta_request(VIRTUAL_HOST_TYPE)
    await stream.assert_silent()

    await stream.delta_request(ROUTE_TYPE, subscribe=[DEFAULT_ROUTES])
    routes = await stream.recv()
    hosts = await stream.recv()

    assert routes.type_url == ROUTE_TYPE
    assert hosts.type_url == VIRTUAL_HOST_TYPE and sorted(_hosts(hosts)) == sorted([PRODUCTPAGE_VHOST, REVIEWS_VHOST])


async def test_a_table_subscribed_again_gets_its_virtual_hosts_again(ads_channel: grpc.aio.Channel) -> None:
    """Envoy unsubscribes a table (its listener drained) and subscribes it again: the new table has a new, empty
    VHDS watch, so its virtual hosts are sent again although they did not change."""
    stream = AdsStream(ads_channel, delta=True)
    await _routes_then_hosts(stream)

    await stream.delta_request(ROUTE_TYPE, unsubscribe=[DEFAULT_ROUTES])
    await stream.delta_request(ROUTE_TYPE, subscribe=[DEFAULT_ROUTES])
    routes = await stream.recv()
    hosts = await stream.recv()

    assert routes.type_url == ROUTE_TYPE and _table(routes).name == DEFAULT_ROUTES
    assert hosts.type_url == VIRTUAL_HOST_TYPE and sorted(_hosts(hosts)) == sorted([PRODUCTPAGE_VHOST, REVIEWS_VHOST])


async def test_a_removed_service_removes_its_virtual_host_and_a_dropped_table_removes_none(
    ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    stream = AdsStream(ads_channel, delta=True)
    await _routes_then_hosts(stream)

    configs = bookinfo()
    del configs[ConfigKey(kind="ServiceEntry", namespace="default", name="productpage")]
    xds_server.update_config(configs, 2)
    removal = None
    while removal is None or removal.type_url != VIRTUAL_HOST_TYPE:
        removal = await stream.recv()
        await _ack(stream, removal)
    assert list(removal.removed_resources) == [PRODUCTPAGE_VHOST] and list(removal.resources) == []

    # A table the proxy drops (Envoy keeps it while its listener drains): its virtual hosts are not removed.
    await stream.delta_request(ROUTE_TYPE, unsubscribe=[DEFAULT_ROUTES])
    xds_server.update_config(bookinfo(reviews_subset="v2"), 3)
    await wait_until(lambda: xds_server.snapshot is not None and xds_server.snapshot.version == 3)
    while (response := await _next_or_none(stream)) is not None:
        assert response.type_url != VIRTUAL_HOST_TYPE, response
        await _ack(stream, response)


async def _next_or_none(stream: AdsStream) -> DeltaDiscoveryResponse | None:
    try:
        response: DeltaDiscoveryResponse = await stream.recv(timeout=0.5)
    except TimeoutError:
        return None
    return response


async def test_a_reconnecting_envoy_keeps_its_virtual_hosts_when_it_asks_for_them_before_its_tables(
    ads_channel: grpc.aio.Channel,
) -> None:
    first = AdsStream(ads_channel, delta=True)
    routes, hosts = await _routes_then_hosts(first)
    await first.close()
    table_versions = {r.name: r.version for r in routes.resources}
    host_versions = {r.name: r.version for r in hosts.resources}

    again = AdsStream(ads_channel, delta=True)
    await again.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE)
    await _ack(again, await again.recv())
    await again.delta_request(VIRTUAL_HOST_TYPE, initial=host_versions)
    await again.delta_request(ROUTE_TYPE, subscribe=[DEFAULT_ROUTES], initial=table_versions)
    tables = await again.recv()
    virtual_hosts = await again.recv()

    assert tables.type_url == ROUTE_TYPE and list(tables.resources) == []  # up to date
    assert virtual_hosts.type_url == VIRTUAL_HOST_TYPE
    assert list(virtual_hosts.resources) == [] and list(virtual_hosts.removed_resources) == []


async def test_sotw_streams_get_whole_tables(ads_channel: grpc.aio.Channel) -> None:
    stream = AdsStream(ads_channel)
    await stream.request(ROUTE_TYPE, [DEFAULT_ROUTES], node=PRODUCTPAGE)

    table = unpack_route(await stream.recv(), DEFAULT_ROUTES)

    assert not table.HasField("vhds")
    assert sorted(h.name for h in table.virtual_hosts) == sorted(
        n.split("/", 1)[1] for n in (REVIEWS_VHOST, PRODUCTPAGE_VHOST)
    )


@pytest.fixture
async def no_vhds_channel() -> AsyncIterator[grpc.aio.Channel]:
    async with (
        serving(bookinfo(), generators=fake_generators(), debounce=0.01, debounce_max=0.2, vhds=False) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield channel


async def test_without_vhds_delta_streams_get_whole_tables(no_vhds_channel: grpc.aio.Channel) -> None:
    stream = AdsStream(no_vhds_channel, delta=True)
    await stream.delta_request(ROUTE_TYPE, node=PRODUCTPAGE, subscribe=[DEFAULT_ROUTES])

    table = _table(await stream.recv())

    assert not table.HasField("vhds") and len(table.virtual_hosts) == 2
    await stream.delta_request(VIRTUAL_HOST_TYPE)
    await stream.assert_silent()  # not a type this server serves


def _route_group(*tables: RouteConfiguration) -> ResourceGroup:
    return ResourceGroup.of(make_resource(table) for table in tables)


def _vhost_table(name: str, *hosts: str) -> RouteConfiguration:
    return RouteConfiguration(name=name, virtual_hosts=[VirtualHost(name=h, domains=[h]) for h in hosts])


def test_splits_are_shared_by_content_and_kept_over_two_snapshots() -> None:
    splits = VhdsSplits()
    first = splits.group(_route_group(_vhost_table("80", "a", "b"), _vhost_table("9080", "c")))

    again = splits.group(_route_group(_vhost_table("80", "a", "b"), _vhost_table("9080", "c")))
    assert again is first, "equal content, other objects: the same split"
    assert sorted(first.routes.resources) == ["80", "9080"]
    assert sorted(first.virtual_hosts["80"].resources) == ["80/a", "80/b"]
    assert sorted(first.virtual_hosts["9080"].resources) == ["9080/c"]

    splits.next_snapshot()
    changed = splits.group(_route_group(_vhost_table("80", "a", "b2"), _vhost_table("9080", "c")))
    assert changed.virtual_hosts["9080"] is first.virtual_hosts["9080"], "an unchanged table keeps its objects"
    assert changed.routes.resources["80"].version == first.routes.resources["80"].version  # no hosts in it

    splits.next_snapshot()
    splits.next_snapshot()  # two snapshots in which nothing asked for it: dropped
    assert splits.group(_route_group(_vhost_table("80", "a", "b"), _vhost_table("9080", "c"))) is not first


async def test_the_config_dump_shows_each_table_with_the_virtual_hosts_sent_for_it(
    ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    stream = AdsStream(ads_channel, delta=True)
    await _routes_then_hosts(stream)

    dump = xds_server.config_dump(PRODUCTPAGE)

    assert dump is not None
    [table] = dump["types"]["rds"]["resources"]
    assert "vhds" in table
    assert sorted(host["name"] for host in table["virtual_hosts"]) == sorted([PRODUCTPAGE_VHOST, REVIEWS_VHOST])
    assert len(dump["types"]["vhds"]["resources"]) == 2


def test_proxies_with_the_same_tables_share_one_view_and_its_subscriptions() -> None:
    splits = VhdsSplits()
    one = ProxyResources.of([_route_group(_vhost_table("9080", "a", "b"))])
    other = ProxyResources.of([_route_group(_vhost_table("9080", "a", "b"))])  # equal content, other objects

    assert splits.cached_view(one) is None, "nothing split yet: the caller splits in a worker thread"
    view = splits.view(one)
    assert splits.cached_view(other) is view
    assert view.subscribed(frozenset({"9080"})) is splits.view(other).subscribed(frozenset({"9080"}))
    assert sorted(view.subscribed(frozenset({"9080"})).resources) == ["9080/a", "9080/b"]
    assert list(view.subscribed(frozenset()).resources) == []
