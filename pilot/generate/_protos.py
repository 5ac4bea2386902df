"""Small protobuf helpers shared by the CDS/EDS/LDS builders: durations, ADS config sources, socket addresses and
load assignments built from model endpoints. (Typed configs are packed in place: ``field.Pack(message)``.)"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import Locality
from envoy.config.core.v3.config_source_pb2 import AggregatedConfigSource, ApiVersion, ConfigSource
from envoy.config.endpoint.v3.endpoint_components_pb2 import Endpoint as EnvoyEndpoint
from envoy.config.endpoint.v3.endpoint_components_pb2 import LbEndpoint, LocalityLbEndpoints
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_components_pb2 import Filter
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import HttpFilter

from pilot.model.types import Endpoint

__all__ = [
    "HTTP_PROTOCOL_OPTIONS_KEY",
    "UINT32_MAX",
    "ads_config_source",
    "duration",
    "http_filter",
    "load_assignment",
    "locality_lb_endpoints",
    "network_filter",
    "parse_locality",
    "socket_address",
]

UINT32_MAX = 4294967295  # Go's math.MaxUint32: Istio's "no limit" for circuit breaker thresholds

# The key under which a cluster carries its upstream HTTP settings (typed_extension_protocol_options).
HTTP_PROTOCOL_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def duration(seconds: float) -> timedelta:
    """A value for a ``google.protobuf.Duration`` field: protobuf converts ``timedelta`` when it is assigned or
    passed to a constructor, and marks the field present even for 0s."""
    return timedelta(seconds=seconds)


def ads_config_source() -> ConfigSource:
    """Fetch over the ADS stream (as Istio: v3, and no initial fetch timeout: every EDS/RDS name we reference
    is always answered, with an empty resource if need be, so waiting for it is never a deadlock)."""
    return ConfigSource(
        ads=AggregatedConfigSource(),
        initial_fetch_timeout=duration(0),
        resource_api_version=ApiVersion.V3,
    )


def socket_address(address: str, port: int) -> Address:
    return Address(socket_address=SocketAddress(address=address, port_value=port))


def parse_locality(locality: str) -> Locality:
    """Istio's ``region/zone/subzone`` locality string (any part may be missing)."""
    region, zone, sub_zone = ([*locality.split("/", 2), "", ""])[:3]
    return Locality(region=region, zone=zone, sub_zone=sub_zone)


def locality_lb_endpoints(endpoints: Iterable[Endpoint]) -> list[LocalityLbEndpoints]:
    """Endpoints grouped by locality (sorted), each group weighted by the sum of its endpoints' weights (as Istio).

    Within a group endpoints keep their given order, which the model makes deterministic (address, port).
    """
    groups: dict[str, list[Endpoint]] = defaultdict(list)
    for endpoint in endpoints:
        groups[endpoint.locality].append(endpoint)
    result: list[LocalityLbEndpoints] = []
    for locality, members in sorted(groups.items()):
        group = LocalityLbEndpoints(
            lb_endpoints=[
                LbEndpoint(
                    endpoint=EnvoyEndpoint(address=socket_address(e.address, e.port)),
                    load_balancing_weight={"value": max(e.weight, 1)},
                )
                for e in members
            ],
            load_balancing_weight={"value": sum(max(e.weight, 1) for e in members)},
        )
        if locality:
            group.locality.CopyFrom(parse_locality(locality))
        result.append(group)
    return result


def load_assignment(cluster_name: str, endpoints: Iterable[Endpoint]) -> ClusterLoadAssignment:
    """A ClusterLoadAssignment; with no endpoints it is empty, which still completes the cluster's warming."""
    return ClusterLoadAssignment(cluster_name=cluster_name, endpoints=locality_lb_endpoints(endpoints))


def network_filter(name: str, config: Any) -> Filter:
    """A listener filter carrying ``config`` (any Envoy message: protobufs are untyped to mypy here)."""
    network = Filter(name=name)
    network.typed_config.Pack(config)
    return network


def http_filter(name: str, config: Any) -> HttpFilter:
    """An HTTP filter carrying ``config`` (any Envoy message)."""
    http = HttpFilter(name=name)
    http.typed_config.Pack(config)
    return http
