"""DestinationRule ``consistentHash`` -> ``RouteAction.hash_policy`` on the routes to its clusters (Istio
``consistentHashToHashPolicy``, ``hashForService`` and ``hashForVirtualService``).

The cluster takes RING_HASH or MAGLEV (``cluster_load_balancer``); what the hash is computed from is the route's:
a header, a cookie (Envoy generates it with the TTL and path when the request has none), the source IP, or a query
parameter. A route to one cluster gets that cluster's policy; a weighted route gets the policy of each destination
that has one, in order (as Istio appends them). The policy is the one the cluster itself applies: its port's
settings, with its subset's merged in (``clusters.key_traffic_policy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from envoy.config.route.v3.route_components_pb2 import Route, RouteAction

from meshplane import names
from pilot.config.types import ConsistentHash, HTTPRoute, VirtualService
from pilot.generate._protos import duration
from pilot.generate.cluster_traffic_policy import merge_subset_traffic_policy, port_traffic_policy
from pilot.generate.route_action import RouteContext, ServicePorts, destination_cluster
from pilot.model import destination_rule_for
from pilot.model.client_view import ClientView
from pilot.model.types import MeshSnapshot

__all__ = [
    "HashPolicies",
    "apply_hash_policies",
    "cluster_consistent_hash",
    "hash_built_routes",
    "route_clusters",
    "translate_hash_policy",
    "virtual_host_hash_policies",
]

HashPolicies = tuple[tuple[str, ConsistentHash], ...]  # (cluster name, its consistent hash), sorted by name


def translate_hash_policy(hashing: ConsistentHash) -> RouteAction.HashPolicy | None:
    """Istio ``consistentHashToHashPolicy``; None when the rule names no hash key (Envoy then hashes nothing: the
    ring picks at random, as in Istio)."""
    policy = RouteAction.HashPolicy()
    if hashing.http_header_name:
        policy.header.header_name = hashing.http_header_name
    elif hashing.http_cookie is not None:
        cookie = hashing.http_cookie
        policy.cookie.name = cookie.name
        policy.cookie.path = cookie.path
        policy.cookie.ttl.FromTimedelta(duration(cookie.ttl))
    elif hashing.use_source_ip:
        policy.connection_properties.source_ip = True
    elif hashing.http_query_parameter_name:
        policy.query_parameter.name = hashing.http_query_parameter_name
    else:
        return None
    return policy


def cluster_consistent_hash(
    snapshot: MeshSnapshot, cluster: str, namespace: str, view: ClientView
) -> ConsistentHash | None:
    """The consistent hash the outbound ``cluster`` balances by, for clients of ``namespace`` and ``view``."""
    try:
        port, subset, host = names.parse_outbound_cluster_name(cluster)
    except ValueError:
        return None
    rule = destination_rule_for(snapshot, host, namespace, view)
    if rule is None:
        return None
    policy = rule.traffic_policy
    if subset:
        chosen = next((s for s in rule.subsets if s.name == subset), None)
        resolved = merge_subset_traffic_policy(policy, chosen.traffic_policy if chosen else None, port)
    else:
        resolved = port_traffic_policy(policy, port)
    balancer = resolved.load_balancer if resolved is not None else None
    return balancer.consistent_hash if balancer is not None else None


def _route_clusters(rules: Sequence[VirtualService], contexts: Sequence[RouteContext]) -> Iterable[str]:
    """The clusters the HTTP routes of ``rules`` (all of them: Istio merges a host's VirtualServices, delegates
    already in their roots) send to, each rule's with its own context."""
    http: HTTPRoute
    for rule, ctx in zip(rules, contexts, strict=True):
        for http in rule.http:
            for destination in http.route:
                yield destination_cluster(destination.destination, ctx)


def _hash_policies(snapshot: MeshSnapshot, clusters: Iterable[str], namespace: str, view: ClientView) -> HashPolicies:
    found = ((cluster, cluster_consistent_hash(snapshot, cluster, namespace, view)) for cluster in sorted(clusters))
    return tuple((cluster, hashing) for cluster, hashing in found if hashing is not None)


def virtual_host_hash_policies(
    snapshot: MeshSnapshot,
    *,
    host: str,
    port: int,
    rules: Sequence[VirtualService],
    namespace: str,
    view: ClientView,
    service_ports: ServicePorts,
) -> HashPolicies:
    """The consistent hashes of the clusters the virtual host's routes (the rules' merged routes, and the default
    route) send to, for clients of ``namespace`` and ``view``."""
    contexts = [
        RouteContext(
            vs_namespace=rule.meta.key.namespace,
            vs_name=rule.meta.key.name,
            port=port,
            domain_suffix=snapshot.domain_suffix,
            service_ports=service_ports,
        )
        for rule in rules
    ]
    clusters = {names.outbound_cluster_name(port, "", host), *_route_clusters(rules, contexts)}
    return _hash_policies(snapshot, clusters, namespace, view)


def route_clusters(routes: Iterable[Route]) -> Iterator[str]:
    """The clusters built routes send to (each weighted cluster with a weight)."""
    for route in routes:
        if route.WhichOneof("action") != "route":
            continue
        action = route.route
        if action.WhichOneof("cluster_specifier") == "cluster":
            yield action.cluster
        else:
            yield from (c.name for c in action.weighted_clusters.clusters if c.weight.value > 0)


def hash_built_routes(routes: Sequence[Route], snapshot: MeshSnapshot, namespace: str, view: ClientView) -> None:
    """Add the hash policies of the clusters ``routes`` send to, for clients of ``namespace`` and ``view`` (a
    gateway's routes: built per proxy, so they read the DestinationRules directly)."""
    apply_hash_policies(routes, _hash_policies(snapshot, set(route_clusters(routes)), namespace, view))


def apply_hash_policies(routes: Iterable[Route], policies: HashPolicies) -> None:
    """Add the hash policy of each route's cluster (each weighted cluster's with a weight) to its action."""
    if not policies:
        return
    by_cluster = dict(policies)
    for route in routes:
        for cluster in route_clusters((route,)):
            hashing = by_cluster.get(cluster)
            policy = translate_hash_policy(hashing) if hashing is not None else None
            if policy is not None:
                route.route.hash_policy.append(policy)
