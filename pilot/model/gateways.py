"""Gateways in the model: which Gateways select a gateway proxy (node type ``router``), their servers merged per
port (Istio's ``MergeGateways``), and the VirtualServices bound to each Gateway.

- A proxy's labels are its workload's (WorkloadEntry or pod) when Pilot resolved one, else its node metadata's
  ``LABELS`` (Istio's: a gateway Deployment's pod labels), so that a gateway without a registry entry of its own
  is still selected. A Gateway selects every router whose labels include its ``selector``, in any namespace
  (Istio's default, ``PILOT_SCOPE_GATEWAY_TO_NAMESPACE=false``); an empty selector selects every router.
- Servers merge per (bind address, port) as Istio does: plaintext HTTP servers share one route table
  ``http.<port>``; TLS servers (HTTPS, TLS) become one filter chain each, told apart by SNI (their hosts); a TCP
  server owns its port alone. Servers that cannot share a port (``pilot.config.gateway_conflicts``) are rejected
  before they get here: by ``validate_gateway`` within a Gateway, by the store across Gateways whose selectors
  overlap. What is left is a conflict only the proxy shows: two port numbers its Service translates to one
  targetPort; that server is left out and logged (``gateway_server_conflict``), naming both servers.
- VirtualServices bind to ``<namespace>/<name>`` names (``resolve_gateway_name``), top-level or in a match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog

from pilot.config.gateway_conflicts import merge_conflict
from pilot.config.types import EMPTY_LABELS, Gateway, GatewayServer, Labels, Protocol, VirtualService, labels_match
from pilot.config.validate_gateway_refs import MESH_GATEWAY
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "GatewayPortKind",
    "MergedPort",
    "SelectedServer",
    "gateway_key",
    "gateway_labels",
    "gateway_server_hosts",
    "index_gateway_virtual_services",
    "is_router",
    "match_gateway_applies",
    "merge_gateway_servers",
    "resolve_gateway_name",
    "selected_gateways",
    "virtual_service_gateways",
]

log = structlog.get_logger(__name__)

ROUTER = "router"


class GatewayPortKind(StrEnum):
    HTTP = "http"  # plaintext HTTP (an httpsRedirect server too): one route table per port
    TLS = "tls"  # HTTPS / TLS servers: a filter chain per server, by SNI
    TCP = "tcp"  # one plaintext TCP server


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectedServer:
    """A server of a Gateway selecting the proxy (``gateway``: the Gateway's ``<namespace>/<name>``)."""

    gateway: str
    namespace: str  # the Gateway's namespace (``./`` host prefixes)
    server: GatewayServer
    index: int  # in the Gateway's servers

    def __str__(self) -> str:
        return f"Gateway {self.gateway} servers[{self.index}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class MergedPort:
    """The servers of one (bind, port) of a gateway proxy, in Gateway (namespace/name) then server order."""

    bind: str
    number: int
    kind: GatewayPortKind
    servers: tuple[SelectedServer, ...]


def is_router(proxy: Proxy) -> bool:
    """Whether the proxy is a gateway (Istio's node type ``router``), not a sidecar."""
    return proxy.node.type == ROUTER


def gateway_labels(proxy: Proxy) -> Labels:
    """The labels Gateways select the proxy by (see the module doc)."""
    if proxy.workload is not None:
        return proxy.workload.labels
    return proxy.node.labels or EMPTY_LABELS


def gateway_key(gateway: Gateway) -> str:
    key = gateway.meta.key
    return f"{key.namespace}/{key.name}"


def selected_gateways(proxy: Proxy, snapshot: MeshSnapshot) -> tuple[Gateway, ...]:
    """The Gateways whose selector the proxy's labels satisfy, in namespace/name order."""
    labels = gateway_labels(proxy)
    return tuple(gateway for gateway in snapshot.gateways if labels_match(gateway.selector, labels))


def _port_kind(server: GatewayServer) -> GatewayPortKind:
    protocol = server.port.protocol
    if protocol in (Protocol.HTTPS, Protocol.TLS):
        return GatewayPortKind.TLS
    if protocol.is_http:
        return GatewayPortKind.HTTP
    return GatewayPortKind.TCP


def gateway_server_hosts(server: GatewayServer) -> tuple[str, ...]:
    """The server's host names without their namespace prefixes (the SNI names of a TLS server)."""
    return tuple(host.partition("/")[2] if "/" in host else host for host in server.hosts)


def merge_gateway_servers(
    gateways: Iterable[Gateway], target_ports: Mapping[int, int] | None = None
) -> tuple[MergedPort, ...]:
    """Istio's ``MergeGateways`` over the Gateways of one proxy (see the module doc), by (bind, port): the port the
    listener binds, a server's own number or, in ``target_ports``, the targetPort its Service maps it to
    (``pilot.model.gateway_target_ports``)."""
    target_ports = target_ports or {}
    merged: dict[tuple[str, int], list[SelectedServer]] = {}
    kinds: dict[tuple[str, int], GatewayPortKind] = {}
    for gateway in gateways:
        for index, server in enumerate(gateway.servers):
            selected = SelectedServer(
                gateway=gateway_key(gateway), namespace=gateway.meta.key.namespace, server=server, index=index
            )
            where = (server.bind, target_ports.get(server.port.number, server.port.number))
            kind = _port_kind(server)
            existing = merged.setdefault(where, [])
            kinds.setdefault(where, kind)
            conflict = next((other for other in existing if merge_conflict(other.server, server)), None)
            if conflict is not None:
                log.warning(
                    "gateway_server_conflict",
                    port=server.port.number,
                    bind=server.bind,
                    used=str(conflict),
                    ignored=str(selected),
                    reason=merge_conflict(conflict.server, server),
                )
                continue
            existing.append(selected)
    return tuple(
        MergedPort(bind=bind, number=number, kind=kinds[(bind, number)], servers=tuple(servers))
        for (bind, number), servers in sorted(merged.items(), key=lambda item: (item[0][1], item[0][0]))
    )


def resolve_gateway_name(name: str, namespace: str) -> str:
    """Istio's ``resolveGatewayName``: ``mesh``; ``ns/name``; the legacy ``name.ns[.svc.suffix]``; or ``name`` in
    the VirtualService's ``namespace``, as ``<namespace>/<name>``."""
    if name == MESH_GATEWAY or "/" in name:
        return name
    if "." in name:
        short, _, rest = name.partition(".")
        return f"{rest.split('.')[0]}/{short}"
    return f"{namespace}/{name}"


def match_gateway_applies(match_gateways: tuple[str, ...], vs: VirtualService, gateway: str) -> bool:
    """Whether a match of ``vs`` applies on ``gateway`` (``mesh``: the sidecars): a match's own ``gateways``
    override the VirtualService's (Istio), which default to ``mesh``."""
    namespace = vs.meta.key.namespace
    names = match_gateways or vs.gateways or (MESH_GATEWAY,)
    return any(resolve_gateway_name(name, namespace) == gateway for name in names)


def virtual_service_gateways(vs: VirtualService) -> frozenset[str]:
    """Every gateway a VirtualService binds to, resolved: top-level and in its matches (Istio's
    ``getGatewayNames``); empty top-level: ``mesh``."""
    namespace = vs.meta.key.namespace
    names = {resolve_gateway_name(name, namespace) for name in vs.gateways or (MESH_GATEWAY,)}
    for http in vs.http:
        names.update(resolve_gateway_name(name, namespace) for match in http.match for name in match.gateways)
    for tcp in vs.tcp:
        names.update(resolve_gateway_name(name, namespace) for match in tcp.match for name in match.gateways)
    for tls in vs.tls:
        names.update(resolve_gateway_name(name, namespace) for match in tls.match for name in match.gateways)
    return frozenset(names)


def index_gateway_virtual_services(
    virtual_services: Iterable[VirtualService],
) -> Mapping[str, tuple[VirtualService, ...]]:
    """Gateway ``<namespace>/<name>`` -> the VirtualServices bound to it, in the given (namespace/name) order."""
    index: dict[str, list[VirtualService]] = {}
    for vs in virtual_services:
        for name in sorted(virtual_service_gateways(vs) - {MESH_GATEWAY}):
            index.setdefault(name, []).append(vs)
    return {name: tuple(bound) for name, bound in sorted(index.items())}
