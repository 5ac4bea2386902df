"""EDS: one ClusterLoadAssignment per EDS cluster of ``clusters.py`` (Istio ``pilot/pkg/xds/eds.go``).

Every EDS cluster gets its assignment, even an empty one: Envoy keeps a cluster warming until its first
assignment arrives, and a listener whose routes name a warming cluster waits with it.

Proxies with Citadel's SDS get their own copy, in which the endpoints that take auto mTLS carry Istio's
``tlsMode: istio`` metadata (``cluster_tls.mark_istio_endpoints``); proxies without SDS get the assignments as
they were before mTLS existed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from pilot.config.types import ConfigKey
from pilot.generate._protos import load_assignment
from pilot.generate._tls import has_sds
from pilot.generate.cluster_tls import mark_istio_endpoints
from pilot.generate.clusters import (
    key_traffic_policy,
    outbound_cluster_keys,
    parse_scope,
    sidecar_part,
    subset_endpoints,
    view_part,
)
from pilot.generate.gateway_sni_dnat import build_sni_dnat_load_assignments
from pilot.generate.locality_lb import apply_locality_to_assignment
from pilot.model.client_view import EMPTY_VIEW, ClientView
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "EDS_SCOPE",
    "EDS_SDS_SCOPE",
    "build_proxy_load_assignments",
    "build_scope_load_assignments",
    "endpoint_scope",
    "endpoint_scopes",
]

EDS_SCOPE: tuple[Hashable, ...] = ("eds",)
EDS_SDS_SCOPE: tuple[Hashable, ...] = ("eds", "sds")  # with auto mTLS endpoint metadata


def endpoint_scope(
    *, sds: bool, namespace: str, sidecar: ConfigKey | None = None, view: ClientView = EMPTY_VIEW
) -> tuple[Hashable, ...]:
    """The shared assignments of the proxies of ``namespace`` under ``sidecar`` and with ``view`` (when not empty)
    with (or without) Citadel's SDS."""
    return (*(EDS_SDS_SCOPE if sds else EDS_SCOPE), namespace, *sidecar_part(sidecar), *view_part(view))


def endpoint_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    """A sidecar may ask for any of its outbound clusters' endpoints; the assignments are shared by the proxies of
    one namespace (its DestinationRules decide the subsets) under one Sidecar (it decides the services) and with
    one view (selector rules, and the locality when some rule balances by locality) with SDS, and by those without."""
    return [endpoint_scope(sds=has_sds(proxy), namespace=proxy.namespace, sidecar=proxy.sidecar, view=proxy.view)]


def build_scope_load_assignments(scope: Sequence[Hashable], snapshot: MeshSnapshot) -> list[ClusterLoadAssignment]:
    """The assignment of every EDS cluster, named like it; subset clusters get the endpoints whose labels match
    the subset's. Ordering is the clusters' order, endpoints grouped by locality then by (address, port); with a
    locality in the view, each group has its priority (and weight) for clients there (``locality_lb``)."""
    which, namespace, sidecar, view = parse_scope(scope, (EDS_SCOPE, EDS_SDS_SCOPE))
    sds = which == 1
    assignments: list[ClusterLoadAssignment] = []
    for key in outbound_cluster_keys(snapshot, namespace, sidecar, view):
        if not key.eds:
            continue
        members = subset_endpoints(key)
        assignment = load_assignment(key.name, members)
        if sds:
            mark_istio_endpoints(assignment, members, snapshot, key.port)
        apply_locality_to_assignment(assignment, key_traffic_policy(key), view, members)
        assignments.append(assignment)
    return assignments


def build_proxy_load_assignments(proxy: Proxy, snapshot: MeshSnapshot) -> list[ClusterLoadAssignment]:
    """Inbound clusters carry their single endpoint inline; a gateway's SNI-DNAT clusters (AUTO_PASSTHROUGH
    servers, ``gateway_sni_dnat``) are its own, and so are their assignments."""
    return build_sni_dnat_load_assignments(proxy, snapshot)
