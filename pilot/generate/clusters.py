"""CDS: the outbound clusters every sidecar shares and the inbound clusters that are a proxy's own (Istio
``cluster.go`` / ``cluster_builder.go``).

Outbound: for every service port, ``outbound|<port>||<host>`` plus one ``outbound|<port>|<subset>|<host>`` per
subset of the service's DestinationRule. The cluster type follows the ServiceEntry's resolution:

- STATIC: EDS over ADS (the endpoints come from ``endpoints.py``, one ClusterLoadAssignment per EDS cluster);
- DNS: STRICT_DNS over the endpoints' addresses, or the host itself when the entry lists none;
- DNS_ROUND_ROBIN: LOGICAL_DNS (one address, connections spread by DNS);
- NONE: Istio's ORIGINAL_DST "passthrough" cluster: it connects wherever iptables captured the app's connection to.

Every sidecar also gets Istio's ``PassthroughCluster`` (ORIGINAL_DST: outbound to a destination outside the
registry under ALLOW_ANY), ``InboundPassthroughCluster`` (ORIGINAL_DST bound to 127.0.0.6: inbound to a port no
service declares) and ``BlackHoleCluster``.

Inbound: ``inbound|<port>||`` per inbound port (``inbound_ports``: the service ports the proxy's workload serves,
or its Sidecar's ``ingress`` ports), one STATIC endpoint at the app (``<pod IP>:<target port>``, or the ingress
port's ``defaultEndpoint``). The sidecar connects to the app from 127.0.0.6 (``INBOUND_SOURCE_ADDRESS``): the
capture rules let Envoy's own connections over ``lo`` to the pod IP go to virtualInbound again, except those from
127.0.0.6 (Istio's ``-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN``).

TLS (``cluster_tls.py``): outbound clusters come in two shared sets, one for proxies without SDS (plaintext and
DestinationRule SIMPLE/MUTUAL only, as before mTLS existed) and one for proxies whose bootstrap wired Citadel's
SDS (auto mTLS and ISTIO_MUTUAL besides). Inbound clusters are plaintext to the app in the same pod.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import structlog
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import SocketAddress
from envoy.config.core.v3.protocol_pb2 import Http1ProtocolOptions, Http2ProtocolOptions
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions

from meshplane import names
from pilot.config.types import ConfigKey, DestinationRule, Protocol, Resolution, ServicePort, Subset
from pilot.generate._protos import (
    HTTP_PROTOCOL_OPTIONS_KEY,
    ads_config_source,
    duration,
    load_assignment,
)
from pilot.generate._tls import has_sds
from pilot.generate.cluster_credential_tls import credential_unavailable_cluster
from pilot.generate.cluster_tls import apply_upstream_tls, mark_istio_endpoints, required_credential
from pilot.generate.cluster_traffic_policy import (
    DEFAULT_CONNECT_TIMEOUT,
    ClusterTrafficPolicy,
    apply_proxy_protocol,
    apply_traffic_policy,
    merge_subset_traffic_policy,
    port_traffic_policy,
)
from pilot.generate.inbound_ports import InboundEndpoint, inbound_ports
from pilot.generate.locality_lb import apply_locality_load_balancing
from pilot.model import destination_rule_for, labels_match
from pilot.model.client_view import EMPTY_VIEW, ClientView
from pilot.model.sidecar_scope import egress_scope
from pilot.model.types import Endpoint, MeshSnapshot, Proxy, Service

__all__ = [
    "BLACK_HOLE_CLUSTER",
    "INBOUND_SOURCE_ADDRESS",
    "OUTBOUND_SCOPE",
    "OUTBOUND_SDS_SCOPE",
    "OutboundClusterKey",
    "build_black_hole_cluster",
    "build_inbound_clusters",
    "build_inbound_passthrough_cluster",
    "build_outbound_cluster",
    "build_passthrough_cluster",
    "build_scope_clusters",
    "cluster_scopes",
    "key_traffic_policy",
    "outbound_cluster_keys",
    "outbound_scope",
    "parse_scope",
    "sidecar_part",
    "subset_endpoints",
    "upstream_http_options",
    "view_part",
]

log = structlog.get_logger(__name__)

OUTBOUND_SCOPE: tuple[Hashable, ...] = ("outbound",)  # proxies without SDS: no Citadel secrets
OUTBOUND_SDS_SCOPE: tuple[Hashable, ...] = ("outbound", "sds")  # proxies with SDS: auto mTLS, ISTIO_MUTUAL
_SCOPE_PREFIXES = (OUTBOUND_SCOPE, OUTBOUND_SDS_SCOPE)
BLACK_HOLE_CLUSTER = names.BLACKHOLE_CLUSTER  # Istio's cluster with no endpoints: traffic sent to it fails fast
INBOUND_SOURCE_ADDRESS = "127.0.0.6"  # Istio's InboundPassthroughBindIpv4: exempt from the capture rules on lo


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundClusterKey:
    """One outbound cluster to build: a service port, optionally narrowed to a DestinationRule subset."""

    name: str
    service: Service
    port: ServicePort
    rule: DestinationRule | None = None  # the service's DestinationRule, if any
    subset: Subset | None = None  # one of ``rule``'s subsets
    view: ClientView = EMPTY_VIEW  # the clients': their locality decides endpoint priorities (``locality_lb``)

    @property
    def eds(self) -> bool:
        """Whether the cluster's endpoints come over EDS (the ServiceEntry's addresses are IPs)."""
        return self.service.resolution is Resolution.STATIC


def outbound_cluster_keys(
    snapshot: MeshSnapshot, namespace: str, sidecar: ConfigKey | None = None, view: ClientView = EMPTY_VIEW
) -> Iterator[OutboundClusterKey]:
    """Every outbound cluster a proxy of ``namespace`` under ``sidecar`` (and with ``view``) gets (the services in
    its Sidecar's scope, ``pilot.model.sidecar_scope``), in a stable order: host, port number, then DestinationRule
    order; each service with the DestinationRule that proxy sees (Istio's ``exportTo``, and ``workloadSelector``).

    CDS builds one cluster per key and EDS one load assignment per EDS key, so the two always agree.
    """
    scope = egress_scope(snapshot, (namespace, sidecar))
    for service in snapshot.services.values():
        if not scope.sees_service(service.host):
            continue
        rule = destination_rule_for(snapshot, service.host, namespace, view)
        subsets = rule.subsets if rule is not None else ()
        for port in sorted(service.ports, key=lambda p: p.number):
            yield OutboundClusterKey(
                name=names.outbound_cluster_name(port.number, "", service.host),
                service=service,
                port=port,
                rule=rule,
                view=view,
            )
            for subset in subsets:
                yield OutboundClusterKey(
                    name=names.outbound_cluster_name(port.number, subset.name, service.host),
                    service=service,
                    port=port,
                    rule=rule,
                    subset=subset,
                    view=view,
                )


def key_traffic_policy(key: OutboundClusterKey) -> ClusterTrafficPolicy | None:
    """The policy of the key's cluster: its port's, with its subset's merged in (Istio ``MergeSubsetTrafficPolicy``)."""
    policy = key.rule.traffic_policy if key.rule is not None else None
    if key.subset is None:
        return port_traffic_policy(policy, key.port.number)
    return merge_subset_traffic_policy(policy, key.subset.traffic_policy, key.port.number)


def subset_endpoints(key: OutboundClusterKey) -> tuple[Endpoint, ...]:
    """The service port's endpoints, narrowed to the subset's labels when the key names a subset."""
    endpoints = key.service.endpoints.get(key.port.number, ())
    if key.subset is None:
        return endpoints
    selector = key.subset.labels
    return tuple(e for e in endpoints if labels_match(selector, e.labels))


def outbound_scope(
    *, sds: bool, namespace: str, sidecar: ConfigKey | None = None, view: ClientView = EMPTY_VIEW
) -> tuple[Hashable, ...]:
    """The shared outbound clusters of the proxies of ``namespace`` under ``sidecar`` (the Sidecar that applies to
    them, if any) and with ``view`` (``pilot.model.client_view``) with (or without) Citadel's SDS;
    ``(*prefix, namespace[, sidecar][, view])``, the Sidecar only when one applies, the view only when not empty."""
    return (*_SCOPE_PREFIXES[sds], namespace, *sidecar_part(sidecar), *view_part(view))


def sidecar_part(sidecar: ConfigKey | None) -> tuple[ConfigKey, ...]:
    """What a scope key holds of the Sidecar in force: nothing when none applies (the scopes of a mesh without
    Sidecars are as they were before Sidecars existed), else its key."""
    return (sidecar,) if sidecar is not None else ()


def view_part(view: ClientView) -> tuple[ClientView, ...]:
    """What a scope key holds of the proxy's ``ClientView``: nothing when it is empty (a mesh without selector or
    locality rules shares its scopes as before), else the view."""
    return (view,) if view != EMPTY_VIEW else ()


def cluster_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    """The sidecars (and gateways) of one namespace under one Sidecar with one ``ClientView`` get the same outbound
    clusters (the Sidecar decides which services, the namespace which DestinationRules apply, the view which
    selector rules and locality), in one of two versions: with Citadel's SDS or without."""
    return [outbound_scope(sds=has_sds(proxy), namespace=proxy.namespace, sidecar=proxy.sidecar, view=proxy.view)]


def parse_scope(
    scope: Sequence[Hashable], prefixes: Sequence[tuple[Hashable, ...]]
) -> tuple[int, str, ConfigKey | None, ClientView]:
    """(which of ``prefixes``, namespace, Sidecar, view) of a scope ``(*prefix, namespace[, sidecar][, view])``
    (``sidecar``: the key of the Sidecar in force; absent or None: none; ``view``: absent, the empty view);
    ValueError for anything else."""
    parts = tuple(scope)
    last = parts[-1] if parts else None
    view = last if isinstance(last, ClientView) else EMPTY_VIEW
    if isinstance(last, ClientView):
        parts = parts[:-1]
    sidecar: Hashable = None
    if parts and (parts[-1] is None or isinstance(parts[-1], ConfigKey)):
        parts, sidecar = parts[:-1], parts[-1]
    *prefix, namespace = parts if parts else ("",)
    if tuple(prefix) in prefixes and isinstance(namespace, str) and namespace:
        found = sidecar if isinstance(sidecar, ConfigKey) else None
        return prefixes.index(tuple(prefix)), namespace, found, view
    expected = f"one of {list(prefixes)!r} followed by a namespace (and a Sidecar key or None, and a ClientView)"
    raise ValueError(f"unknown scope {tuple(scope)!r}: expected {expected}")


def build_scope_clusters(scope: Sequence[Hashable], snapshot: MeshSnapshot) -> list[Cluster]:
    which, namespace, sidecar, view = parse_scope(scope, _SCOPE_PREFIXES)
    sds = bool(which)
    keys = outbound_cluster_keys(snapshot, namespace, sidecar, view)
    clusters = [build_outbound_cluster(key, snapshot, sds=sds) for key in keys]
    return [*clusters, build_black_hole_cluster(), build_passthrough_cluster(), build_inbound_passthrough_cluster()]


def build_passthrough_cluster() -> Cluster:
    """Istio ``buildDefaultPassthroughCluster``: to the connection's original destination (ALLOW_ANY)."""
    return _original_destination_cluster(names.PASSTHROUGH_CLUSTER)


def build_inbound_passthrough_cluster() -> Cluster:
    """Istio ``buildInboundPassthroughCluster``: to the app at the connection's original destination (a port no
    service declares), from 127.0.0.6 so that the capture rules do not send it back to virtualInbound."""
    cluster = _original_destination_cluster(names.INBOUND_PASSTHROUGH_CLUSTER)
    _bind_inbound_source(cluster)
    return cluster


def _original_destination_cluster(name: str) -> Cluster:
    return Cluster(
        name=name,
        type=Cluster.DiscoveryType.ORIGINAL_DST,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
        lb_policy=Cluster.LbPolicy.CLUSTER_PROVIDED,
    )


def _bind_inbound_source(cluster: Cluster) -> None:
    cluster.upstream_bind_config.source_address.CopyFrom(SocketAddress(address=INBOUND_SOURCE_ADDRESS, port_value=0))


def build_black_hole_cluster() -> Cluster:
    """Istio ``buildBlackHoleCluster``: STATIC with no endpoints."""
    return Cluster(
        name=BLACK_HOLE_CLUSTER,
        type=Cluster.DiscoveryType.STATIC,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
        lb_policy=Cluster.LbPolicy.ROUND_ROBIN,
    )


def upstream_http_options(protocol: Protocol) -> HttpProtocolOptions | None:
    """Istio ``setUpstreamProtocol``: HTTP/2 to HTTP2/GRPC ports; the client's protocol to ports of unknown
    protocol; nothing (HTTP/1.1, Envoy's default) otherwise."""
    if protocol.is_http2:
        return HttpProtocolOptions(
            explicit_http_config=HttpProtocolOptions.ExplicitHttpConfig(http2_protocol_options=Http2ProtocolOptions())
        )
    if protocol is Protocol.UNKNOWN:
        return HttpProtocolOptions(
            use_downstream_protocol_config=HttpProtocolOptions.UseDownstreamHttpConfig(
                http_protocol_options=Http1ProtocolOptions(),
                http2_protocol_options=Http2ProtocolOptions(),
            )
        )
    return None


def build_outbound_cluster(
    key: OutboundClusterKey, snapshot: MeshSnapshot, *, sds: bool = False, upstream_tls: bool = True
) -> Cluster:
    """One outbound cluster: discovery by resolution, TLS (``sds``: for proxies with Citadel's SDS; none with
    ``upstream_tls`` False: a gateway's SNI-DNAT clusters carry their clients' TLS, ``gateway_sni_dnat``), then the
    DestinationRule's policy for its port and subset."""
    if upstream_tls and not sds and (credential := required_credential(key.rule, key.subset, key.port.number)):
        return credential_unavailable_cluster(key.name, credential)
    resolved = key_traffic_policy(key)
    cluster = Cluster(name=key.name, common_lb_config=Cluster.CommonLbConfig())
    original_destination = key.service.resolution is Resolution.NONE
    if original_destination:
        cluster.type = Cluster.DiscoveryType.ORIGINAL_DST  # Istio: wherever the app connected to
    else:
        _set_discovery(cluster, key)
    members = subset_endpoints(key)
    if upstream_tls:
        apply_upstream_tls(
            cluster,
            service=key.service,
            port=key.port,
            rule=key.rule,
            subset=key.subset,
            endpoints=members,
            snapshot=snapshot,
            sds=sds,
        )
    if sds and cluster.transport_socket_matches and cluster.HasField("load_assignment"):
        mark_istio_endpoints(cluster.load_assignment, members, snapshot, key.port)  # EDS ones: endpoints.py
    _finish(cluster, key.port.protocol, resolved, outbound=True)
    if upstream_tls and resolved is not None:
        apply_proxy_protocol(cluster, resolved.proxy_protocol)  # Istio: not on SNI-DNAT clusters
    if original_destination:
        cluster.lb_policy = Cluster.LbPolicy.CLUSTER_PROVIDED  # the only policy Envoy takes for ORIGINAL_DST
        cluster.ClearField("lb_config")
        cluster.common_lb_config.ClearField("locality_weighted_lb_config")
    elif resolved is not None and key.view.locality is not None:
        # DNS clusters carry their endpoints inline: Istio applies the locality priorities there too
        apply_locality_load_balancing(cluster, resolved, key.view, members)
    return cluster


def _dns_endpoints(key: OutboundClusterKey) -> tuple[Endpoint, ...]:
    """The addresses a DNS cluster connects to (EDS clusters get theirs from ``endpoints.py``)."""
    service, port = key.service, key.port
    if service.endpoints.get(port.number):
        return subset_endpoints(key)
    if service.host.startswith("*"):
        # Only a DNS entry whose workloadSelector selects no workload gets here (validation rejects a wildcard host
        # with resolution NONE, or DNS with neither endpoints nor selector): ``*.example.com`` names no address, and
        # reaching whatever name a request carries would take Envoy's dynamic forward proxy.
        log.warning("wildcard_host_not_routable", cluster=key.name, host=service.host)
        return ()
    # A DNS entry without endpoints resolves its own host (Istio's ServiceEntry conversion does the same).
    # The host has no labels, so a subset that selects labels matches nothing.
    host = Endpoint(address=service.host, port=port.target_port or port.number)
    return (host,) if key.subset is None or labels_match(key.subset.labels, host.labels) else ()


def _set_discovery(cluster: Cluster, key: OutboundClusterKey) -> None:
    if key.eds:
        cluster.type = Cluster.DiscoveryType.EDS
        cluster.eds_cluster_config.service_name = key.name
        cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
        return
    endpoints = _dns_endpoints(key)
    if not endpoints:
        # Istio omits such a cluster; routes may still name it, so it exists, empty: requests fail with 503.
        log.info("cluster_without_endpoints", cluster=key.name, resolution=str(key.service.resolution))
        cluster.type = Cluster.DiscoveryType.STATIC
        cluster.load_assignment.CopyFrom(load_assignment(key.name, ()))
        return
    if key.service.resolution is Resolution.DNS:
        cluster.type = Cluster.DiscoveryType.STRICT_DNS
    else:
        cluster.type = Cluster.DiscoveryType.LOGICAL_DNS
        # Envoy accepts exactly one address for LOGICAL_DNS. Unreachable: validation allows DNS_ROUND_ROBIN at
        # most one endpoint and no workloadSelector.
        if len(endpoints) > 1:
            log.warning(
                "logical_dns_extra_endpoints_ignored",
                cluster=key.name,
                used=f"{endpoints[0].address}:{endpoints[0].port}",
                ignored=len(endpoints) - 1,
            )
            endpoints = endpoints[:1]
    # Pods on the pod network are IPv4 only (Istio: V4_ONLY for an IPv4 proxy); a shared cluster cannot follow each
    # proxy's IP family.
    cluster.dns_lookup_family = Cluster.DnsLookupFamily.V4_ONLY
    cluster.load_assignment.CopyFrom(load_assignment(key.name, endpoints))


def _finish(cluster: Cluster, protocol: Protocol, policy: ClusterTrafficPolicy | None, *, outbound: bool) -> Cluster:
    """Apply the traffic policy, then pack the upstream HTTP options (Istio ``clusterWrapper.build``)."""
    http_options = apply_traffic_policy(cluster, policy, upstream_http_options(protocol), outbound=outbound)
    if http_options is not None:
        if not http_options.HasField("explicit_http_config") and not http_options.HasField(
            "use_downstream_protocol_config"
        ):
            # Envoy requires an upstream protocol choice once the options exist: HTTP/1.1, as without them.
            http_options.explicit_http_config.http_protocol_options.SetInParent()
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY].Pack(http_options)
    return cluster


def build_inbound_clusters(proxy: Proxy, snapshot: MeshSnapshot) -> list[Cluster]:
    """Istio ``buildInboundCluster``: the app behind each inbound port (``inbound_ports``): STATIC at its address
    or unix socket, or ORIGINAL_DST for a Sidecar ingress port without ``defaultEndpoint``.

    Only a connection pool applies (so that the server side has the capacity the rule gives clients): the
    Sidecar's for the port, else the DestinationRule's top-level or matching port-level one; subsets do not apply
    to inbound traffic.
    """
    clusters: list[Cluster] = []
    for inbound in inbound_ports(proxy, snapshot):
        instance = inbound.instance
        cluster = _inbound_cluster(names.inbound_cluster_name(instance.port.number), inbound.endpoint)
        rule = destination_rule_for(snapshot, instance.service.host, proxy.namespace)
        policy = port_traffic_policy(rule.traffic_policy if rule is not None else None, instance.port.number)
        pool = inbound.connection_pool or (policy.connection_pool if policy is not None else None)
        budget = policy.retry_budget if policy is not None else None
        inbound_policy = (
            ClusterTrafficPolicy(connection_pool=pool, retry_budget=budget)
            if pool is not None or budget is not None
            else None
        )
        clusters.append(_finish(cluster, instance.port.protocol, inbound_policy, outbound=False))
    return clusters


def _inbound_cluster(name: str, endpoint: InboundEndpoint) -> Cluster:
    if endpoint.original_destination:
        cluster = _original_destination_cluster(name)
    else:
        cluster = Cluster(name=name, type=Cluster.DiscoveryType.STATIC, common_lb_config=Cluster.CommonLbConfig())
        if endpoint.socket:
            assignment = ClusterLoadAssignment(cluster_name=name)
            lb_endpoint = assignment.endpoints.add().lb_endpoints.add()
            lb_endpoint.endpoint.address.pipe.path = endpoint.socket
            cluster.load_assignment.CopyFrom(assignment)
        else:
            app = Endpoint(address=endpoint.address, port=endpoint.port)
            cluster.load_assignment.CopyFrom(load_assignment(name, (app,)))
    if endpoint.bind_source:
        _bind_inbound_source(cluster)
    return cluster
