"""LDS building blocks, on a sidecar without SDS (plaintext): the HTTP connection managers of the outbound
``0.0.0.0_<port>`` listeners and of virtualInbound's chains per served port, tcp_proxy chains, reserved ports, a
proxy without workload (the whole listener model with mTLS is in ``test_generate_sidecar.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest
import structlog
from envoy.config.core.v3.base_pb2 import TrafficDirection, TransportSocket
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.listener.v3.listener_components_pb2 import FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.http.cors.v3.cors_pb2 import Cors
from envoy.extensions.filters.http.fault.v3.fault_pb2 import HTTPFault
from envoy.extensions.filters.http.rbac.v3.rbac_pb2 import RBAC
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from envoy.extensions.transport_sockets.raw_buffer.v3.raw_buffer_pb2 import RawBuffer

from meshplane import names
from pilot.config.types import ConfigMeta, Protocol, Resolution, Resource, ServiceEntry, ServicePort, WorkloadEntry
from pilot.generate import filter_chains, listeners
from pilot.generate._protos import http_filter, network_filter
from pilot.model import MeshSnapshot, Proxy
from tests.source_builders import validate_generated
from tests.xdstest import check_resources

MakeMeta = Callable[..., ConfigMeta]
ADDRESS = "10.89.0.21"


def mesh(make_meta: MakeMeta) -> tuple[Resource, ...]:
    """The workload ``app`` serves four services: HTTP (9080 -> 19080), GRPC (9090 -> 19090), TCP (5432 -> 15432),
    and one whose target port is its own port (7000: in a pod the sidecar binds nothing there, so that is fine)."""

    def service(name: str, number: int, protocol: Protocol, target: int | None = None) -> ServiceEntry:
        return ServiceEntry(
            meta=make_meta("ServiceEntry", name),
            hosts=(f"{name}.default.svc.cluster.local",),
            ports=(ServicePort(number=number, name=name, protocol=protocol, target_port=target),),
            location="MESH_INTERNAL",
            resolution=Resolution.STATIC,
            workload_selector=MappingProxyType({"app": "app"}),
        )

    return (
        service("web", 9080, Protocol.HTTP, 19080),
        service("rpc", 9090, Protocol.GRPC, 19090),
        service("db", 5432, Protocol.TCP, 15432),
        service("same", 7000, Protocol.HTTP),
        WorkloadEntry(meta=make_meta("WorkloadEntry", "app"), address=ADDRESS, labels=MappingProxyType({"app": "app"})),
    )


@pytest.fixture
def snapshot(make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]) -> MeshSnapshot:
    return mesh_snapshot(*mesh(make_meta))


@pytest.fixture
def proxy(snapshot: MeshSnapshot, sidecar_proxy: Callable[..., Proxy]) -> Proxy:
    return sidecar_proxy(snapshot, "app", ip=ADDRESS)


@pytest.fixture
def built(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, Listener]:
    return {listener.name: listener for listener in listeners.build_listeners(proxy, snapshot)}


def inbound_chains(built: dict[str, Listener], port: int) -> list[FilterChain]:
    """virtualInbound's chains for one destination port."""
    chains = built[listeners.VIRTUAL_INBOUND].filter_chains
    return [chain for chain in chains if chain.filter_chain_match.destination_port.value == port]


def hcm_of(chain: FilterChain) -> HttpConnectionManager:
    [network] = chain.filters
    assert network.name == filter_chains.HTTP_CONNECTION_MANAGER
    hcm = HttpConnectionManager()
    assert network.typed_config.Unpack(hcm)
    return hcm


