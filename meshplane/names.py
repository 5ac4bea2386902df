"""Names of clusters, listeners, routes, filters and ports that Pilot's generators, envoy_bootstrap and Mixer agree on
(Istio's conventions), so that references between resources always agree."""

from __future__ import annotations

__all__ = [
    "ADMIN_PORT",
    "BLACKHOLE_CLUSTER",
    "CORS_FILTER",
    "DNS_CAPTURE_PORT",
    "EXT_AUTHZ_FILTER",
    "EXT_AUTHZ_NETWORK_FILTER",
    "FAULT_FILTER",
    "HTTP_GRPC_ACCESS_LOGGER",
    "INBOUND_CAPTURE_PORT",
    "INBOUND_PASSTHROUGH_CLUSTER",
    "INTERCEPTION_MODES",
    "INTERCEPTION_MODE_METADATA",
    "INTERCEPTION_REDIRECT",
    "OUTBOUND_CAPTURE_PORT",
    "PASSTHROUGH_CLUSTER",
    "PROXY_CONFIG_TYPE",
    "PROXY_UID",
    "RBAC_FILTER",
    "RBAC_NETWORK_FILTER",
    "ROUTER_FILTER",
    "SIDECAR_PORTS",
    "XDS_CLUSTER",
    "inbound_cluster_name",
    "inbound_route_name",
    "listener_name",
    "outbound_cluster_name",
    "parse_outbound_cluster_name",
]

# Every sidecar runs in a pod whose traffic iptables captures (Istio's ports and names)
OUTBOUND_CAPTURE_PORT = 15001  # Istio's virtualOutbound: every outbound TCP connection of the app is redirected here
INBOUND_CAPTURE_PORT = 15006  # Istio's virtualInbound: every inbound TCP connection to the pod is redirected here
DNS_CAPTURE_PORT = 15053  # the sidecar agent's DNS proxy: the app's UDP/TCP 53 is redirected here
PROXY_UID = 1337  # the sidecar's uid (and gid): its own traffic is never captured
INTERCEPTION_MODE_METADATA = "INTERCEPTION_MODE"  # node metadata (Istio's key): how the pod's traffic is captured
INTERCEPTION_REDIRECT = "REDIRECT"  # iptables REDIRECT (Istio's default, and the one mode meshplane implements)
INTERCEPTION_MODES = ("REDIRECT", "TPROXY", "NONE")  # Istio's modes
PASSTHROUGH_CLUSTER = "PassthroughCluster"  # outbound to a destination outside the registry, ALLOW_ANY
BLACKHOLE_CLUSTER = "BlackHoleCluster"  # outbound to a destination outside the registry, REGISTRY_ONLY
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"  # inbound to a port no service declares
ADMIN_PORT = 15000  # Envoy's admin, on the pod's 127.0.0.1
XDS_CLUSTER = "xds-grpc"  # the bootstrap cluster that points at Pilot

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"  # Istio's wellknown.CORS
ROUTER_FILTER = "envoy.filters.http.router"
RBAC_FILTER = "envoy.filters.http.rbac"  # Istio's wellknown.HTTPRoleBasedAccessControl
RBAC_NETWORK_FILTER = "envoy.filters.network.rbac"  # Istio's wellknown.RoleBasedAccessControl
EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"  # Istio's wellknown.HTTPExternalAuthorization
EXT_AUTHZ_NETWORK_FILTER = "envoy.filters.network.ext_authz"  # Istio's wellknown.ExternalAuthorization
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


def listener_name(address: str, port: int) -> str:
    """Istio's ``<address>_<port>``: ``0.0.0.0_9080``, ``240.240.0.1_3306``."""
    return f"{address}_{port}"


# The ports the sidecar uses itself in its pod: no service port among them gets a listener or a route table.
SIDECAR_PORTS = frozenset({ADMIN_PORT, OUTBOUND_CAPTURE_PORT, INBOUND_CAPTURE_PORT, DNS_CAPTURE_PORT})

# The xDS type of the proxy's effective ProxyConfig, which its launcher (envoy_bootstrap.proxy_config) fetches from
# Pilot (pilot.generate.proxy_config) before starting Envoy
PROXY_CONFIG_TYPE = "type.googleapis.com/meshplane.proxyconfig.v1.ProxyConfig"
