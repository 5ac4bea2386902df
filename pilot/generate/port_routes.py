"""RDS of the outbound side: one route table per HTTP port, named by the port (``9080``, Istio's name), fetched by
the sidecar's ``0.0.0.0_<port>`` listener (``listeners.py``).

A table holds one virtual host per visible service with an HTTP port of that number, with Istio's domains (short name in
the proxy's namespace, ``name.ns``, ``name.ns.svc``, the FQDN and the VIPs, without a port: the table ignores the Host
header's port, as Istio's sidecar tables do) and the routes of ``routes.py`` (VirtualServices, else Istio's default
route), then Istio's catch-all for any other Host, per MeshConfig ``outboundTrafficPolicy``: ``allow_any`` (on to the
original destination, PassthroughCluster) or ``block_all`` (502).

Tables depend on the proxy's namespace (short names, exportTo), its Sidecar (hosts, VirtualServices, outbound
policy: ``pilot.model.sidecar_scope``) and source labels (sourceLabels matches, see ``routes``), so they are shared
per scope ``("outbound_http", namespace[, sidecar][, source labels])``. Each table is one cached
part (``PortRoutesInputs``); its virtual hosts' inputs are ``routes.VirtualHostInputs``, so the cache key covers every
input. A table rebuilt because one virtual host's inputs changed takes the others from the cache's ``PieceMemo``
(``build_route_table`` does not modify the virtual hosts it is given).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass

from envoy.config.route.v3.route_components_pb2 import DirectResponseAction, Route, RouteAction, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from meshplane import names
from pilot.config.types import ConfigKey
from pilot.generate.pieces import PieceMemo
from pilot.generate.route_action import set_duration
from pilot.generate.route_match import translate_route_match
from pilot.generate.routes import (
    SourceLabels,
    VirtualHostInputs,
    build_outbound_virtual_host,
    build_route_table,
    route_scope,
    visible_virtual_host_inputs,
)
from pilot.model.client_view import EMPTY_VIEW, ClientView
from pilot.model.mesh_settings import OutboundTrafficPolicy
from pilot.model.sidecar_scope import egress_scope
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "ALLOW_ANY_VIRTUAL_HOST",
    "BLOCK_ALL_VIRTUAL_HOST",
    "OUTBOUND_HTTP_SCOPE",
    "PortRoutesInputs",
    "build_catch_all_virtual_host",
    "build_port_route_table",
    "port_route_inputs",
    "port_route_scope",
]

OUTBOUND_HTTP_SCOPE = "outbound_http"
ALLOW_ANY_VIRTUAL_HOST = "allow_any"  # Istio's names
BLOCK_ALL_VIRTUAL_HOST = "block_all"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortRoutesInputs:
    """Everything the route table of one port is built from (hashable: the resource cache's key)."""

    port: int
    virtual_hosts: tuple[VirtualHostInputs, ...]
    policy: OutboundTrafficPolicy
    default_cluster: str = ""  # the allow_any virtual host's cluster (a Sidecar's egress proxy); "": Passthrough


def port_route_scope(proxy: Proxy) -> tuple[Hashable, ...]:
    return route_scope(OUTBOUND_HTTP_SCOPE, proxy)


def port_route_inputs(
    namespace: str,
    snapshot: MeshSnapshot,
    source_labels: SourceLabels = (),
    sidecar: ConfigKey | None = None,
    view: ClientView = EMPTY_VIEW,
) -> list[PortRoutesInputs]:
    """One entry per HTTP port of the services visible from ``namespace`` under ``sidecar`` (for clients with
    ``source_labels`` and ``view``), by port number; the catch-all per the Sidecar's ``outboundTrafficPolicy``, else
    MeshConfig's."""
    by_port: dict[int, list[VirtualHostInputs]] = defaultdict(list)
    found = visible_virtual_host_inputs(namespace, snapshot, source_labels=source_labels, sidecar=sidecar, view=view)
    for inputs in found:
        by_port[inputs.port].append(inputs)
    scope = egress_scope(snapshot, (namespace, sidecar))
    policy, cluster = scope.outbound_policy, scope.egress_proxy_cluster
    return [
        PortRoutesInputs(port=port, virtual_hosts=tuple(by_port[port]), policy=policy, default_cluster=cluster)
        for port in sorted(by_port)
    ]


def build_port_route_table(inputs: PortRoutesInputs, pieces: PieceMemo | None = None) -> RouteConfiguration:
    """``pieces``: where the virtual hosts are looked up by their inputs (built only for inputs not seen)."""
    if pieces is None:
        vhosts = [build_outbound_virtual_host(vhost) for vhost in inputs.virtual_hosts]
    else:
        vhosts = [pieces.get(vhost, build_outbound_virtual_host) for vhost in inputs.virtual_hosts]
    catch_all = build_catch_all_virtual_host(inputs.policy, inputs.default_cluster)
    table = build_route_table(str(inputs.port), [*vhosts, catch_all])
    table.ignore_port_in_host_matching = True  # the domains have no port (``routes.virtual_host_domains``)
    return table


def build_catch_all_virtual_host(policy: OutboundTrafficPolicy, cluster: str = "") -> VirtualHost:
    """Istio's ``allow_any`` / ``block_all`` virtual host: a Host no service has, on a port some service has;
    ``cluster``: allow_any's (a Sidecar's egress proxy), else PassthroughCluster."""
    if policy is OutboundTrafficPolicy.ALLOW_ANY:
        action = RouteAction(cluster=cluster or names.PASSTHROUGH_CLUSTER)
        set_duration(action.timeout, 0)
        set_duration(action.max_stream_duration.max_stream_duration, 0)
        route = Route(name=ALLOW_ANY_VIRTUAL_HOST, match=translate_route_match(None), route=action)
        return VirtualHost(name=ALLOW_ANY_VIRTUAL_HOST, domains=["*"], routes=[route])
    route = Route(
        name=BLOCK_ALL_VIRTUAL_HOST, match=translate_route_match(None), direct_response=DirectResponseAction(status=502)
    )
    return VirtualHost(name=BLOCK_ALL_VIRTUAL_HOST, domains=["*"], routes=[route])
