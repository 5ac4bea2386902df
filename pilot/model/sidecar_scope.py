"""What a proxy sees under its Sidecar: Istio's ``SidecarScope`` (``pilot/pkg/model/sidecar.go``).

A proxy's outbound config is built for one ``EgressScope``: its namespace and the Sidecar that applies to it
(``sidecar_index.sidecar_for``; none: everything visible, as without Sidecars). Under a Sidecar:

- a service is in scope when some egress listener's host ``<namespace>/<dnsName>`` matches it: the namespace is
  ``*``, the service's (the namespace of the config that declares it), or ``.`` and the service is in the proxy's
  namespace (``.`` of the root namespace's mesh default is the proxy's namespace, as in Istio); ``~`` matches
  nothing; the dnsName is ``*``, a ``*.suffix`` covering the host, or the host itself;
- a VirtualService is in scope when one of its hosts matches a listener host the same way (by the
  VirtualService's namespace); the services its routes send to are then in scope of that listener too (Istio
  infers them: ``virtualServiceDestinations``);
- a listener without ``port`` admits every port of its services; a listener with ``port`` admits only service
  ports of that number and protocol (meshplane does not rebuild a service port with another protocol: a listener
  whose protocol differs admits none of it);
- clusters and endpoints: every port of every service in scope (Istio's ``SidecarScope.services``); listeners,
  route tables' virtual hosts and the agent's name table: only what the listeners admit;
- where traffic to a host outside the registry goes: the Sidecar's ``outboundTrafficPolicy``, else MeshConfig's;
  with ALLOW_ANY and an ``egressProxy``, to its cluster ``outbound|<port>|<subset>|<host>`` instead of the original
  destination (Istio's ``GetDestinationCluster``; a short host is resolved in the Sidecar's namespace), whose
  service is then in scope for its clusters; an egress proxy that names no registry service port (or an undefined
  subset) sends that traffic to ``BlackHoleCluster`` (logged ``egress_proxy_unresolved``), as Istio's reference to
  a missing cluster fails it;
- the services the proxy's own filters call are in scope whatever the Sidecar says, for their clusters and endpoints
  only (no listener, virtual host or name): MeshConfig's ext_authz extension providers' services and the registry
  services of RequestAuthentications' ``jwksUri`` (Envoy fetches the keys through ``outbound|<port>||<host>``).
  Without them a Sidecar would silently break the workload's policy (every CUSTOM check denied, every token
  rejected); Istio fetches JWKS in istiod by default, so its Sidecars cannot hide a JWKS server either.

Scopes are memoized per snapshot (``SidecarIndex.memo``), keyed like the xDS scopes (``scope_key``), so that the
generators and every proxy under one Sidecar share one computation and one set of bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

from meshplane import names
from meshplane.names import BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER
from pilot.config.hosts import host_matches, resolve_host
from pilot.config.mesh_extension_providers import ExtAuthzGrpcProvider, ExtAuthzHttpProvider, split_provider_service
from pilot.config.types import ConfigKey, ServicePort, Sidecar, SidecarHost, VirtualService
from pilot.model.build import destination_rule_for
from pilot.model.mesh_settings import OutboundTrafficPolicy
from pilot.model.types import MeshSnapshot, Proxy

__all__ = ["EgressScope", "ScopeKey", "egress_scope", "proxy_egress_scope", "scope_key"]

log = structlog.get_logger(__name__)
_warned: set[tuple[str, str]] = set()

ScopeKey = tuple[str, ConfigKey | None]  # (proxy namespace, the Sidecar in force): part of every outbound xDS scope


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class EgressScope:
    """What the proxies of ``namespace`` under ``sidecar`` see (see the module doc)."""

    namespace: str
    sidecar: Sidecar | None
    outbound_policy: OutboundTrafficPolicy
    egress_proxy_cluster: str = ""  # ALLOW_ANY's destination instead of PassthroughCluster ("": none)
    all_ports: frozenset[str] = frozenset()  # hosts admitted on every port
    filter_services: frozenset[str] = frozenset()  # called by the proxy's own filters: clusters only
    by_port: tuple[tuple[int, str, frozenset[str]], ...] = ()  # (port, protocol, hosts) of port listeners
    virtual_services: frozenset[ConfigKey] = frozenset()

    @property
    def default_cluster(self) -> str:
        """Where traffic to a destination outside the registry goes (the virtualOutbound default chain, the
        ``allow_any`` virtual host)."""
        if self.outbound_policy is not OutboundTrafficPolicy.ALLOW_ANY:
            return BLACKHOLE_CLUSTER
        return self.egress_proxy_cluster or PASSTHROUGH_CLUSTER

    @property
    def key(self) -> ScopeKey:
        return (self.namespace, self.sidecar.meta.key if self.sidecar is not None else None)

    def sees_service(self, host: str) -> bool:
        """Whether the service ``host`` is in scope (its clusters and endpoints)."""
        if self.sidecar is None or host in self.all_ports or host in self.filter_services:
            return True
        return any(host in hosts for _, _, hosts in self.by_port)

    def sees_port(self, host: str, port: ServicePort) -> bool:
        """Whether a listener admits ``host``'s ``port`` (listeners, virtual hosts, names)."""
        if self.sidecar is None or host in self.all_ports:
            return True
        return any(
            number == port.number and protocol == port.protocol.value and host in hosts
            for number, protocol, hosts in self.by_port
        )

    def sees_virtual_service(self, vs: VirtualService) -> bool:
        return self.sidecar is None or vs.meta.key in self.virtual_services


