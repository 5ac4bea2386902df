"""Several DestinationRules for one host in one namespace, merged as Istio merges them (``mergeDestinationRule``).

Istio consolidates the rules of a namespace for a host that are exported alike and select the same workloads (none,
or equal ``workloadSelector`` labels): the first one (Istio: the oldest; meshplane: namespace/name order, as it
orders VirtualServices) with the subsets of the others appended, and its ``trafficPolicy``, or the first one found
in the others when it has none. Where Istio would drop part of a later rule silently, meshplane rejects that rule
instead, naming the earlier one (a policy is never weaker than written):

- both set a top-level ``trafficPolicy`` (Istio keeps the earlier's only);
- both define a subset of the same name (Istio keeps the earlier's only);
- their ``exportTo`` differ (Istio then keeps them apart with rules of its own for which one a namespace sees:
  not supported by meshplane yet).

The store rejects the conflicts (``destination_rule_conflicts``) before anything reads the rules; the model and the
store's cross-resource checks read the merged rules (``merge_destination_rules``), so a VirtualService may name a
subset any of them defines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from pilot.config.host_conflicts import HostConflict
from pilot.config.hosts import resolve_host
from pilot.config.types import DestinationRule, key_order

__all__ = ["DestinationRuleConflict", "destination_rule_conflicts", "merge_destination_rules", "merged_groups"]

_GroupKey = tuple[str, str, frozenset[tuple[str, str]] | None]  # namespace, resolved host, selector labels


DestinationRuleConflict = HostConflict[DestinationRule]


def _group_key(rule: DestinationRule, domain_suffix: str) -> _GroupKey:
    namespace = rule.meta.key.namespace
    selector = frozenset(rule.workload_selector.items()) if rule.workload_selector is not None else None
    return namespace, resolve_host(rule.host, namespace, domain_suffix), selector


def _groups(rules: Iterable[DestinationRule], domain_suffix: str) -> dict[_GroupKey, list[DestinationRule]]:
    groups: dict[_GroupKey, list[DestinationRule]] = {}
    for rule in sorted(rules, key=lambda r: key_order(r.meta.key)):
        groups.setdefault(_group_key(rule, domain_suffix), []).append(rule)
    return groups


def _exported_alike(one: DestinationRule, other: DestinationRule) -> bool:
    def namespaces(rule: DestinationRule) -> frozenset[str]:
        own = rule.meta.key.namespace
        listed = frozenset(own if entry == "." else entry for entry in rule.export_to)
        return frozenset({"*"}) if not listed or "*" in listed else listed

    return namespaces(one) == namespaces(other)


def _conflict(earlier: DestinationRule, later: DestinationRule, host: str) -> DestinationRuleConflict | None:
    base = DestinationRuleConflict(earlier=earlier, later=later, host=host, path=(), earlier_path=(), reason="")
    if not _exported_alike(earlier, later):
        return dataclasses.replace(
            base,
            path=("spec", "exportTo"),
            earlier_path=("spec", "exportTo"),
            reason="DestinationRules for one host with different exportTo are not supported by meshplane yet "
            "(they are merged only when exported alike)",
        )
    if earlier.traffic_policy is not None and later.traffic_policy is not None:
        return dataclasses.replace(
            base,
            path=("spec", "trafficPolicy"),
            earlier_path=("spec", "trafficPolicy"),
            reason="both set a trafficPolicy; merged, only the earlier one's would apply",
        )
    names = {subset.name: index for index, subset in enumerate(earlier.subsets)}
    for index, subset in enumerate(later.subsets):
        if subset.name in names:
            return dataclasses.replace(
                base,
                path=("spec", "subsets", index, "name"),
                earlier_path=("spec", "subsets", names[subset.name], "name"),
                reason=f"both define subset {subset.name!r}; merged, only the earlier one's would apply",
            )
    return None


def destination_rule_conflicts(
    rules: Iterable[DestinationRule], domain_suffix: str
) -> Iterator[DestinationRuleConflict]:
    """Every conflict among ``rules`` that merge (same namespace, host and selector), the earlier by ConfigKey order
    first; each later rule is checked against the merge of those before it."""
    for (_, host, _), group in _groups(rules, domain_suffix).items():
        for later_index, later in enumerate(group):
            for earlier in group[:later_index]:
                conflict = _conflict(earlier, later, host)
                if conflict is not None:
                    yield conflict
                    break


def merged_groups(rules: Iterable[DestinationRule], domain_suffix: str) -> list[list[DestinationRule]]:
    """The groups of two or more rules that merge, each in ConfigKey order."""
    return [group for group in _groups(rules, domain_suffix).values() if len(group) > 1]


def merge_destination_rules(rules: Iterable[DestinationRule], domain_suffix: str) -> list[DestinationRule]:
    """The rules in ConfigKey order, those that merge (same namespace, host and selector) folded into the first of
    them: its subsets then the others', its traffic policy or else the first of theirs. Expects no conflicts (the
    store rejected them); should one remain, the earlier rule's part is kept."""
    merged: list[DestinationRule] = []
    for group in _groups(rules, domain_suffix).values():
        first = group[0]
        if len(group) == 1:
            merged.append(first)
            continue
        subsets = {subset.name: subset for rule in reversed(group) for subset in rule.subsets}
        order = dict.fromkeys(subset.name for rule in group for subset in rule.subsets)
        policy = next((rule.traffic_policy for rule in group if rule.traffic_policy is not None), None)
        merged.append(dataclasses.replace(first, subsets=tuple(subsets[name] for name in order), traffic_policy=policy))
    return merged
