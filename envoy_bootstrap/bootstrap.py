"""The Envoy bootstrap of a meshplane sidecar: who it is, where its admin listens, and how it reaches Pilot.

Everything else (listeners, routes, clusters, endpoints) comes from Pilot over ADS. The bootstrap is built
one piece per function (``build_node``, ``build_admin``, ``build_xds_cluster``, ...) so that later clusters
(Citadel's SDS, Mixer's policy and telemetry) are one more function each and one more argument to
``build_sidecar_bootstrap``.

The node id follows Istio: ``sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<domain suffix>``; Pilot parses
it with ``pilot.model.build.parse_node_id``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from importlib import metadata
from typing import Literal, get_args

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, backoff_pb2, base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.overload.v3 import overload_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import downstream_connections_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, json_format, struct_pb2

from pilot.generate.names import ADMIN_PORT, XDS_CLUSTER

__all__ = [
    "DEFAULT_PILOT_ADDRESS",
    "XDS_MODES",
    "BootstrapError",
    "HostPort",
    "XdsMode",
    "bootstrap_to_json",
    "build_admin",
    "build_dynamic_resources",
    "build_node",
    "build_overload_manager",
    "build_sidecar_bootstrap",
    "build_xds_cluster",
    "parse_host_port",
    "sidecar_node_id",
]

XdsMode = Literal["sotw", "delta"]
XDS_MODES: tuple[XdsMode, ...] = get_args(XdsMode)
DEFAULT_PILOT_ADDRESS = "127.0.0.1:15010"

XDS_CONNECT_TIMEOUT_SECONDS = 1.0  # Pilot is local: fail fast and retry
XDS_RETRY_BASE_SECONDS = 0.2  # Envoy's default is 1 s base, 10 s max: far too slow when Pilot restarts
XDS_RETRY_MAX_SECONDS = 1.0
XDS_KEEPALIVE_TIME_SECONDS = 300  # Istio's value for its xds-grpc cluster
MAX_DOWNSTREAM_CONNECTIONS = 1_000_000  # a sidecar has no business limiting its app; the limit only silences a warning

_API_TYPES: dict[XdsMode, config_source_pb2.ApiConfigSource.ApiType.ValueType] = {
    "sotw": config_source_pb2.ApiConfigSource.GRPC,
    "delta": config_source_pb2.ApiConfigSource.DELTA_GRPC,
}
_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_DOWNSTREAM_CONNECTIONS_MONITOR = "envoy.resource_monitors.global_downstream_max_connections"


class BootstrapError(ValueError):
    """A bootstrap argument is invalid; the message names the argument."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    host: str  # an IP literal (IPv6 without brackets) or a DNS name
    port: int

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: str, *, argument: str) -> HostPort:
    """``127.0.0.1:15010``, ``[::1]:15010`` or ``istiod.istio-system:15010``."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise BootstrapError(f"{argument}: expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise BootstrapError(f"{argument}: an IPv6 address must be in brackets, like [::1]:15010; got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise BootstrapError(f"{argument}: port must be 1-65535, got {port}")
    return HostPort(host=host, port=port)


def _check_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise BootstrapError(f"address: expected the workload's IP address, got {address!r}") from None


def _check_name(value: str, *, argument: str, dots_allowed: bool) -> str:
    if not value or "~" in value or any(c.isspace() for c in value) or (not dots_allowed and "." in value):
        allowed = "" if dots_allowed else ", '.'"
        raise BootstrapError(f"{argument}: must be non-empty without whitespace, '~'{allowed}; got {value!r}")
    return value


def sidecar_node_id(*, workload: str, namespace: str, address: str, domain_suffix: str) -> str:
    """Istio's node id: ``sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local``."""
    return f"sidecar~{address}~{workload}.{namespace}~{namespace}.svc.{domain_suffix}"


def _meshplane_version() -> str:
    try:
        return metadata.version("meshplane")
    except metadata.PackageNotFoundError:
        return "dev"


def build_node(*, workload: str, namespace: str, address: str, domain_suffix: str) -> base_pb2.Node:
    """The node Envoy announces on its first xDS request. Metadata uses Istio's keys (``NAMESPACE``, ...);
    ``ISTIO_VERSION`` carries the meshplane release that wrote the bootstrap."""
    node = base_pb2.Node(
        id=sidecar_node_id(workload=workload, namespace=namespace, address=address, domain_suffix=domain_suffix),
        cluster=f"{workload}.{namespace}",
    )
    node.metadata.update(
        {
            "ISTIO_VERSION": _meshplane_version(),
            "NAMESPACE": namespace,
            "WORKLOAD_NAME": workload,
            "INSTANCE_IPS": address,
            "DNS_DOMAIN": f"{namespace}.svc.{domain_suffix}",
        }
    )
    return node


def _socket_address(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=host, port_value=port))


def build_admin(*, address: str, port: int = ADMIN_PORT) -> bootstrap_pb2.Admin:
    """Envoy's admin on the workload's own address (each sidecar has its own loopback IP, so :15000 is free)."""
    return bootstrap_pb2.Admin(address=_socket_address(address, port))


