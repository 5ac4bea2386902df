"""The merged ports of a gateway proxy and the names Istio gives their listeners and route tables, shared by the
gateway listener and route builders so that every name a listener references is a name RDS builds."""

from __future__ import annotations

from meshplane import names
from pilot.model.gateway_target_ports import gateway_target_ports
from pilot.model.gateways import MergedPort, SelectedServer, merge_gateway_servers, selected_gateways
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "WILDCARD_ADDRESS",
    "gateway_listener_address",
    "gateway_listener_name",
    "gateway_ports",
    "https_route_name",
    "plaintext_route_name",
]

WILDCARD_ADDRESS = "0.0.0.0"


def gateway_ports(proxy: Proxy, snapshot: MeshSnapshot) -> tuple[MergedPort, ...]:
    """The servers of every Gateway selecting the proxy, merged per (bind, port the listener binds: the targetPort
    of a Service fronting the gateway, ``gateway_target_ports``)."""
    return merge_gateway_servers(selected_gateways(proxy, snapshot), gateway_target_ports(proxy, snapshot))


def gateway_listener_address(port: MergedPort) -> str:
    return port.bind or WILDCARD_ADDRESS


def gateway_listener_name(port: MergedPort) -> str:
    """Istio's ``0.0.0.0_<port>`` (``<bind>_<port>`` for a server bound to an address)."""
    return names.listener_name(gateway_listener_address(port), port.number)


def plaintext_route_name(port: MergedPort) -> str:
    """Istio's ``http.<port>`` (with the bind address appended for a bound server: ``http.<port>.<bind>``)."""
    return f"http.{port.number}" + (f".{port.bind}" if port.bind else "")


def https_route_name(server: SelectedServer) -> str:
    """Istio's ``gatewayRDSRouteName`` of an HTTPS server: ``https.<port>.<port name>.<gateway>.<namespace>``."""
    namespace, _, name = server.gateway.partition("/")
    port = server.server.port
    return f"https.{port.number}.{port.name}.{name}.{namespace}"