def scope_key(proxy: Proxy) -> ScopeKey:
    """The key of the proxy's egress scope: its namespace and the Sidecar that applies to it."""
    return (proxy.namespace, proxy.sidecar)


def proxy_egress_scope(proxy: Proxy, snapshot: MeshSnapshot) -> EgressScope:
    return egress_scope(snapshot, scope_key(proxy))


def egress_scope(snapshot: MeshSnapshot, key: ScopeKey) -> EgressScope:
    """The egress scope of ``key`` in ``snapshot`` (computed once per snapshot)."""
    scope: EgressScope = snapshot.derived.get(("egress", key), lambda: _compute(snapshot, key))
    return scope


def _compute(snapshot: MeshSnapshot, key: ScopeKey) -> EgressScope:
    namespace, sidecar_key = key
    sidecar = snapshot.sidecars.get(sidecar_key)
    mesh_policy = snapshot.mesh.outbound_traffic_policy
    if sidecar is None:
        return EgressScope(namespace=namespace, sidecar=None, outbound_policy=mesh_policy)
    policy = OutboundTrafficPolicy(sidecar.outbound_traffic_policy) if sidecar.outbound_traffic_policy else mesh_policy
    proxy_host, proxy_cluster = _egress_proxy(snapshot, sidecar)
    if not sidecar.egress:  # no egress listeners: Istio's default one, every host
        return EgressScope(
            namespace=namespace, sidecar=None, outbound_policy=policy, egress_proxy_cluster=proxy_cluster
        )
    catch_all: set[str] = set()
    by_port: list[tuple[int, str, frozenset[str]]] = []
    virtual: set[ConfigKey] = set()
    for listener in sidecar.egress:
        hosts = {h for h, s in snapshot.services.items() if _admits(listener.hosts, namespace, s.namespace, h)}
        rules = [vs for vs in _mesh_virtual_services(snapshot) if _admits_rule(listener.hosts, namespace, vs, snapshot)]
        virtual.update(vs.meta.key for vs in rules)
        hosts.update(_destinations(rules, snapshot))
        if listener.port is None:
            catch_all.update(hosts)
        else:
            by_port.append((listener.port.number, listener.port.protocol.value, frozenset(hosts)))
    return EgressScope(
        namespace=namespace,
        sidecar=sidecar,
        outbound_policy=policy,
        egress_proxy_cluster=proxy_cluster,
        all_ports=frozenset(catch_all),
        filter_services=frozenset([*_filter_services(snapshot), *([proxy_host] if proxy_host else [])]),
        by_port=tuple(by_port),
        virtual_services=frozenset(virtual),
    )


