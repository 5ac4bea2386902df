"""ADS over real gRPC with the real generators for pod sidecars: Istio's listener model arrives (INTERCEPTION_MODE
REDIRECT said, or unsaid: Istio's default), a MeshConfig change (outboundTrafficPolicy, same config version) is pushed
as new LDS and RDS only, and a sidecar asking for another interception mode is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from meshplane import names
from pilot.config.types import Protocol, ServicePort
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import MeshSettings, OutboundTrafficPolicy
from pilot.xds import DiscoveryServer
from tests.route_builders import REVIEWS, service_entry, workload
from tests.sidecar_builders import unpack
from tests.xds_fakes import AdsStream, configs_of, serving

POD_IP = "10.89.0.21"
CAPTURED_NODE = f"sidecar~{POD_IP}~reviews-v1.default~default.svc.cluster.local"
UNSAID_NODE = "sidecar~10.89.0.9~ratings-v1.default~default.svc.cluster.local"  # no INTERCEPTION_MODE metadata
REGISTRY_ONLY = MeshSettings(outbound_traffic_policy=OutboundTrafficPolicy.REGISTRY_ONLY)


def _configs() -> dict[Any, Any]:
    reviews = service_entry(
        "reviews",
        REVIEWS,
        (
            ServicePort(number=9080, name="http", protocol=Protocol.HTTP, target_port=19080),
            ServicePort(number=3306, name="mysql", protocol=Protocol.MYSQL),
        ),
        selector={"app": "reviews"},
    )
    return configs_of(
        reviews,
        workload("reviews-v1", POD_IP, {"app": "reviews"}),
        workload("ratings-v1", "10.89.0.9", {"app": "ratings"}),
    )


@pytest.fixture
async def server() -> AsyncIterator[DiscoveryServer]:
    """A DiscoveryServer over the real generators (ALLOW_ANY), 10ms debounce."""
    async with serving(_configs(), debounce=0.01, debounce_max=0.2) as server:
        yield server


@pytest.fixture
async def channel(server: DiscoveryServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


def _messages(response: DiscoveryResponse, cls: Any) -> dict[str, Any]:
    return {message.name: message for message in (unpack(cls(), packed) for packed in response.resources)}


async def _connect(stream: AdsStream, node: str, metadata: dict[str, str]) -> dict[str, DiscoveryResponse]:
    """Envoy's start-up: CDS (with the node and its metadata), EDS, LDS, RDS for what they name, each ACKed."""
    first = DiscoveryRequest(type_url=CLUSTER_TYPE)
    first.node.id = node
    for key, value in metadata.items():
        first.node.metadata.fields[key].string_value = value
    await stream.send(first)
    responses = {CLUSTER_TYPE: await stream.recv()}
    await stream.ack(responses[CLUSTER_TYPE])
    clusters = _messages(responses[CLUSTER_TYPE], Cluster).values()
    eds = sorted(c.name for c in clusters if c.type == Cluster.DiscoveryType.EDS)
    responses[ENDPOINT_TYPE] = await _named(stream, ENDPOINT_TYPE, eds)
    await stream.request(LISTENER_TYPE)
    responses[LISTENER_TYPE] = await stream.recv()
    await stream.ack(responses[LISTENER_TYPE])
    responses[ROUTE_TYPE] = await _named(stream, ROUTE_TYPE, _route_names(responses[LISTENER_TYPE]))
    return responses


async def _named(stream: AdsStream, type_url: str, wanted: list[str]) -> DiscoveryResponse:
    await stream.request(type_url, wanted)
    response = await stream.recv()
    assert response.type_url == type_url
    await stream.ack(response, wanted)
    return response


def _route_names(response: DiscoveryResponse) -> list[str]:
    found = set()
    for listener in _messages(response, Listener).values():
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            for network in chain.filters:
                if network.typed_config.Is(HttpConnectionManager.DESCRIPTOR):
                    manager = unpack(HttpConnectionManager(), network.typed_config)
                    if manager.HasField("rds"):
                        found.add(manager.rds.route_config_name)
    return sorted(found)


def _default_cluster(listener: Listener) -> str:
    [network] = listener.default_filter_chain.filters
    return str(unpack(TcpProxy(), network.typed_config).cluster)


