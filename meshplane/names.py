"""Names of clusters, listeners, routes, filters and ports that Pilot's generators, envoy_bootstrap and Mixer agree on
(Istio's conventions), so that references between resources always agree."""

from __future__ import annotations

__all__ = [
    "ADMIN_PORT",
    "BLACKHOLE_CLUSTER",
    "CAPTURED_SIDECAR_PORTS",
    "DNS_CAPTURE_PORT",
    "EXT_AUTHZ_FILTER",
    "FAULT_FILTER",
    "HTTP_GRPC_ACCESS_LOGGER",
    "HTTP_PROXY_PORT",
    "INBOUND_CAPTURE_PORT",
    "INBOUND_PASSTHROUGH_CLUSTER",
    "INTERCEPTION_MODE_METADATA",
    "OUTBOUND_CAPTURE_PORT",
    "PASSTHROUGH_CLUSTER",
    "PROXY_UID",
    "RBAC_FILTER",
    "RBAC_NETWORK_FILTER",
    "ROUTER_FILTER",
    "XDS_CLUSTER",
    "http_proxy_route_name",
    "inbound_cluster_name",
    "inbound_listener_name",
    "inbound_route_name",
    "outbound_cluster_name",
    "outbound_listener_name",
    "parse_outbound_cluster_name",
]

HTTP_PROXY_PORT = 15001  # the sidecar's outbound HTTP-proxy listener (apps use it as HTTP_PROXY)
# Pods (traffic captured by iptables, Istio's ports and names)
OUTBOUND_CAPTURE_PORT = 15001  # Istio's virtualOutbound: every outbound TCP connection of the app is redirected here
INBOUND_CAPTURE_PORT = 15006  # Istio's virtualInbound: every inbound TCP connection to the pod is redirected here
DNS_CAPTURE_PORT = 15053  # the sidecar agent's DNS proxy: the app's UDP/TCP 53 is redirected here
PROXY_UID = 1337  # the sidecar's uid (and gid): its own traffic is never captured
INTERCEPTION_MODE_METADATA = "INTERCEPTION_MODE"  # node metadata: "REDIRECT" for a captured sidecar (Istio's key)
PASSTHROUGH_CLUSTER = "PassthroughCluster"  # outbound to a destination outside the registry, ALLOW_ANY
BLACKHOLE_CLUSTER = "BlackHoleCluster"  # outbound to a destination outside the registry, REGISTRY_ONLY
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"  # inbound to a port no service declares
ADMIN_PORT = 15000  # Envoy's admin, bound on the workload address
XDS_CLUSTER = "xds-grpc"  # the bootstrap cluster that points at Pilot

FAULT_FILTER = "envoy.filters.http.fault"
ROUTER_FILTER = "envoy.filters.http.router"
RBAC_FILTER = "envoy.filters.http.rbac"  # Istio's wellknown.HTTPRoleBasedAccessControl
RBAC_NETWORK_FILTER = "envoy.filters.network.rbac"  # Istio's wellknown.RoleBasedAccessControl
EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"  # Istio's wellknown.HTTPExternalAuthorization
HTTP_GRPC_ACCESS_LOGGER = "envoy.access_loggers.http_grpc"


def outbound_cluster_name(port: int, subset: str, host: str) -> str:
    """``outbound|9080|v1|reviews.default.svc.cluster.local`` (subset may be empty)."""
    return f"outbound|{port}|{subset}|{host}"


def parse_outbound_cluster_name(name: str) -> tuple[int, str, str]:
    direction, port, subset, host = name.split("|", 3)
    if direction != "outbound":
        raise ValueError(f"not an outbound cluster name: {name!r}")
    return int(port), subset, host


def inbound_cluster_name(port: int) -> str:
    """``inbound|9080||``: the app behind this sidecar's inbound listener on service port 9080."""
    return f"inbound|{port}||"


def inbound_route_name(port: int) -> str:
    return f"inbound|{port}||"


def inbound_listener_name(address: str, port: int) -> str:
    return f"{address}_{port}"


def outbound_listener_name(address: str) -> str:
    return f"{address}_{HTTP_PROXY_PORT}"


def http_proxy_route_name(namespace: str) -> str:
    """The outbound route table of the HTTP-proxy listener. Short host names depend on the proxy's namespace,
    so there is one table per namespace, shared (same bytes) by every proxy in it."""
    return f"{HTTP_PROXY_PORT}.{namespace}"


# The ports a captured sidecar uses itself in its pod: no service port among them gets a listener or a route table.
CAPTURED_SIDECAR_PORTS = frozenset({ADMIN_PORT, OUTBOUND_CAPTURE_PORT, INBOUND_CAPTURE_PORT, DNS_CAPTURE_PORT})