def _egress_proxy(snapshot: MeshSnapshot, sidecar: Sidecar) -> tuple[str, str]:
    """(the egress proxy's service host, its cluster) of the Sidecar; ("", "") without one; ("", BlackHoleCluster)
    for one that names no registry service port or subset (see the module doc)."""
    proxy = sidecar.egress_proxy
    if proxy is None or proxy.port is None:
        return "", ""
    namespace = sidecar.meta.key.namespace
    host = resolve_host(proxy.host, namespace, snapshot.domain_suffix)
    service = snapshot.services.get(host)
    problem = ""
    if service is None or service.port(proxy.port) is None:
        problem = f"no service {host} with port {proxy.port} in the registry"
    elif proxy.subset:
        rule = destination_rule_for(snapshot, host, namespace)
        if rule is None or all(subset.name != proxy.subset for subset in rule.subsets):
            problem = f"no DestinationRule defines subset {proxy.subset} of {host}"
    if problem:
        _warn_once(str(sidecar.meta.key), problem)
        return "", BLACKHOLE_CLUSTER
    return host, names.outbound_cluster_name(proxy.port, proxy.subset, host)


def _warn_once(sidecar: str, problem: str) -> None:
    if (sidecar, problem) not in _warned:
        _warned.add((sidecar, problem))
        log.warning("egress_proxy_unresolved", sidecar=sidecar, reason=f"{problem}: its traffic goes nowhere")


def _filter_services(snapshot: MeshSnapshot) -> Iterator[str]:
    """The registry services Envoy's own filters call: ext_authz providers, JWKS servers (see the module doc)."""
    for provider in snapshot.mesh.extension_providers:
        if isinstance(provider, ExtAuthzGrpcProvider | ExtAuthzHttpProvider):
            namespace, host = split_provider_service(provider.service)
            service = snapshot.services.get(host)
            if service is not None and namespace in (None, service.namespace):
                yield host
    for policies in snapshot.request_authentications.values():
        for policy in policies:
            for rule in policy.jwt_rules:
                jwks_host = urlsplit(rule.jwks_uri).hostname if rule.jwks_uri else None
                if jwks_host is not None and jwks_host in snapshot.services:
                    yield jwks_host


def _admits(hosts: tuple[SidecarHost, ...], proxy_namespace: str, config_namespace: str, host: str) -> bool:
    return any(_matches(h, proxy_namespace, config_namespace, host) for h in hosts)


def _matches(entry: SidecarHost, proxy_namespace: str, config_namespace: str, host: str) -> bool:
    wanted = entry.namespace
    if wanted == "~" or (wanted == "." and config_namespace != proxy_namespace):
        return False
    if wanted not in ("*", ".") and wanted != config_namespace:
        return False
    return entry.host == "*" or host_matches(entry.host, host)


def _mesh_virtual_services(snapshot: MeshSnapshot) -> Iterator[VirtualService]:
    seen: set[ConfigKey] = set()
    for rules in snapshot.virtual_services.values():
        for vs in rules:
            if vs.meta.key not in seen:
                seen.add(vs.meta.key)
                yield vs


def _admits_rule(
    hosts: tuple[SidecarHost, ...], proxy_namespace: str, vs: VirtualService, snapshot: MeshSnapshot
) -> bool:
    namespace = vs.meta.key.namespace
    return any(
        _admits(hosts, proxy_namespace, namespace, resolve_host(h, namespace, snapshot.domain_suffix)) for h in vs.hosts
    )


def _destinations(rules: list[VirtualService], snapshot: MeshSnapshot) -> Iterator[str]:
    """The service hosts the rules' routes send to (Istio's ``virtualServiceDestinations``)."""
    for vs in rules:
        namespace = vs.meta.key.namespace
        written = [d.destination.host for http in vs.http for d in http.route]
        written += [m.destination.host for http in vs.http for m in http.mirrors]
        written += [d.destination.host for tcp in vs.tcp for d in tcp.route]
        written += [d.destination.host for tls in vs.tls for d in tls.route]
        for host in written:
            resolved = resolve_host(host, namespace, snapshot.domain_suffix)
            if resolved in snapshot.services:
                yield resolved
