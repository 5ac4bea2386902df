"""Locality load balancing of one client's endpoints (Istio ``loadbalancer.ApplyLocalityLoadBalancer``).

An outbound ClusterLoadAssignment groups the endpoints by locality (``_protos.locality_lb_endpoints``). For a client
in locality L, with the cluster's effective ``localityLbSetting`` (``effective_locality_setting``):

- ``distribute`` (the first entry whose ``from`` matches L): each group matching a ``to`` locality gets that share
  of the weight, split over the matching groups by their own weights (Istio ``applyLocalityWeights``: rounded up);
  groups that no ``to`` matches lose their endpoints;
- else, with outlier detection (failover needs it: Envoy only moves to a lower priority when endpoints are ejected):
  ``failoverPriority`` splits each group by how many of the listed labels (the client's value, or ``label=value``)
  the endpoint shares, in order (Istio ``applyFailoverPriorities``); then, unless only failoverPriority is given,
  the priority by locality (Istio ``applyLocalityFailover``): 0 same region/zone/subzone, 1 same zone, 2 same
  region, 3 another region, 4 a region that ``failover`` does not name for L's region. Priorities are then made
  consecutive, as Envoy requires.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from math import ceil

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Locality
from envoy.config.endpoint.v3.endpoint_components_pb2 import LocalityLbEndpoints
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from pilot.config.types import LocalityDistribute, LocalityFailover, LocalityLbSetting
from pilot.generate._protos import parse_locality
from pilot.generate.cluster_load_balancer import effective_locality_setting, locality_failover_enabled
from pilot.generate.cluster_traffic_policy import ClusterTrafficPolicy
from pilot.model.client_view import ClientView, topology_labels
from pilot.model.types import Endpoint

__all__ = [
    "apply_locality_load_balancing",
    "apply_locality_to_assignment",
    "locality_match",
    "locality_priority",
]


def locality_match(locality: Locality, pattern: str) -> bool:
    """Istio ``LocalityMatch``: ``region[/zone[/subzone]]`` where ``*`` or a missing part matches anything."""
    region, zone, sub_zone = ([*pattern.split("/", 2), "", ""])[:3]
    return (
        (region == "*" or locality.region == region)
        and (zone in ("*", "") or locality.zone == zone)
        and (sub_zone in ("*", "") or locality.sub_zone == sub_zone)
    )


def locality_priority(client: Locality, endpoint: Locality) -> int:
    """Istio ``LbPriority``: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere."""
    if client.region != endpoint.region:
        return 3
    if client.zone != endpoint.zone:
        return 2
    return 0 if client.sub_zone == endpoint.sub_zone else 1


def apply_locality_load_balancing(
    cluster: Cluster, policy: ClusterTrafficPolicy, view: ClientView, members: Sequence[Endpoint]
) -> None:
    """The inline endpoints of a (DNS) cluster, for the client of ``view``."""
    if cluster.HasField("load_assignment"):
        apply_locality_to_assignment(cluster.load_assignment, policy, view, members)


def apply_locality_to_assignment(
    assignment: ClusterLoadAssignment,
    policy: ClusterTrafficPolicy | None,
    view: ClientView,
    members: Sequence[Endpoint],
) -> None:
    """Set the priorities and weights of ``assignment`` (built from ``members``) for the client of ``view``."""
    if view.locality is None or policy is None or not assignment.endpoints:
        return
    setting = effective_locality_setting(policy.load_balancer)
    if setting is None:
        return
    client = parse_locality(view.locality)
    if setting.distribute:
        _apply_distribute(assignment, client, setting.distribute)
        return
    if not locality_failover_enabled(setting, policy.outlier_detection is not None):
        return
    if setting.failover_priority:
        _apply_failover_priority(assignment, members, dict(view.failover_labels), setting)
        if not setting.failover:
            return
    _apply_locality_failover(assignment, client, setting.failover)


def _apply_distribute(
    assignment: ClusterLoadAssignment, client: Locality, distribute: Sequence[LocalityDistribute]
) -> None:
    rule = next((entry for entry in distribute if locality_match(client, entry.from_)), None)
    if rule is None:
        return
    unmatched = set(range(len(assignment.endpoints)))
    for pattern, share in rule.to:
        matched = {
            i: _weight(assignment.endpoints[i])
            for i in sorted(unmatched)
            if locality_match(assignment.endpoints[i].locality, pattern)
        }
        unmatched -= matched.keys()
        total = sum(matched.values())
        for index, weight in matched.items():
            value = ceil(weight * share / total)
            if value > 0:
                assignment.endpoints[index].load_balancing_weight.value = value
    for index in unmatched:
        del assignment.endpoints[index].lb_endpoints[:]


def _weight(group: LocalityLbEndpoints) -> int:
    return group.load_balancing_weight.value if group.HasField("load_balancing_weight") else 1


def _apply_locality_failover(
    assignment: ClusterLoadAssignment, client: Locality, failover: Sequence[LocalityFailover]
) -> None:
    """Istio ``applyLocalityFailover``, combined with priorities already set by failoverPriority (times 5)."""
    for group in assignment.endpoints:
        priority = locality_priority(client, group.locality)
        if priority == 3:
            for entry in failover:
                if entry.from_ == client.region:
                    if group.locality.region != entry.to:
                        priority = 4
                    break
        group.priority = group.priority * 5 + priority
    _compact(assignment)


def _compact(assignment: ClusterLoadAssignment) -> None:
    """Envoy requires priorities 0..N without gaps."""
    ranks = {priority: rank for rank, priority in enumerate(sorted({g.priority for g in assignment.endpoints}))}
    for group in assignment.endpoints:
        group.priority = ranks[group.priority]


def _grouped(members: Sequence[Endpoint]) -> list[list[Endpoint]]:
    """``members`` grouped as ``_protos.locality_lb_endpoints`` groups them (by locality, sorted)."""
    groups: dict[str, list[Endpoint]] = defaultdict(list)
    for endpoint in members:
        groups[endpoint.locality].append(endpoint)
    return [group for _, group in sorted(groups.items())]


def _label_priority(endpoint: Endpoint, labels: Sequence[str], wanted: Mapping[str, str]) -> int:
    """Istio ``applyFailoverPriorityPerLocality``: 0 when every label agrees, else the lower the earlier the first
    label that differs (N for the first of N labels)."""
    present = topology_labels(endpoint.labels, endpoint.locality)
    for index, label in enumerate(labels):
        if wanted.get(label) != present.get(label):
            return len(labels) - index
    return 0


def _apply_failover_priority(
    assignment: ClusterLoadAssignment,
    members: Sequence[Endpoint],
    client_labels: Mapping[str, str],
    setting: LocalityLbSetting,
) -> None:
    if not client_labels and not any("=" in label for label in setting.failover_priority):
        return  # Istio: a client without labels keeps the groups as they are
    names = [label.partition("=")[0] for label in setting.failover_priority]
    wanted = dict(client_labels)
    wanted.update(dict(label.split("=", 1) for label in setting.failover_priority if "=" in label))
    split: list[LocalityLbEndpoints] = []
    for group, endpoints in zip(assignment.endpoints, _grouped(members), strict=True):
        by_priority: dict[int, list[int]] = defaultdict(list)
        for index, endpoint in enumerate(endpoints):
            by_priority[_label_priority(endpoint, names, wanted)].append(index)
        for priority in sorted(by_priority):
            part = LocalityLbEndpoints()
            part.CopyFrom(group)
            del part.lb_endpoints[:]
            part.lb_endpoints.extend(group.lb_endpoints[i] for i in by_priority[priority])
            part.priority = priority
            part.load_balancing_weight.value = sum(
                group.lb_endpoints[i].load_balancing_weight.value for i in by_priority[priority]
            )
            split.append(part)
    del assignment.endpoints[:]
    assignment.endpoints.extend(split)
    _compact(assignment)
