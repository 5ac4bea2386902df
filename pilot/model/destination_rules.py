"""Which DestinationRule a proxy sees for a service: Istio's ``exportTo`` visibility (``PushContext.destinationRule``).

A DestinationRule applies to the proxies of the namespaces it is exported to: ``exportTo`` empty or ``*`` (every
namespace), ``.`` (its own namespace), or namespace names. For a proxy in namespace P and a service of namespace S
(the ServiceEntry's), Istio looks, and so does :func:`visible_destination_rule`:

1. at the rules of P that apply in P (exported to ``*``, ``.``, P, or not restricted): the most specific host match
   wins. A proxy of the root namespace looks at the root namespace's private rules instead;
2. else at the rules S exports beyond itself, if the most specific match is exported to P;
3. else at the rules the root namespace exports, likewise.

Within one namespace the first rule in name order wins for a host (Istio merges them; meshplane does not yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pilot.config.hosts import lookup_host, resolve_host
from pilot.config.types import DestinationRule

__all__ = ["DestinationRuleIndex", "index_destination_rules", "visible_destination_rule"]

_HostRules = Mapping[str, DestinationRule]  # resolved host (or wildcard) -> rule
_EMPTY: _HostRules = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationRuleIndex:
    """The rules by the namespaces they serve (see the module doc)."""

    root_namespace: str = "istio-system"
    local: Mapping[str, _HostRules] = field(default_factory=lambda: MappingProxyType({}))  # ns -> rules applying in ns
    exported: Mapping[str, _HostRules] = field(default_factory=lambda: MappingProxyType({}))  # ns -> rules it exports
    root_private: _HostRules = field(default_factory=lambda: MappingProxyType({}))


def _applies_in_own_namespace(rule: DestinationRule) -> bool:
    export_to, namespace = rule.export_to, rule.meta.key.namespace
    return not export_to or "*" in export_to or "." in export_to or namespace in export_to


def _private_only(rule: DestinationRule) -> bool:
    return len(rule.export_to) == 1 and rule.export_to[0] in (".", rule.meta.key.namespace)


def _exported_to(rule: DestinationRule, namespace: str) -> bool:
    return not rule.export_to or "*" in rule.export_to or namespace in rule.export_to


def index_destination_rules(
    rules: Iterable[DestinationRule], *, root_namespace: str, domain_suffix: str
) -> DestinationRuleIndex:
    """Index ``rules`` (in ConfigKey order: the first for a host in a namespace wins)."""
    local: dict[str, dict[str, DestinationRule]] = {}
    exported: dict[str, dict[str, DestinationRule]] = {}
    root_private: dict[str, DestinationRule] = {}
    for rule in rules:
        namespace = rule.meta.key.namespace
        host = resolve_host(rule.host, namespace, domain_suffix)
        if _applies_in_own_namespace(rule):
            local.setdefault(namespace, {}).setdefault(host, rule)
        if not _private_only(rule):
            exported.setdefault(namespace, {}).setdefault(host, rule)
        elif namespace == root_namespace:
            root_private.setdefault(host, rule)
    return DestinationRuleIndex(
        root_namespace=root_namespace,
        local=MappingProxyType({ns: MappingProxyType(r) for ns, r in local.items()}),
        exported=MappingProxyType({ns: MappingProxyType(r) for ns, r in exported.items()}),
        root_private=MappingProxyType(root_private),
    )


def _exported_from(index: DestinationRuleIndex, owner: str, host: str, proxy_namespace: str) -> DestinationRule | None:
    rule = lookup_host(index.exported.get(owner, _EMPTY), host)
    return rule if rule is not None and _exported_to(rule, proxy_namespace) else None


def visible_destination_rule(
    index: DestinationRuleIndex, host: str, *, service_namespace: str, proxy_namespace: str
) -> DestinationRule | None:
    """The rule a proxy of ``proxy_namespace`` applies to ``host`` (a service of ``service_namespace``)."""
    own = index.root_private if proxy_namespace == index.root_namespace else index.local.get(proxy_namespace, _EMPTY)
    rule = lookup_host(own, host)
    if rule is not None:
        return rule
    rule = _exported_from(index, service_namespace, host, proxy_namespace)
    if rule is not None:
        return rule
    return _exported_from(index, index.root_namespace, host, proxy_namespace)