def _catch_all(table: RouteConfiguration) -> tuple[str, str]:
    """(name, what it does) of the port table's virtual host for hosts outside the registry."""
    [vhost] = [vh for vh in table.virtual_hosts if list(vh.domains) == ["*"]]
    [route] = vhost.routes
    return vhost.name, route.route.cluster if route.HasField("route") else str(route.direct_response.status)


async def _policy_pushed(stream: AdsStream) -> tuple[DiscoveryResponse, DiscoveryResponse]:
    """The LDS then RDS push of a mesh-config change, each ACKed."""
    lds = await stream.recv()
    assert lds.type_url == LISTENER_TYPE
    await stream.ack(lds)
    rds = await stream.recv()
    assert rds.type_url == ROUTE_TYPE
    await stream.ack(rds, _route_names(lds))
    return lds, rds


async def test_sidecar_gets_istios_listener_model_and_follows_the_mesh_config(
    server: DiscoveryServer, channel: grpc.aio.Channel
) -> None:
    captured, unsaid = AdsStream(channel), AdsStream(channel)
    got = await _connect(captured, CAPTURED_NODE, {names.INTERCEPTION_MODE_METADATA: "REDIRECT"})
    other = await _connect(unsaid, UNSAID_NODE, {})

    clusters = _messages(got[CLUSTER_TYPE], Cluster)
    for passthrough in (names.PASSTHROUGH_CLUSTER, names.BLACKHOLE_CLUSTER, names.INBOUND_PASSTHROUGH_CLUSTER):
        assert passthrough in clusters
    assert clusters[names.PASSTHROUGH_CLUSTER].type == Cluster.DiscoveryType.ORIGINAL_DST
    listeners = _messages(got[LISTENER_TYPE], Listener)
    assert {"virtualOutbound", "virtualInbound", "0.0.0.0_9080"} <= set(listeners)
    assert listeners["virtualOutbound"].use_original_dst.value is True
    assert _default_cluster(listeners["virtualOutbound"]) == names.PASSTHROUGH_CLUSTER
    tables = _messages(got[ROUTE_TYPE], RouteConfiguration)
    assert "9080" in tables
    assert _catch_all(tables["9080"]) == ("allow_any", names.PASSTHROUGH_CLUSTER)
    assert set(_messages(other[LISTENER_TYPE], Listener)) == set(listeners)  # Istio's default: REDIRECT
    outbound = {name for name in clusters if not name.startswith("inbound|")}  # ratings-v1 serves no service
    assert set(_messages(other[CLUSTER_TYPE], Cluster)) == outbound

    server.update_mesh(REGISTRY_ONLY)  # a mesh-only change: the config version stays 1
    for stream, before in ((captured, got), (unsaid, other)):
        lds, rds = await _policy_pushed(stream)
        assert lds.version_info != before[LISTENER_TYPE].version_info
        assert _default_cluster(_messages(lds, Listener)["virtualOutbound"]) == names.BLACKHOLE_CLUSTER
        assert _catch_all(_messages(rds, RouteConfiguration)["9080"]) == ("block_all", "502")
        await stream.assert_silent()  # CDS and EDS do not depend on the policy
    assert server.snapshot is not None and server.snapshot.version == 1

    server.update_mesh(MeshSettings())  # and back
    lds, rds = await _policy_pushed(captured)
    assert _default_cluster(_messages(lds, Listener)["virtualOutbound"]) == names.PASSTHROUGH_CLUSTER
    assert _catch_all(_messages(rds, RouteConfiguration)["9080"]) == ("allow_any", names.PASSTHROUGH_CLUSTER)
    await captured.close()
    await unsaid.close()


async def test_a_sidecar_asking_for_tproxy_is_refused(channel: grpc.aio.Channel) -> None:
    stream = AdsStream(channel)
    request = DiscoveryRequest(type_url=CLUSTER_TYPE)
    request.node.id = CAPTURED_NODE
    request.node.metadata.fields[names.INTERCEPTION_MODE_METADATA].string_value = "TPROXY"
    await stream.send(request)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stream.recv()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "INTERCEPTION_MODE TPROXY is not supported by meshplane yet" in str(refused.value.details())
