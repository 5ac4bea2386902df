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

from pilot.generate._protos import load_assignment
from pilot.generate._tls import has_sds
from pilot.generate.cluster_tls import mark_istio_endpoints
from pilot.generate.clusters import outbound_cluster_keys, subset_endpoints
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "EDS_SCOPE",
    "EDS_SDS_SCOPE",
    "build_proxy_load_assignments",
    "build_scope_load_assignments",
    "endpoint_scopes",
]

EDS_SCOPE: tuple[Hashable, ...] = ("eds",)
EDS_SDS_SCOPE: tuple[Hashable, ...] = ("eds", "sds")  # with auto mTLS endpoint metadata


def endpoint_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    """Every sidecar may ask for any outbound cluster's endpoints; the assignments are shared by all the proxies
    with SDS, and by all those without."""
    return [EDS_SDS_SCOPE if has_sds(proxy) else EDS_SCOPE]


def build_scope_load_assignments(scope: Sequence[Hashable], snapshot: MeshSnapshot) -> list[ClusterLoadAssignment]:
    """The assignment of every EDS cluster, named like it; subset clusters get the endpoints whose labels match
    the subset's. Ordering is the clusters' order, endpoints grouped by locality then by (address, port)."""
    if tuple(scope) not in (EDS_SCOPE, EDS_SDS_SCOPE):
        raise ValueError(f"unknown endpoint scope {scope!r}: expected {EDS_SCOPE!r} or {EDS_SDS_SCOPE!r}")
    sds = tuple(scope) == EDS_SDS_SCOPE
    assignments: list[ClusterLoadAssignment] = []
    for key in outbound_cluster_keys(snapshot):
        if not key.eds:
            continue
        members = subset_endpoints(key)
        assignment = load_assignment(key.name, members)
        if sds:
            mark_istio_endpoints(assignment, members, snapshot, key.port)
        assignments.append(assignment)
    return assignments


def build_proxy_load_assignments(proxy: Proxy, snapshot: MeshSnapshot) -> list[ClusterLoadAssignment]:
    """Inbound clusters carry their single endpoint inline: no proxy has assignments of its own."""
    return []
