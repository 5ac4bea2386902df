"""Which DestinationRule a proxy sees for a service: Istio's ``exportTo`` visibility (``PushContext.destinationRule``).

A DestinationRule applies to the proxies of the namespaces it is exported to: ``exportTo`` empty or ``*`` (every
namespace), ``.`` (its own namespace), or namespace names. For a proxy in namespace P and a service of namespace S
(the ServiceEntry's), Istio looks, and so does :func:`visible_destination_rule`:

1. at the rules of P that apply in P (exported to ``*``, ``.``, P, or not restricted): the most specific host match
   wins. A proxy of the root namespace looks at the root namespace's private rules instead;
2. else at the rules S exports beyond itself, if the most specific match is exported to P;
3. else at the rules the root namespace exports, likewise.

Several rules of one namespace for a host come here merged into one (``pilot.config.destination_rule_merge``).

A rule with a ``workloadSelector`` (Istio 1.13+) applies only to the client workloads of its own namespace whose
labels it selects, and beats that namespace's rule without selector for them; it is never seen from another
namespace. As in Istio (``SidecarScope.DestinationRule``), a proxy whose namespace has rules for the host, none of
which applies to it (every one selects other workloads), gets no rule: the lookup does not fall back to the service's
or the root namespace's rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pilot.config.hosts import lookup_host, resolve_host
from pilot.config.types import ConfigKey, DestinationRule, Labels, labels_match

__all__ = [
    "DestinationRuleIndex",
    "HostRules",
    "index_destination_rules",
    "selected_destination_rules",
    "visible_destination_rule",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRules:
    """The rules of one namespace for one host: the one without selector in force, and those with a selector."""

    catch_all: DestinationRule | None = None
    selected: tuple[DestinationRule, ...] = ()  # ConfigKey order: the first that selects a workload wins


_HostRules = Mapping[str, HostRules]  # resolved host (or wildcard) -> rules
_EMPTY: _HostRules = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationRuleIndex:
    """The rules by the namespaces they serve (see the module doc)."""

    root_namespace: str = "istio-system"
    local: Mapping[str, _HostRules] = field(default_factory=lambda: MappingProxyType({}))  # ns -> rules applying in ns
    exported: Mapping[str, _HostRules] = field(default_factory=lambda: MappingProxyType({}))  # ns -> rules it exports
    root_private: _HostRules = field(default_factory=lambda: MappingProxyType({}))
    # per namespace of ``local`` (and "" for ``root_private``): its rules with a workloadSelector, which
    # ``selected_destination_rules`` matches against every proxy of the namespace (not each of its hosts' rules:
    # 1000 proxies x 1000 hosts were a tenth of a snapshot's build)
    _selecting: Mapping[str, tuple[DestinationRule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pools = {**self.local, "": self.root_private}
        selecting = {ns: tuple(r for rules in pool.values() for r in rules.selected) for ns, pool in pools.items()}
        object.__setattr__(
            self, "_selecting", MappingProxyType({ns: rules for ns, rules in selecting.items() if rules})
        )

    def selecting(self, namespace: str) -> tuple[DestinationRule, ...]:
        """The rules with a workloadSelector that may select a proxy of ``namespace``."""
        return self._selecting.get("" if namespace == self.root_namespace else namespace, ())


def _applies_in_own_namespace(rule: DestinationRule) -> bool:
    export_to, namespace = rule.export_to, rule.meta.key.namespace
    return not export_to or "*" in export_to or "." in export_to or namespace in export_to


def _private_only(rule: DestinationRule) -> bool:
    return len(rule.export_to) == 1 and rule.export_to[0] in (".", rule.meta.key.namespace)


def _exported_to(rule: DestinationRule, namespace: str) -> bool:
    return not rule.export_to or "*" in rule.export_to or namespace in rule.export_to


def _add(index: dict[str, dict[str, HostRules]], namespace: str, host: str, rule: DestinationRule) -> None:
    rules = index.setdefault(namespace, {}).get(host, HostRules())
    if rule.workload_selector is not None:
        rules = HostRules(catch_all=rules.catch_all, selected=(*rules.selected, rule))
    elif rules.catch_all is None:
        rules = HostRules(catch_all=rule, selected=rules.selected)
    index[namespace][host] = rules


def _frozen(index: dict[str, dict[str, HostRules]]) -> Mapping[str, _HostRules]:
    return MappingProxyType({ns: MappingProxyType(rules) for ns, rules in index.items()})


def index_destination_rules(
    rules: Iterable[DestinationRule], *, root_namespace: str, domain_suffix: str
) -> DestinationRuleIndex:
    """Index ``rules`` (in ConfigKey order: the first for a host in a namespace wins)."""
    local: dict[str, dict[str, HostRules]] = {}
    exported: dict[str, dict[str, HostRules]] = {}
    root_private: dict[str, dict[str, HostRules]] = {}
    for rule in rules:
        namespace = rule.meta.key.namespace
        host = resolve_host(rule.host, namespace, domain_suffix)
        if rule.workload_selector is not None:
            _add(local, namespace, host, rule)  # its own namespace's clients only, whatever its exportTo
            if namespace == root_namespace:
                _add(root_private, namespace, host, rule)
            continue
        if _applies_in_own_namespace(rule):
            _add(local, namespace, host, rule)
        if not _private_only(rule):
            _add(exported, namespace, host, rule)
        elif namespace == root_namespace:
            _add(root_private, namespace, host, rule)
    return DestinationRuleIndex(
        root_namespace=root_namespace,
        local=_frozen(local),
        exported=_frozen(exported),
        root_private=MappingProxyType(root_private.get(root_namespace, {})),
    )


def selected_destination_rules(index: DestinationRuleIndex, namespace: str, labels: Labels) -> tuple[ConfigKey, ...]:
    """The keys of the rules with a workloadSelector of ``namespace`` that select a workload with ``labels``
    (sorted): with the namespace, all that decides which rules a client proxy applies."""
    keys = {
        rule.meta.key
        for rule in index.selecting(namespace)
        if rule.workload_selector is not None and labels_match(rule.workload_selector, labels)
    }
    return tuple(sorted(keys, key=lambda key: (key.kind, key.namespace, key.name)))


def _exported_from(index: DestinationRuleIndex, owner: str, host: str, proxy_namespace: str) -> DestinationRule | None:
    rules = lookup_host(index.exported.get(owner, _EMPTY), host)
    rule = rules.catch_all if rules is not None else None
    return rule if rule is not None and _exported_to(rule, proxy_namespace) else None


def visible_destination_rule(
    index: DestinationRuleIndex,
    host: str,
    *,
    service_namespace: str,
    proxy_namespace: str,
    selected: tuple[ConfigKey, ...] = (),
) -> DestinationRule | None:
    """The rule a proxy of ``proxy_namespace`` applies to ``host`` (a service of ``service_namespace``);
    ``selected``: the rules with a workloadSelector that select the proxy (``selected_destination_rules``)."""
    own = index.root_private if proxy_namespace == index.root_namespace else index.local.get(proxy_namespace, _EMPTY)
    rules = lookup_host(own, host)
    if rules is not None:
        for candidate in rules.selected:
            if candidate.meta.key in selected:
                return candidate
        return rules.catch_all
    exported = _exported_from(index, service_namespace, host, proxy_namespace)
    if exported is not None:
        return exported
    return _exported_from(index, index.root_namespace, host, proxy_namespace)
