"""The xDS type URLs of the resources Envoy asks for (and the sidecar agent: Istio's NDS name table), and the short
names logs and debug pages use for them (go-control-plane's ``pkg/resource``)."""

from __future__ import annotations

from types import MappingProxyType

from meshplane.names import PROXY_CONFIG_TYPE  # the proxy launcher's ProxyConfig

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "NAME_TABLE_TYPE",
    "PROXY_CONFIG_TYPE",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "TYPE_URL_PREFIX",
    "VIRTUAL_HOST_TYPE",
    "short_type",
]

TYPE_URL_PREFIX = "type.googleapis.com/"
CLUSTER_TYPE = TYPE_URL_PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = TYPE_URL_PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = TYPE_URL_PREFIX + "envoy.config.listener.v3.Listener"
ROUTE_TYPE = TYPE_URL_PREFIX + "envoy.config.route.v3.RouteConfiguration"
VIRTUAL_HOST_TYPE = TYPE_URL_PREFIX + "envoy.config.route.v3.VirtualHost"  # VHDS (delta only)
SECRET_TYPE = TYPE_URL_PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
NAME_TABLE_TYPE = TYPE_URL_PREFIX + "istio.networking.nds.v1.NameTable"  # Istio's v3.NameTableType

_SHORT_TYPES = MappingProxyType(
    {
        CLUSTER_TYPE: "cds",
        ENDPOINT_TYPE: "eds",
        LISTENER_TYPE: "lds",
        ROUTE_TYPE: "rds",
        VIRTUAL_HOST_TYPE: "vhds",
        SECRET_TYPE: "sds",
        NAME_TABLE_TYPE: "nds",
        PROXY_CONFIG_TYPE: "proxyconfig",
    }
)


def short_type(type_url: str) -> str:
    """``cds``/``eds``/``lds``/``rds``/``vhds``/``sds`` for Envoy's types, ``nds`` for the name table, else the
    message name in lower case."""
    return _SHORT_TYPES.get(type_url) or type_url.rsplit(".", 1)[-1].lower()