def test_listeners_and_addresses(built: dict[str, Listener]) -> None:
    bound = {
        name: (
            lis.address.socket_address.address,
            lis.address.socket_address.port_value,
            lis.traffic_direction,
            lis.bind_to_port.value if lis.HasField("bind_to_port") else True,
        )
        for name, lis in built.items()
    }
    assert bound == {
        "virtualOutbound": ("0.0.0.0", 15001, TrafficDirection.OUTBOUND, True),
        "0.0.0.0_7000": ("0.0.0.0", 7000, TrafficDirection.OUTBOUND, False),
        "0.0.0.0_9080": ("0.0.0.0", 9080, TrafficDirection.OUTBOUND, False),
        "0.0.0.0_9090": ("0.0.0.0", 9090, TrafficDirection.OUTBOUND, False),
        f"{built_vip(built, 5432)}_5432": (built_vip(built, 5432), 5432, TrafficDirection.OUTBOUND, False),
        "virtualInbound": ("0.0.0.0", 15006, TrafficDirection.INBOUND, True),
    }
    check_resources(listeners=list(built.values()))


def built_vip(built: dict[str, Listener], port: int) -> str:
    """The VIP of the one TCP listener on ``port``."""
    [name] = [name for name in built if name.endswith(f"_{port}") and not name.startswith("0.0.0.0")]
    return name.rpartition("_")[0]


def test_outbound_http_listener(built: dict[str, Listener]) -> None:
    [chain] = built["0.0.0.0_9080"].filter_chains
    hcm = hcm_of(chain)
    assert hcm.codec_type == HttpConnectionManager.CodecType.AUTO
    assert hcm.stat_prefix == "outbound_0.0.0.0_9080"
    assert hcm.rds.route_config_name == "9080"
    assert hcm.rds.config_source.HasField("ads")
    assert hcm.rds.config_source.resource_api_version == ApiVersion.V3
    assert hcm.HasField("use_remote_address") and not hcm.use_remote_address.value
    assert hcm.normalize_path.value
    assert not hcm.HasField("http_protocol_options")  # no absolute-form requests: apps do not use a proxy
    assert hcm.forward_client_cert_details == HttpConnectionManager.ForwardClientCertDetails.SANITIZE


def test_http_filters_fault_then_cors_then_router(built: dict[str, Listener]) -> None:
    chains = [*built["0.0.0.0_9080"].filter_chains, *inbound_chains(built, 9080), *inbound_chains(built, 9090)]
    assert len(chains) == 3
    for chain in chains:
        filters = hcm_of(chain).http_filters
        assert [f.name for f in filters] == [names.FAULT_FILTER, names.CORS_FILTER, names.ROUTER_FILTER], chain.name
        fault, cors, router = HTTPFault(), Cors(), Router()
        assert filters[0].typed_config.Unpack(fault) and fault == HTTPFault()  # configured per route
        assert filters[1].typed_config.Unpack(cors) and cors == Cors()  # configured per route
        assert filters[2].typed_config.Unpack(router)


@pytest.mark.parametrize(
    ("port", "app_port", "http2"),
    [(9080, 19080, False), (9090, 19090, True), (7000, None, False)],
    ids=["http", "grpc", "target-port-is-service-port"],
)
def test_inbound_http_chains(built: dict[str, Listener], port: int, app_port: int | None, http2: bool) -> None:
    """One plaintext chain on the service port and, when it differs, one on the app's own port; both through the
    service port's inbound route table."""
    chains = inbound_chains(built, port) + (inbound_chains(built, app_port) if app_port else [])
    assert [c.name for c in chains] == [f"inbound_0.0.0.0_{p}" for p in (port, app_port) if p]
    for chain in chains:
        hcm = hcm_of(chain)
        assert hcm.rds.route_config_name == names.inbound_route_name(port)
        assert hcm.stat_prefix == chain.name
        assert hcm.use_remote_address.value
        assert hcm.forward_client_cert_details == HttpConnectionManager.ForwardClientCertDetails.APPEND_FORWARD
        details = hcm.set_current_client_cert_details
        assert (details.subject.value, details.uri, details.dns) == (True, True, True)
        assert hcm.HasField("http2_protocol_options") is http2
        assert not hcm.HasField("http_protocol_options")


