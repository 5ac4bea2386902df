"""LDS: the outbound HTTP-proxy listener and one inbound listener per served service port, on the workload's
own address."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest
import structlog
from envoy.config.core.v3.base_pb2 import TrafficDirection, TransportSocket
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import Route, RouteAction, RouteMatch, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
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
from pilot.generate import clusters, endpoints, listeners
from pilot.model import MeshSnapshot, Proxy
from tests.xdstest import check_resources, envoy_validate, listener_route_names

MakeMeta = Callable[..., ConfigMeta]
ADDRESS = "127.0.0.21"


def mesh(make_meta: MakeMeta) -> tuple[Resource, ...]:
    """The workload ``app`` serves four services: HTTP (9080 -> 19080), GRPC (9090 -> 19090), TCP (5432 -> 15432),
    and one whose target port is its own port (7000), which the sidecar cannot bind next to the app."""

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


def hcm_of(listener: Listener) -> HttpConnectionManager:
    [chain] = listener.filter_chains
    [network] = chain.filters
    assert network.name == listeners.HTTP_CONNECTION_MANAGER
    hcm = HttpConnectionManager()
    assert network.typed_config.Unpack(hcm)
    return hcm


def test_listeners_bind_the_workload_address(built: dict[str, Listener]) -> None:
    bound = {
        name: (lis.address.socket_address.address, lis.address.socket_address.port_value, lis.traffic_direction)
        for name, lis in built.items()
    }
    assert bound == {
        f"{ADDRESS}_15001": (ADDRESS, 15001, TrafficDirection.OUTBOUND),
        f"{ADDRESS}_5432": (ADDRESS, 5432, TrafficDirection.INBOUND),
        f"{ADDRESS}_9080": (ADDRESS, 9080, TrafficDirection.INBOUND),
        f"{ADDRESS}_9090": (ADDRESS, 9090, TrafficDirection.INBOUND),
    }
    check_resources(listeners=list(built.values()))


def test_outbound_http_proxy_listener(built: dict[str, Listener]) -> None:
    hcm = hcm_of(built[names.outbound_listener_name(ADDRESS)])
    assert hcm.codec_type == HttpConnectionManager.CodecType.AUTO
    assert hcm.stat_prefix == f"outbound_{ADDRESS}_15001"
    assert hcm.rds.route_config_name == names.http_proxy_route_name("default") == "15001.default"
    assert hcm.rds.config_source.HasField("ads")
    assert hcm.rds.config_source.resource_api_version == ApiVersion.V3
    assert hcm.HasField("use_remote_address") and not hcm.use_remote_address.value
    assert hcm.normalize_path.value
    assert hcm.http_protocol_options.allow_absolute_url.value  # apps send absolute-form requests (curl -x)
    assert hcm.forward_client_cert_details == HttpConnectionManager.ForwardClientCertDetails.SANITIZE


def test_http_filters_fault_then_router(built: dict[str, Listener]) -> None:
    for name in (f"{ADDRESS}_15001", f"{ADDRESS}_9080", f"{ADDRESS}_9090"):
        filters = hcm_of(built[name]).http_filters
        assert [f.name for f in filters] == [names.FAULT_FILTER, names.ROUTER_FILTER], name
        fault, router = HTTPFault(), Router()
        assert filters[0].typed_config.Unpack(fault) and fault == HTTPFault()  # configured per route
        assert filters[1].typed_config.Unpack(router)


@pytest.mark.parametrize(
    ("port", "http2"),
    [(9080, False), (9090, True)],
    ids=["http", "grpc"],
)
def test_inbound_http_listener(built: dict[str, Listener], port: int, http2: bool) -> None:
    hcm = hcm_of(built[names.inbound_listener_name(ADDRESS, port)])
    assert hcm.rds.route_config_name == names.inbound_route_name(port)
    assert hcm.stat_prefix == f"inbound_{ADDRESS}_{port}"
    assert hcm.use_remote_address.value
    assert hcm.forward_client_cert_details == HttpConnectionManager.ForwardClientCertDetails.APPEND_FORWARD
    details = hcm.set_current_client_cert_details
    assert (details.subject.value, details.uri, details.dns) == (True, True, True)
    assert hcm.HasField("http2_protocol_options") is http2
    assert not hcm.HasField("http_protocol_options")


def test_inbound_tcp_listener_proxies_to_the_inbound_cluster(built: dict[str, Listener]) -> None:
    [chain] = built[f"{ADDRESS}_5432"].filter_chains
    [network] = chain.filters
    assert network.name == listeners.TCP_PROXY
    tcp = TcpProxy()
    assert network.typed_config.Unpack(tcp)
    assert tcp.cluster == names.inbound_cluster_name(5432) == "inbound|5432||"
    assert tcp.stat_prefix == "inbound|5432||"


def test_port_the_app_binds_itself_is_skipped_with_a_warning(proxy: Proxy, snapshot: MeshSnapshot) -> None:
    with structlog.testing.capture_logs() as logs:
        names_built = [listener.name for listener in listeners.build_listeners(proxy, snapshot)]
    assert f"{ADDRESS}_7000" not in names_built
    [skipped] = [entry for entry in logs if entry["event"] == "inbound_listener_skipped"]
    assert (skipped["log_level"], skipped["port"]) == ("warning", 7000)


@pytest.mark.parametrize("reserved", [names.HTTP_PROXY_PORT, names.ADMIN_PORT], ids=["http-proxy", "admin"])
def test_reserved_ports_are_not_inbound_listeners(
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
    assert [lis.name for lis in listeners.build_listeners(proxy, snapshot)] == [f"{ADDRESS}_15001"]


def test_proxy_without_workload_gets_only_the_outbound_listener(
    snapshot: MeshSnapshot, sidecar_proxy: Callable[..., Proxy]
) -> None:
    proxy = sidecar_proxy(snapshot, "curl", namespace="tools", ip="127.0.0.50")
    [outbound] = listeners.build_listeners(proxy, snapshot)
    assert outbound.name == "127.0.0.50_15001"
    assert outbound.address.socket_address.address == "127.0.0.50"
    assert hcm_of(outbound).rds.route_config_name == "15001.tools"


def test_no_shared_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> None:
    assert listeners.listener_scopes(proxy) == []
    assert listeners.build_scope_listeners(("anything",), snapshot) == []


def test_extension_points_for_filters_and_transport_sockets() -> None:
    """Later features (authz filters, access logs, mTLS) plug in without changing the builders."""
    authz = listeners.http_filter("envoy.filters.http.rbac", RBAC())
    hcm = listeners.build_http_connection_manager(
        listeners.HttpListenerOptions(stat_prefix="p", route_name="r", use_remote_address=True, http_filters=(authz,))
    )
    assert [f.name for f in hcm.http_filters] == [authz.name, names.FAULT_FILTER, names.ROUTER_FILTER]
    socket = TransportSocket(name="envoy.transport_sockets.raw_buffer")
    socket.typed_config.Pack(RawBuffer())
    chain = listeners.build_filter_chain(
        [listeners.network_filter(listeners.HTTP_CONNECTION_MANAGER, hcm)], transport_socket=socket
    )
    assert chain.transport_socket == socket


def routes_for(listener_list: list[Listener]) -> list[RouteConfiguration]:
    """A minimal route table for every RDS name (the routes generator has its own tests)."""
    tables = []
    for name in sorted({n for lis in listener_list for n in listener_route_names(lis)}):
        cluster = (
            clusters.BLACK_HOLE_CLUSTER
            if name.startswith("15001.")
            else names.inbound_cluster_name(int(name.split("|")[1]))
        )
        tables.append(
            RouteConfiguration(
                name=name,
                virtual_hosts=[
                    VirtualHost(
                        name="all",
                        domains=["*"],
                        routes=[Route(match=RouteMatch(prefix="/"), route=RouteAction(cluster=cluster))],
                    )
                ],
            )
        )
    return tables


def test_envoy_accepts_a_whole_sidecar(tmp_path: Path, proxy: Proxy, snapshot: MeshSnapshot) -> None:
    built_listeners = listeners.build_listeners(proxy, snapshot)
    built_clusters = clusters.build_scope_clusters(("outbound", "default"), snapshot) + clusters.build_inbound_clusters(
        proxy, snapshot
    )
    assignments = endpoints.build_scope_load_assignments(("eds", "default"), snapshot)
    tables = routes_for(built_listeners)
    check_resources(clusters=built_clusters, load_assignments=assignments, listeners=built_listeners, routes=tables)
    envoy_validate(
        tmp_path, clusters=built_clusters, listeners=built_listeners, routes=tables, load_assignments=assignments
    )
