"""Conflicts between Gateway servers on one port, checked by the store over what is about to be accepted (and by
``validate_gateway`` between the servers of one Gateway).

Istio merges the servers of every Gateway selecting a gateway proxy per port (``MergeGateways``): plaintext HTTP
servers share one route table, TLS servers (HTTPS, TLS) are told apart by SNI, one filter chain each. What cannot
merge Istio leaves out with a ``pilot_total_rejected_configs`` count; meshplane rejects it with an error naming both
servers, as its issue asks ("a conflict is an error naming both"). Two servers conflict when some gateway proxy can
be selected by both Gateways (their selectors give no label two values: a pod can carry both), they bind the same
address and port, and

- they are of different kinds (plaintext HTTP, TLS-terminated or passed-through, plaintext TCP): one listener
  cannot be both;
- both are plaintext TCP: a TCP port has one destination;
- both are TLS servers and share an SNI name (Istio's ``checkDuplicates``; a ``*`` host is the chain without
  ``server_names``, so two of those conflict as well): Envoy rejects two filter chains with one match.

Of a conflicting pair the store rejects the Gateway that changed (the later one by namespace/name when both or
neither did); the other stays in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pilot.config.errors import FieldPath, format_path
from pilot.config.types import Gateway, GatewayServer, Protocol, key_order

__all__ = [
    "GatewayConflict",
    "gateway_conflicts",
    "merge_conflict",
    "selectors_overlap",
    "server_conflict",
    "server_sni_names",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConflict:
    """``later``'s server ``later_index`` conflicts with ``earlier``'s server ``earlier_index``."""

    earlier: Gateway
    later: Gateway
    earlier_index: int
    later_index: int
    reason: str  # why later's server cannot join earlier's (``message`` words it for the server it names)

    def message(self, named: Gateway) -> str:
        """The error for ``named`` (``earlier`` or ``later``), naming the other Gateway's server; the reason is
        worded from ``named``'s server."""
        if named is self.later:
            mine, other, index = self.later.servers[self.later_index], self.earlier, self.earlier_index
        else:
            mine, other, index = self.earlier.servers[self.earlier_index], self.later, self.later_index
        key = other.meta.key
        server = other.servers[index]
        where = format_path(("spec", "servers", index))
        reason = merge_conflict(server, mine) or self.reason
        return (
            f"conflicts with Gateway {key.namespace}/{key.name} ({other.meta.origin}: {where}) on port "
            f"{_port_text(server)}: {reason}"
        )

    def path_in(self, named: Gateway) -> FieldPath:
        """Where the conflict is in ``named``."""
        return ("spec", "servers", self.later_index if named is self.later else self.earlier_index)


def _port_text(server: GatewayServer) -> str:
    return f"{server.bind}:{server.port.number}" if server.bind else str(server.port.number)


def selectors_overlap(one: Mapping[str, str], other: Mapping[str, str]) -> bool:
    """Whether a proxy can be selected by both selectors: no label is given two different values."""
    return all(other.get(key, value) == value for key, value in one.items())


def _kind(server: GatewayServer) -> str:
    protocol = server.port.protocol
    if protocol in (Protocol.HTTPS, Protocol.TLS):
        return "TLS"
    return "HTTP" if protocol.is_http else "TCP"


def _a(kind: str) -> str:
    return f"an {kind}" if kind == "HTTP" else f"a {kind}"


def server_sni_names(server: GatewayServer) -> frozenset[str]:
    """The SNI names of a TLS server's filter chain: its hosts without namespace prefixes; empty (every name) when
    one of them is ``*``."""
    hosts = {host.partition("/")[2] if "/" in host else host for host in server.hosts}
    return frozenset() if "*" in hosts else frozenset(hosts)


def server_conflict(earlier: GatewayServer, later: GatewayServer) -> str | None:
    """Why ``later`` cannot join ``earlier``'s port (see the module doc), or None (also for other ports)."""
    if (earlier.bind, earlier.port.number) != (later.bind, later.port.number):
        return None
    return merge_conflict(earlier, later)


def merge_conflict(earlier: GatewayServer, later: GatewayServer) -> str | None:
    """Why ``later`` cannot join ``earlier`` on one listener, whatever their port numbers (a gateway's Service may
    translate two of them to one), or None."""
    one, other = _kind(earlier), _kind(later)
    if one != other:
        there = "" if earlier.port.protocol == one else f" ({earlier.port.protocol})"
        return f"{_a(other)} server cannot share a port with {_a(one)} server{there}"
    if one == "TCP":
        return "only one plaintext TCP server may use a port"
    if one == "HTTP":
        return None
    names, others = server_sni_names(earlier), server_sni_names(later)
    if not names and not others:
        return "both are TLS servers for every SNI name ('*'): two filter chains would match the same connections"
    shared = sorted(names & others)
    if shared:
        return f"both are TLS servers for SNI {', '.join(shared)}: two filter chains would match the same connections"
    return None


def gateway_conflicts(gateways: Iterable[Gateway]) -> Iterator[GatewayConflict]:
    """Every conflict between servers of two different Gateways, the earlier by ConfigKey order first; one per
    pair of Gateways (its first server of the later against the earlier's servers)."""
    ordered = sorted(gateways, key=lambda g: key_order(g.meta.key))
    for later_position, later in enumerate(ordered):
        for earlier in ordered[:later_position]:
            conflict = _first_conflict(earlier, later)
            if conflict is not None:
                yield conflict


def _first_conflict(earlier: Gateway, later: Gateway) -> GatewayConflict | None:
    if not selectors_overlap(earlier.selector, later.selector):
        return None
    for later_index, server in enumerate(later.servers):
        for earlier_index, existing in enumerate(earlier.servers):
            reason = server_conflict(existing, server)
            if reason is not None:
                return GatewayConflict(
                    earlier=earlier,
                    later=later,
                    earlier_index=earlier_index,
                    later_index=later_index,
                    reason=reason,
                )
    return None
