"""Which keys a change can reach through the store's cross-resource checks: what an incremental apply resolves.

Every check of the store (``pilot.config.store``) ties resources together by host only:

- a VirtualService's destinations are checked against the DestinationRule and the ServiceEntry of each
  destination's resolved host (``cross_checks``), and blame what changed behind those hosts;
- VirtualServices conflict when they name the same resolved host (``virtual_service_conflicts``);
- DestinationRules merge, and conflict, per namespace and resolved host (``destination_rule_merge``);
- ServiceEntries merge their ports per host as written (``service_entry_merge``);
- Gateway servers conflict across all Gateways (``gateway_conflicts``): every Gateway shares one token.

So each resource has *tokens*: the hosts it is looked up by or looks up (a VirtualService: its own hosts and its
destinations' hosts, resolved; a DestinationRule: its resolved host; a ServiceEntry: its hosts), and the keys a
change can affect are those connected to a changed key through shared tokens, transitively (``closure``). A key's
tokens are those of every version that may be in force for it after the next resolve: every document defining it
now and the version in force now (its last good one may be put back). Resolving only that closure gives every key
of it the outcome a resolve of everything would, and leaves every other key as it was (``tests/
test_config_store_incremental.py`` compares both on random sequences of edits).

Hosts are compared as spelled everywhere but in one place: a destination's DestinationRule is the exact one, else
the most specific wildcard one (``lookup_host``). A DestinationRule for a wildcard host (``*.example.com``, ``*``)
so meets hosts it does not spell, and as long as one may be in force there is no closure (``None``): the store
resolves everything, as it does for its first load.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from pilot.config.cross_checks import destination_hosts
from pilot.config.hosts import resolve_host
from pilot.config.types import ConfigKey, DestinationRule, Gateway, Kind, Resource, ServiceEntry, VirtualService

__all__ = ["CrossScope", "cross_tokens"]

_CROSS_KINDS = frozenset({Kind.VIRTUAL_SERVICE, Kind.DESTINATION_RULE, Kind.SERVICE_ENTRY, Kind.GATEWAY})
_GATEWAYS = "\0gateways"  # the token every Gateway has: their servers are checked against each other's


def cross_tokens(resource: Resource, domain_suffix: str) -> frozenset[str]:
    """The hosts (resolved as the checks resolve them) through which ``resource`` meets others in the checks."""
    namespace = resource.meta.key.namespace
    if isinstance(resource, VirtualService):
        hosts = (*resource.hosts, *destination_hosts(resource))
        return frozenset(resolve_host(host, namespace, domain_suffix) for host in hosts)
    if isinstance(resource, DestinationRule):
        return frozenset({resolve_host(resource.host, namespace, domain_suffix)})
    if isinstance(resource, ServiceEntry):
        return frozenset(resource.hosts)
    if isinstance(resource, Gateway):
        return frozenset({_GATEWAYS})
    return frozenset()


class CrossScope:
    """The tokens of every key, indexed both ways, kept up to date by the store after each resolve."""

    def __init__(self, domain_suffix: str) -> None:
        self._domain_suffix = domain_suffix
        self._tokens: dict[ConfigKey, frozenset[str]] = {}
        self._keys: dict[str, set[ConfigKey]] = {}
        self._wildcard_keys: set[ConfigKey] = set()

    @staticmethod
    def indexed(key: ConfigKey) -> bool:
        """Whether keys of this kind have tokens (others are never reached, and reach nothing)."""
        return key.kind in _CROSS_KINDS

    def add(self, key: ConfigKey, versions: Collection[Resource]) -> None:
        """Give ``key`` the tokens of ``versions`` too (its new definitions, before a resolve takes their closure)."""
        self._set(key, versions, keep=True)

    def update(self, key: ConfigKey, versions: Collection[Resource]) -> None:
        """Set the tokens of ``key`` to those of ``versions`` (none: the key is gone)."""
        self._set(key, versions, keep=False)

    def _set(self, key: ConfigKey, versions: Collection[Resource], *, keep: bool) -> None:
        if key.kind not in _CROSS_KINDS:  # no tokens: nothing to index
            return
        old = self._tokens.get(key, frozenset())
        if any(isinstance(v, DestinationRule) and v.host.startswith("*") for v in versions):
            self._wildcard_keys.add(key)
        elif not keep:
            self._wildcard_keys.discard(key)
        tokens = frozenset(t for version in versions for t in cross_tokens(version, self._domain_suffix))
        tokens = tokens | old if keep else tokens
        if tokens == old:
            return
        for token in old - tokens:
            keys = self._keys[token]
            keys.discard(key)
            if not keys:
                del self._keys[token]
        for token in tokens - old:
            self._keys.setdefault(token, set()).add(key)
        if tokens:
            self._tokens[key] = tokens
        else:
            self._tokens.pop(key, None)

    def closure(self, keys: Iterable[ConfigKey]) -> set[ConfigKey] | None:
        """``keys`` and every key connected to one of them through shared tokens; None when a DestinationRule for
        a wildcard host may be in force (everything must be resolved)."""
        if self._wildcard_keys:
            return None
        reached = set(keys)
        pending = list(reached)
        seen_tokens: set[str] = set()
        while pending:
            for token in self._tokens.get(pending.pop(), ()):
                if token in seen_tokens:
                    continue
                seen_tokens.add(token)
                for other in self._keys[token]:
                    if other not in reached:
                        reached.add(other)
                        pending.append(other)
        return reached
