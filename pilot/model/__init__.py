"""The mesh model: one immutable snapshot built from accepted config, and proxies resolved against it."""

from pilot.model.build import (
    NodeIdError,
    build_snapshot,
    destination_rule_for,
    host_matches,
    labels_match,
    parse_node_id,
    resolve_host,
    resolve_proxy,
    virtual_services_for,
)
from pilot.model.types import DEFAULT_DOMAIN_SUFFIX, Endpoint, MeshSnapshot, Proxy, ProxyNode, Service, ServiceInstance

__all__ = [
    "DEFAULT_DOMAIN_SUFFIX",
    "Endpoint",
    "MeshSnapshot",
    "NodeIdError",
    "Proxy",
    "ProxyNode",
    "Service",
    "ServiceInstance",
    "build_snapshot",
    "destination_rule_for",
    "host_matches",
    "labels_match",
    "parse_node_id",
    "resolve_host",
    "resolve_proxy",
    "virtual_services_for",
]
