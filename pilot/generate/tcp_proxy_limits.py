"""DestinationRule ``connectionPool.tcp`` limits on an outbound ``tcp_proxy`` (Istio ``networkfilter.go``
``buildOutboundNetworkFiltersWithSingleDestination`` / ``...WithWeightedClusters``).

``tcp.idleTimeout`` becomes the proxy's ``idle_timeout`` (Envoy's 1h default otherwise) and
``tcp.maxConnectionDuration`` its ``max_downstream_connection_duration``: for a TCP port these close the proxied
connection (the cluster's HTTP options, where Istio puts them as well, apply to HTTP upstreams only). Istio reads
the rule's top-level policy here; meshplane reads the one the destination's cluster gets (the port's
``portLevelSettings``, the subset's policy merged in), which is the same when only the top level sets them and
keeps a port-level or subset setting from being ignored. A weighted split takes its first destination's rule
(Istio's), at port level, without subset.
"""

from __future__ import annotations

from collections.abc import Callable

from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from pilot.config.types import DestinationRule
from pilot.generate._protos import duration
from pilot.generate.cluster_traffic_policy import merge_subset_traffic_policy, port_traffic_policy
from pilot.model import destination_rule_for
from pilot.model.types import MeshSnapshot, Proxy

__all__ = ["RuleLookup", "apply_tcp_proxy_limits", "rule_lookup"]

RuleLookup = Callable[[str], DestinationRule | None]  # service FQDN -> the DestinationRule the proxy applies to it


def rule_lookup(proxy: Proxy, snapshot: MeshSnapshot) -> RuleLookup:
    """The DestinationRule ``proxy`` applies to a host (its namespace's visibility, its workloadSelector rules)."""
    return lambda host: destination_rule_for(snapshot, host, proxy.namespace, proxy.view)


def apply_tcp_proxy_limits(
    tcp_proxy: TcpProxy, rule: DestinationRule | None, port: int, subset: str = "", *, weighted: bool = False
) -> None:
    if rule is None:
        return
    subset_policy = next((s.traffic_policy for s in rule.subsets if s.name == subset), None) if subset else None
    if weighted or subset_policy is None:
        policy = port_traffic_policy(rule.traffic_policy, port)
    else:
        policy = merge_subset_traffic_policy(rule.traffic_policy, subset_policy, port)
    pool = policy.connection_pool if policy is not None else None
    if pool is None:
        return
    if pool.tcp_idle_timeout is not None:
        tcp_proxy.idle_timeout = duration(pool.tcp_idle_timeout)
    if pool.max_connection_duration is not None:
        tcp_proxy.max_downstream_connection_duration = duration(pool.max_connection_duration)
