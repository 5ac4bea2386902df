"""AUTO_PASSTHROUGH gateway servers: Istio's SNI-DNAT, how an east-west (multi-network) gateway forwards mesh mTLS
it does not terminate, with no VirtualService (Istio 1.21+'s ``builtAutoPassthroughFilterChains`` and
``buildOutboundSniDnatClusters``).

A client sidecar's Istio mutual TLS names its destination in the SNI: ``outbound_.<port>_.<subset>_.<host>``
(``cluster_tls.outbound_sni``). On a gateway proxy with an AUTO_PASSTHROUGH server:

- clusters (CDS, the proxy's own): one SNI-DNAT cluster of that name per service port (and per subset of the
  DestinationRule the gateway sees) of every MESH_INTERNAL service the gateway sees whose host a server host
  covers (``*.local``; a ``namespace/`` prefix narrows to that namespace's services: ``./`` the Gateway's, ``*/``
  any), resolved as the outbound cluster is, with the DestinationRule's traffic policy but **no** TLS of its own:
  the bytes are the client's TLS. Services without addresses of their own (resolution NONE) have none;
- endpoints (EDS, the proxy's own): the service's endpoints that take Istio mTLS only (a sidecar, not opted out,
  mTLS not DISABLEd on the port: ``pilot.model.mtls.istio_tls_endpoint``), so the gateway can only deliver to a
  proxy that checks the client's certificate;
- listener: per such cluster a filter chain matching exactly its name as SNI and one of Istio's mTLS ALPNs (a
  client that is not a mesh sidecar matches no chain and is closed), a ``tcp_proxy`` to it; nothing decrypted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_components_pb2 import FilterChain

from pilot.config.hosts import host_matches
from pilot.config.types import Resolution
from pilot.generate._protos import load_assignment, network_filter
from pilot.generate.cluster_tls import outbound_sni
from pilot.generate.clusters import (
    OutboundClusterKey,
    build_outbound_cluster,
    key_traffic_policy,
    outbound_cluster_keys,
    subset_endpoints,
)
from pilot.generate.filter_chains import TCP_PROXY, build_filter_chain, build_tcp_proxy
from pilot.generate.gateway_ports import gateway_ports
from pilot.generate.listener_tls import MESH_ALPNS
from pilot.generate.locality_lb import apply_locality_to_assignment
from pilot.model.gateways import SelectedServer, is_router
from pilot.model.mtls import istio_tls_endpoint
from pilot.model.types import Endpoint, MeshSnapshot, Proxy, Service

__all__ = [
    "auto_passthrough_chains",
    "build_sni_dnat_clusters",
    "build_sni_dnat_load_assignments",
    "is_auto_passthrough",
    "sni_dnat_keys",
]


def is_auto_passthrough(server: SelectedServer) -> bool:
    tls = server.server.tls
    return tls is not None and tls.mode == "AUTO_PASSTHROUGH"


def _auto_passthrough_servers(proxy: Proxy, snapshot: MeshSnapshot) -> list[SelectedServer]:
    if not is_router(proxy):
        return []
    return [server for port in gateway_ports(proxy, snapshot) for server in port.servers if is_auto_passthrough(server)]


def _admits(server: SelectedServer, service: Service) -> bool:
    """Whether one of the server's hosts covers the service's host, in a namespace it names."""
    for written in server.server.hosts:
        namespace, slash, host = written.partition("/")
        if not slash:
            namespace, host = "*", written
        wanted = server.namespace if namespace == "." else namespace
        if wanted in ("*", service.namespace) and host_matches(host, service.host):
            return True
    return False


def _reachable(service: Service) -> bool:
    return service.mesh_internal and service.resolution is not Resolution.NONE and not service.host.startswith("*")


def sni_dnat_keys(
    proxy: Proxy, snapshot: MeshSnapshot, server: SelectedServer | None = None
) -> Iterator[OutboundClusterKey]:
    """The SNI-DNAT clusters of the proxy (of ``server`` only, when given): outbound cluster keys renamed to
    ``outbound_.<port>_.<subset>_.<host>``, in the outbound clusters' order."""
    servers = [server] if server is not None else _auto_passthrough_servers(proxy, snapshot)
    if not servers:
        return
    for key in outbound_cluster_keys(snapshot, proxy.namespace, proxy.sidecar, proxy.view):
        if _reachable(key.service) and any(_admits(s, key.service) for s in servers):
            subset = key.subset.name if key.subset is not None else ""
            yield dataclasses.replace(key, name=outbound_sni(key.port.number, subset, key.service.host))


def build_sni_dnat_clusters(proxy: Proxy, snapshot: MeshSnapshot) -> list[Cluster]:
    """The proxy's SNI-DNAT clusters: no TLS of their own, the DestinationRule's traffic policy."""
    return [build_outbound_cluster(key, snapshot, upstream_tls=False) for key in sni_dnat_keys(proxy, snapshot)]


def _mtls_endpoints(key: OutboundClusterKey, snapshot: MeshSnapshot) -> tuple[Endpoint, ...]:
    return tuple(
        e
        for e in subset_endpoints(key)
        if e.workload is not None
        and (workload := snapshot.workloads.get(e.workload)) is not None
        and istio_tls_endpoint(snapshot, workload, key.port)
    )


def build_sni_dnat_load_assignments(proxy: Proxy, snapshot: MeshSnapshot) -> list[ClusterLoadAssignment]:
    """The assignments of the proxy's EDS SNI-DNAT clusters: the endpoints that take Istio mTLS only."""
    assignments: list[ClusterLoadAssignment] = []
    for key in sni_dnat_keys(proxy, snapshot):
        if not key.eds:
            continue
        members = _mtls_endpoints(key, snapshot)
        assignment = load_assignment(key.name, members)
        apply_locality_to_assignment(assignment, key_traffic_policy(key), key.view, members)
        assignments.append(assignment)
    return assignments


def auto_passthrough_chains(proxy: Proxy, server: SelectedServer, snapshot: MeshSnapshot) -> Sequence[FilterChain]:
    """One chain per SNI-DNAT cluster of ``server``: SNI exactly the cluster's name, an Istio mTLS ALPN, a
    ``tcp_proxy`` to it."""
    chains: list[FilterChain] = []
    for key in sni_dnat_keys(proxy, snapshot, server):
        chain = build_filter_chain([network_filter(TCP_PROXY, build_tcp_proxy(stat_prefix=key.name, cluster=key.name))])
        chain.filter_chain_match.server_names.append(key.name)
        chain.filter_chain_match.application_protocols.extend(MESH_ALPNS)
        chains.append(chain)
    return chains