def test_inbound_tcp_chain_proxies_to_the_inbound_cluster(built: dict[str, Listener]) -> None:
    for port in (5432, 15432):
        [chain] = inbound_chains(built, port)
        [network] = chain.filters
        assert network.name == filter_chains.TCP_PROXY
        tcp = TcpProxy()
        assert network.typed_config.Unpack(tcp)
        assert tcp.cluster == names.inbound_cluster_name(5432) == "inbound|5432||"
        assert tcp.stat_prefix == "inbound|5432||"


@pytest.mark.parametrize(
    "reserved",
    sorted(names.SIDECAR_PORTS),
    ids=lambda port: {15000: "admin", 15001: "outbound", 15006: "inbound", 15053: "dns"}[port],
)
def test_reserved_ports_get_no_listener_nor_chain(
    make_meta: MakeMeta,
    mesh_snapshot: Callable[..., MeshSnapshot],
    sidecar_proxy: Callable[..., Proxy],
    reserved: int,
) -> None:
    snapshot = mesh_snapshot(
        ServiceEntry(
            meta=make_meta("ServiceEntry", "clash"),
            hosts=("clash.default.svc.cluster.local",),
            ports=(ServicePort(number=reserved, name="http", protocol=Protocol.HTTP, target_port=18000),),
            resolution=Resolution.STATIC,
            workload_selector=MappingProxyType({"app": "app"}),
        ),
        WorkloadEntry(meta=make_meta("WorkloadEntry", "app"), address=ADDRESS, labels=MappingProxyType({"app": "app"})),
    )
    proxy = sidecar_proxy(snapshot, "app", ip=ADDRESS)
    with structlog.testing.capture_logs() as logs:
        built = {lis.name: lis for lis in listeners.build_listeners(proxy, snapshot)}
    assert sorted(built) == ["virtualInbound", "virtualOutbound"]
    assert inbound_chains(built, 18000) == []  # the app's port is not served either: the service port is not
    skipped = {(e["event"], e["port"]) for e in logs if e.get("reason") == "port is reserved by the sidecar"}
    assert skipped == {("outbound_listener_skipped", reserved), ("inbound_chain_skipped", reserved)}


def test_proxy_without_workload_gets_the_outbound_side_and_passthrough_inbound(
    snapshot: MeshSnapshot, sidecar_proxy: Callable[..., Proxy]
) -> None:
    proxy = sidecar_proxy(snapshot, "curl", namespace="tools", ip="10.89.0.50")
    built = {lis.name: lis for lis in listeners.build_listeners(proxy, snapshot)}
    assert "0.0.0.0_9080" in built and "virtualOutbound" in built
    chains = built[listeners.VIRTUAL_INBOUND].filter_chains
    assert [c.name for c in chains] == ["virtualInbound-blackhole", listeners.INBOUND_PASSTHROUGH_CHAIN]


def test_no_shared_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> None:
    assert listeners.listener_scopes(proxy) == []
    assert listeners.build_scope_listeners(("anything",), snapshot) == []


def test_extension_points_for_filters_and_transport_sockets() -> None:
    """Later features (authz filters, access logs, mTLS) plug in without changing the builders."""
    authz = http_filter("envoy.filters.http.rbac", RBAC())
    hcm = filter_chains.build_http_connection_manager(
        filter_chains.HttpListenerOptions(
            stat_prefix="p", route_name="r", use_remote_address=True, http_filters=(authz,)
        )
    )
    assert [f.name for f in hcm.http_filters] == [
        authz.name,
        names.FAULT_FILTER,
        names.CORS_FILTER,
        names.ROUTER_FILTER,
    ]
    socket = TransportSocket(name="envoy.transport_sockets.raw_buffer")
    socket.typed_config.Pack(RawBuffer())
    chain = filter_chains.build_filter_chain(
        [network_filter(filter_chains.HTTP_CONNECTION_MANAGER, hcm)], transport_socket=socket
    )
    assert chain.transport_socket == socket


def test_envoy_accepts_a_whole_sidecar(tmp_path: Path, proxy: Proxy, snapshot: MeshSnapshot) -> None:
    validate_generated(tmp_path, proxy, snapshot)
