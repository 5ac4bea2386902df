"""Snapshot consistency: a snapshot whose clusters or listeners reference EDS/RDS names it does not have is not
served (the previous one stays), and says so in the log, the metrics and /debug/syncz."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
    Rds,
)
from google.protobuf.message import Message

from pilot.config.types import ConfigKey, Resource
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, GENERATORS, LISTENER_TYPE, ROUTE_TYPE, TypeGenerator
from pilot.model import MeshSnapshot, Proxy, parse_node_id
from pilot.xds import DiscoveryServer, InconsistentSnapshotError, ResourceCache, build_cache
from pilot.xds.consistency import references
from tests.xds_fakes import (
    PRODUCTPAGE,
    REVIEWS_V1,
    AdsStream,
    bookinfo,
    configs_of,
    fake_generators,
    service_entry,
    wait_until,
)

GHOST_CLUSTER = "outbound|1||ghost"  # an EDS cluster that no ClusterLoadAssignment backs
GHOST_ROUTES = "ghost-routes"  # a route table no generator builds


def _hcm_listener(name: str, *, rds: str = "", inline: bool = False) -> Listener:
    manager = HttpConnectionManager(stat_prefix=name)
    if rds:
        manager.rds.CopyFrom(Rds(route_config_name=rds))
    if inline:
        manager.route_config.CopyFrom(RouteConfiguration(name="inline"))
    network = Filter(name="envoy.filters.network.http_connection_manager")
    network.typed_config.Pack(manager)
    return Listener(name=name, filter_chains=[FilterChain(filters=[network])])


def _eds(name: str, service_name: str = "") -> Cluster:
    return Cluster(name=name, type=Cluster.EDS, eds_cluster_config=Cluster.EdsClusterConfig(service_name=service_name))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_eds("outbound|9080||a", "outbound|9080||a"), ["outbound|9080||a"]),
        (_eds("outbound|9080||a"), ["outbound|9080||a"]),
        (Cluster(name="inbound|9080||", type=Cluster.STATIC), []),
        (_hcm_listener("0.0.0.0_15001", rds="default"), ["default"]),
        (_hcm_listener("0.0.0.0_9080", inline=True), []),
        (Listener(name="tcp", default_filter_chain=_hcm_listener("x", rds="fallback").filter_chains[0]), ["fallback"]),
        (RouteConfiguration(name="default"), []),
    ],
    ids=["eds-service-name", "eds-cluster-name", "static", "listener-rds", "listener-inline", "default-chain", "route"],
)
def test_references(message: Message, expected: list[str]) -> None:
    assert list(references(message)) == expected


def _dangling_generators(*, clusters: bool = False, listeners: bool = False) -> dict[str, TypeGenerator]:
    """The fake generators, plus a bug while a "ghost" service exists: an EDS cluster without assignment (every
    proxy), and/or a listener naming a route table nobody builds (productpage's only)."""
    generators = fake_generators()
    cds, lds = generators[CLUSTER_TYPE], generators[LISTENER_TYPE]

    def haunted(snapshot: MeshSnapshot) -> bool:
        return "ghost.default.svc.cluster.local" in snapshot.services

    def build_clusters(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> list[Message]:
        return [*cds.build_scope(scope, snapshot), *([_eds(GHOST_CLUSTER)] if haunted(snapshot) else [])]

    def build_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> list[Message]:
        extra = haunted(snapshot) and proxy.node.workload_name == "productpage-v1"
        return [*lds.build_proxy(proxy, snapshot), *([_hcm_listener("ghost", rds=GHOST_ROUTES)] if extra else [])]

    if clusters:
        generators[CLUSTER_TYPE] = TypeGenerator(
            type_url=CLUSTER_TYPE,
            affected_by=cds.affected_by,
            wildcard=True,
            scopes=cds.scopes,
            build_scope=build_clusters,
            build_proxy=cds.build_proxy,
        )
    if listeners:
        generators[LISTENER_TYPE] = TypeGenerator(
            type_url=LISTENER_TYPE,
            affected_by=lds.affected_by,
            wildcard=True,
            scopes=lds.scopes,
            build_scope=lds.build_scope,
            build_proxy=build_listeners,
        )
    return generators


HAUNTED = configs_of(*bookinfo().values(), service_entry("ghost"))
NODES = [parse_node_id(PRODUCTPAGE), parse_node_id(REVIEWS_V1)]


def _build(configs: Mapping[ConfigKey, Resource], generators: Mapping[str, TypeGenerator]) -> ResourceCache:
    return build_cache(
        configs, 1, previous=None, generators=generators, domain_suffix="cluster.local", nodes=NODES, changed_at=None
    )


def test_a_snapshot_with_dangling_references_is_refused_when_built() -> None:
    generators = _dangling_generators(clusters=True, listeners=True)
    with pytest.raises(InconsistentSnapshotError) as refused:
        _build(HAUNTED, generators)
    error = refused.value
    assert error.version == 1
    assert error.missing == {ENDPOINT_TYPE: (GHOST_CLUSTER,), ROUTE_TYPE: (GHOST_ROUTES,)}
    assert error.dangling == {
        PRODUCTPAGE: {ENDPOINT_TYPE: (GHOST_CLUSTER,), ROUTE_TYPE: (GHOST_ROUTES,)},
        REVIEWS_V1: {ENDPOINT_TYPE: (GHOST_CLUSTER,)},
    }
    assert GHOST_CLUSTER in str(error) and GHOST_ROUTES in str(error)
    _build(bookinfo(), generators)  # the same generators without a ghost: consistent


def test_the_real_generators_build_consistent_snapshots() -> None:
    cache = _build(bookinfo(), GENERATORS)
    for node in NODES:
        assert cache.dangling(node) == {}
        assert any(group.references for group in cache.view(CLUSTER_TYPE, node).groups)  # the check checks something
        assert any(group.references for group in cache.view(LISTENER_TYPE, node).groups)


def _metric(server: DiscoveryServer, scope: str) -> str | None:
    prefix = f'pilot_xds_inconsistent_snapshots_total{{scope="{scope}"}} '
    found = [line for line in server.metrics.exposition().decode().splitlines() if line.startswith(prefix)]
    return found[0].removeprefix(prefix) if found else None


async def _server(generators: Mapping[str, TypeGenerator], configs: Mapping[ConfigKey, Resource]) -> DiscoveryServer:
    server = DiscoveryServer(generators=generators, debounce=0.01, debounce_max=0.2)
    server.update_config(configs, 1)
    await server.start("127.0.0.1:0")
    await wait_until(lambda: server.ready)
    return server


async def test_an_inconsistent_snapshot_is_not_served_and_the_previous_one_stays() -> None:
    server = await _server(_dangling_generators(clusters=True), bookinfo())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stream = AdsStream(channel)
            await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
            await stream.ack(await stream.recv())
            server.update_config(HAUNTED, 2)
            await wait_until(lambda: server.syncz()["snapshot_error"] is not None)
            syncz = server.syncz()
            assert syncz["snapshot_version"] == 1
            error = syncz["snapshot_error"]
            assert (error["snapshot_version"], error["dangling"]) == (2, {"eds": [GHOST_CLUSTER]})
            assert (error["proxies"], error["proxy_count"]) == ([PRODUCTPAGE], 1)
            assert _metric(server, "snapshot") == "1.0"
            await stream.assert_silent()
            assert server.cache is not None and server.cache.version == 1
            fixed = configs_of(*bookinfo().values(), service_entry("ratings"))
            server.update_config(fixed, 3)
            pushed = await stream.recv()
            assert pushed.type_url == CLUSTER_TYPE
            assert server.syncz()["snapshot_version"] == 3 and server.syncz()["snapshot_error"] is None
            await stream.close()
    finally:
        await server.stop(grace=0)


async def test_a_proxy_connecting_later_is_not_served_a_snapshot_inconsistent_for_it() -> None:
    # No proxy is connected when the first snapshot is built: each is checked when it connects.
    server = await _server(_dangling_generators(listeners=True), HAUNTED)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            productpage, reviews = AdsStream(channel), AdsStream(channel)
            await productpage.request(CLUSTER_TYPE, node=PRODUCTPAGE)
            await reviews.request(CLUSTER_TYPE, node=REVIEWS_V1)
            assert (await reviews.recv()).type_url == CLUSTER_TYPE  # consistent for reviews
            await productpage.assert_silent()
            [entry] = [p for p in server.syncz()["proxies"] if p["id"] == PRODUCTPAGE]
            assert entry["snapshot_error"] == {"snapshot_version": 1, "dangling": {"rds": [GHOST_ROUTES]}}
            assert entry["synced"] is False
            assert _metric(server, "proxy") == "1.0" and server.syncz()["snapshot_error"] is None
            server.update_config(bookinfo(), 2)  # the ghost is gone: productpage gets its first response now
            assert (await productpage.recv()).type_url == CLUSTER_TYPE
            [entry] = [p for p in server.syncz()["proxies"] if p["id"] == PRODUCTPAGE]
            assert entry["snapshot_error"] is None
            await productpage.close()
            await reviews.close()
    finally:
        await server.stop(grace=0)
