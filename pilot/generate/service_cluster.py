"""The outbound cluster a proxy's own filters call a mesh service through (Istio's ``model.LookupCluster``): the
JWKS fetch of ``jwt_authn``, ext_authz providers, tracers. One lookup, so that every such caller agrees on which
services qualify and says the same reason when one does not."""

from __future__ import annotations

from meshplane import names
from pilot.model.types import MeshSnapshot

__all__ = ["lookup_cluster"]


def lookup_cluster(snapshot: MeshSnapshot, host: str, port: int, *, namespace: str | None = None) -> str:
    """``outbound|<port>||<host>`` of the registry service ``host`` (in ``namespace``, when given) with ``port``;
    ``LookupError`` with the reason when there is none."""
    service = snapshot.services.get(host)
    if service is None or (namespace is not None and service.namespace != namespace):
        where = f" in namespace {namespace}" if namespace is not None else ""
        raise LookupError(f"could not find service {host}{where} in the service registry")
    if service.port(port) is None:
        raise LookupError(f"service {host} has no port {port}")
    return names.outbound_cluster_name(port, "", host)