def build_xds_cluster(pilot: HostPort) -> cluster_pb2.Cluster:
    """``xds-grpc``: HTTP/2 to Pilot, STATIC for an IP and STRICT_DNS for a name, with TCP keepalive."""
    cluster = cluster_pb2.Cluster(
        name=XDS_CLUSTER,
        type=cluster_pb2.Cluster.STATIC if pilot.is_ip else cluster_pb2.Cluster.STRICT_DNS,
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=XDS_CLUSTER,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(address=_socket_address(pilot.host, pilot.port))
                        )
                    ]
                )
            ],
        ),
    )
    cluster.connect_timeout.FromNanoseconds(int(XDS_CONNECT_TIMEOUT_SECONDS * 1e9))
    cluster.upstream_connection_options.tcp_keepalive.keepalive_time.value = XDS_KEEPALIVE_TIME_SECONDS
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    packed = any_pb2.Any()
    packed.Pack(options)
    cluster.typed_extension_protocol_options[_HTTP_PROTOCOL_OPTIONS].CopyFrom(packed)
    return cluster


def _ads_config_source() -> config_source_pb2.ConfigSource:
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()
    # 0s (Istio's choice): wait for Pilot however long it takes, so /ready really means "has config".
    source.initial_fetch_timeout.FromSeconds(0)
    return source


def build_dynamic_resources(xds_mode: XdsMode) -> bootstrap_pb2.Bootstrap.DynamicResources:
    """ADS to ``xds-grpc`` (SotW or delta); CDS and LDS over ADS. Reconnects to Pilot within about a second."""
    back_off = backoff_pb2.BackoffStrategy()
    back_off.base_interval.FromNanoseconds(int(XDS_RETRY_BASE_SECONDS * 1e9))
    back_off.max_interval.FromNanoseconds(int(XDS_RETRY_MAX_SECONDS * 1e9))
    grpc = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
            cluster_name=XDS_CLUSTER, retry_policy=base_pb2.RetryPolicy(retry_back_off=back_off)
        )
    )
    ads = config_source_pb2.ApiConfigSource(
        api_type=_API_TYPES[xds_mode],
        transport_api_version=config_source_pb2.V3,
        grpc_services=[grpc],
        set_node_on_first_message_only=True,
    )
    return bootstrap_pb2.Bootstrap.DynamicResources(
        ads_config=ads, cds_config=_ads_config_source(), lds_config=_ads_config_source()
    )


def build_overload_manager() -> overload_pb2.OverloadManager:
    """A global downstream connection limit through the overload manager (what Envoy recommends, instead of the
    deprecated ``overload.global_downstream_max_connections`` runtime key): without one Envoy warns at start."""
    monitor = downstream_connections_pb2.DownstreamConnectionsConfig(
        max_active_downstream_connections=MAX_DOWNSTREAM_CONNECTIONS
    )
    packed = any_pb2.Any()
    packed.Pack(monitor)
    return overload_pb2.OverloadManager(
        resource_monitors=[overload_pb2.ResourceMonitor(name=_DOWNSTREAM_CONNECTIONS_MONITOR, typed_config=packed)]
    )


def _build_layered_runtime() -> bootstrap_pb2.LayeredRuntime:
    """An empty static layer and an admin layer, so ``/runtime_modify`` works for debugging."""
    return bootstrap_pb2.LayeredRuntime(
        layers=[
            bootstrap_pb2.RuntimeLayer(name="static", static_layer=struct_pb2.Struct()),
            bootstrap_pb2.RuntimeLayer(name="admin", admin_layer=bootstrap_pb2.RuntimeLayer.AdminLayer()),
        ]
    )


def build_sidecar_bootstrap(
    *,
    workload: str,
    namespace: str = "default",
    address: str,
    pilot: str = DEFAULT_PILOT_ADDRESS,
    xds_mode: XdsMode = "sotw",
    domain_suffix: str = "cluster.local",
    admin_port: int = ADMIN_PORT,
) -> bootstrap_pb2.Bootstrap:
    """The bootstrap of the sidecar of ``workload`` (a WorkloadEntry name) at ``address``, fed by ``pilot``."""
    _check_name(workload, argument="workload", dots_allowed=False)
    _check_name(namespace, argument="namespace", dots_allowed=False)
    _check_name(domain_suffix, argument="domain_suffix", dots_allowed=True)
    address = _check_address(address)
    pilot_address = parse_host_port(pilot, argument="pilot")
    if xds_mode not in XDS_MODES:
        raise BootstrapError(f"xds_mode: expected one of {', '.join(XDS_MODES)}; got {xds_mode!r}")
    if not 0 < admin_port < 65536:
        raise BootstrapError(f"admin_port: must be 1-65535, got {admin_port}")
    return bootstrap_pb2.Bootstrap(
        node=build_node(workload=workload, namespace=namespace, address=address, domain_suffix=domain_suffix),
        admin=build_admin(address=address, port=admin_port),
        static_resources=bootstrap_pb2.Bootstrap.StaticResources(clusters=[build_xds_cluster(pilot_address)]),
        dynamic_resources=build_dynamic_resources(xds_mode),
        layered_runtime=_build_layered_runtime(),
        overload_manager=build_overload_manager(),
    )


def bootstrap_to_json(bootstrap: bootstrap_pb2.Bootstrap) -> str:
    """The bootstrap as Envoy JSON with Envoy's (snake_case) field names, as in Envoy's docs."""
    return str(json_format.MessageToJson(bootstrap, preserving_proto_field_name=True, indent=2)) + "\n"
