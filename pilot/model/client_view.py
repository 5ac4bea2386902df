"""What, beyond its namespace, decides a client proxy's outbound clusters, endpoints and routes: which DestinationRules
with a ``workloadSelector`` select it, and (when some rule balances by locality) its locality and the labels that
``failoverPriority`` compares (Istio ``proxy.Locality`` / ``proxy.Labels`` in the endpoint builder).

Proxies with the same namespace and view share those resources; the view stays empty (the namespace alone decides, as
before) unless some rule needs it, so that a mesh without such rules shares one set per namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pilot.config.types import ConfigKey, DestinationRule, Labels, LoadBalancer, TrafficPolicy

__all__ = [
    "EMPTY_VIEW",
    "NO_LOCALITY_NEEDS",
    "TOPOLOGY_LABELS",
    "ClientView",
    "LocalityNeeds",
    "locality_needs",
    "topology_labels",
]

# Istio's well-known labels: the locality of a workload as labels (``AugmentLabels``), which failoverPriority names.
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
TOPOLOGY_LABELS = (REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientView:
    selected_rules: tuple[ConfigKey, ...] = ()  # the workloadSelector rules of the namespace that select the proxy
    locality: str | None = None  # ``region/zone/subzone`` when some rule balances by locality; else None
    failover_labels: tuple[tuple[str, str], ...] = ()  # the proxy's values of the labels failoverPriority names


EMPTY_VIEW = ClientView()


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityNeeds:
    """Whether any rule of the snapshot balances by locality (an outlier detection enables Istio's automatic
    failover; ``distribute`` weights localities), and the label names its ``failoverPriority`` lists compare."""

    locality: bool = False
    label_keys: frozenset[str] = frozenset()


NO_LOCALITY_NEEDS = LocalityNeeds()


def _policies(rule: DestinationRule) -> Iterator[TrafficPolicy]:
    if rule.traffic_policy is not None:
        yield rule.traffic_policy
    for subset in rule.subsets:
        if subset.traffic_policy is not None:
            yield subset.traffic_policy


def _balancers(policy: TrafficPolicy) -> Iterator[tuple[LoadBalancer | None, bool]]:
    yield policy.load_balancer, policy.outlier_detection is not None
    for setting in policy.port_level_settings:
        yield setting.load_balancer, setting.outlier_detection is not None


def locality_needs(rules: Iterable[DestinationRule], *, endpoint_localities: bool) -> LocalityNeeds:
    """``endpoint_localities``: whether any endpoint has a locality. Without one, failover by locality puts every
    endpoint at priority 0 for every client, so an outlier detection alone does not make the locality matter
    (``distribute`` does: it drops the endpoints of localities it does not name)."""
    locality = False
    keys: set[str] = set()
    for rule in rules:
        for policy in _policies(rule):
            for balancer, outlier in _balancers(policy):
                setting = balancer.locality_lb_setting if balancer is not None else None
                distribute = setting is not None and bool(setting.distribute)
                locality = locality or distribute or (outlier and endpoint_localities)
                if setting is not None:
                    keys.update(label.partition("=")[0] for label in setting.failover_priority)
    return LocalityNeeds(locality=locality or bool(keys), label_keys=frozenset(keys))


def topology_labels(labels: Labels, locality: str) -> Mapping[str, str]:
    """``labels`` with the locality's region, zone and subzone as Istio's topology labels (where not set already)."""
    parts = locality.split("/") if locality else []
    derived = {label: part for label, part in zip(TOPOLOGY_LABELS, parts, strict=False) if part}
    return {**derived, **labels}
