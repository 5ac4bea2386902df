"""The name table a sidecar's DNS proxy answers from (Istio's NDS, ``pkg/dns/server/name_table.go``).

One ``NameTable`` per proxy namespace and Sidecar: every service host the namespace's proxies see (``exportTo``, and the
Sidecar's egress hosts) that has VIPs
(``snapshot.vips``: its own addresses, else one auto-allocated), mapped to those VIPs. Wildcard hosts are left out:
no single name resolves to them, and a VIP cannot stand for a wildcard. A Kubernetes-style host
``<name>.<ns>.svc.<domain suffix>`` also carries ``shortname``/``namespace``, so that the agent answers ``name``
(in ``ns``), ``name.ns`` and ``name.ns.svc`` for it, as Istio's agent does for its Kubernetes services; every other
host (a ServiceEntry's external ``api.example.com``) is answered by its own name only.

``registry`` is the registry the service comes from (``External`` for ServiceEntries, Istio's provider names).
Istio's own agent expands short names only for ``registry: Kubernetes``; meshplane's agent expands them for every
entry that has a ``shortname`` and ``namespace``, since here in-mesh services are ServiceEntries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable, Sequence

from meshplane.nds.v1.nds_pb2 import NameTable
from pilot.config.types import ConfigKey
from pilot.generate.clusters import sidecar_part
from pilot.model import KUBERNETES_PROVIDER, SERVICE_ENTRY_PROVIDER, MeshSnapshot, Proxy, Service
from pilot.model.sidecar_scope import egress_scope
from pilot.model.visibility import service_visible

__all__ = [
    "NAME_TABLE_SCOPE",
    "build_name_table",
    "build_proxy_name_table",
    "build_scope_name_table",
    "name_table_scopes",
    "namespace_name_table",
]

NAME_TABLE_SCOPE = "name_table"


def build_name_table(proxy: Proxy, snapshot: MeshSnapshot) -> NameTable:
    """The name table of ``proxy`` (the one of its namespace and Sidecar)."""
    return namespace_name_table(proxy.namespace, snapshot, proxy.sidecar)


def namespace_name_table(namespace: str, snapshot: MeshSnapshot, sidecar: ConfigKey | None = None) -> NameTable:
    """Every host the proxies of ``namespace`` see (under ``sidecar``: the hosts it admits on some port), with its
    VIPs (see the module's docstring)."""
    scope = egress_scope(snapshot, (namespace, sidecar))
    table = NameTable()
    for host in sorted(snapshot.services):
        service = snapshot.services[host]
        ips = [address for address in snapshot.vips.get(host, ()) if _is_ip(address)]
        if host.startswith("*") or not ips or not service_visible(service, namespace, snapshot):
            continue
        if not any(scope.sees_port(host, port) for port in service.ports):
            continue
        info = table.table[host]
        info.ips.extend(ips)
        info.registry = _registry(service)
        short = _kubernetes_name(host, snapshot.domain_suffix)
        if short is not None:
            info.shortname, info.namespace = short
    return table


def name_table_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    """The proxies of one namespace under one Sidecar share one name table."""
    return [(NAME_TABLE_SCOPE, proxy.namespace, *sidecar_part(proxy.sidecar))]


def build_scope_name_table(scope: Sequence[Hashable], snapshot: MeshSnapshot) -> list[NameTable]:
    match tuple(scope):
        case (str(prefix), str(namespace)) if prefix == NAME_TABLE_SCOPE and namespace:
            return [namespace_name_table(namespace, snapshot)]
        case (str(prefix), str(namespace), ConfigKey() as sidecar) if prefix == NAME_TABLE_SCOPE and namespace:
            return [namespace_name_table(namespace, snapshot, sidecar)]
    raise ValueError(f"not a name table scope: {scope!r}")


def build_proxy_name_table(proxy: Proxy, snapshot: MeshSnapshot) -> list[NameTable]:
    """Nothing of a proxy's own: its namespace's table is all it gets."""
    del proxy, snapshot
    return []


def _kubernetes_name(host: str, domain_suffix: str) -> tuple[str, str] | None:
    """(name, namespace) of ``<name>.<namespace>.svc.<domain suffix>``, else None."""
    suffix = f".svc.{domain_suffix}"
    if not host.endswith(suffix):
        return None
    labels = host[: -len(suffix)].split(".")
    if len(labels) != 2 or not all(labels):
        return None
    return labels[0], labels[1]


def _registry(service: Service) -> str:
    return SERVICE_ENTRY_PROVIDER if service.source.kind == "ServiceEntry" else KUBERNETES_PROVIDER


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False  # a CIDR among a ServiceEntry's addresses: no DNS answer for it (as Istio)
    return True
