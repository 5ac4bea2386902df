"""Several ServiceEntries for one host, as Istio merges them: every entry for the host in the namespace of the first
one (namespace/name order) makes up the host's service, with the ports of all of them. Used by the registry
(``pilot.model.registry_service_entry``) and by the store's cross-resource checks (``cross_checks``), so that both
see the same ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pilot.config.types import ServiceEntry, ServicePort

__all__ = ["entries_by_host", "merged_ports"]


def entries_by_host(entries: Iterable[ServiceEntry]) -> dict[str, list[ServiceEntry]]:
    """The ServiceEntries (in the given order) that make up each host's service: every entry for the host in the
    namespace of the first one."""
    out: dict[str, list[ServiceEntry]] = {}
    for entry in entries:
        for host in entry.hosts:
            group = out.setdefault(host, [])
            if not group or group[0].meta.key.namespace == entry.meta.key.namespace:
                group.append(entry)
    return out


def merged_ports(entries: Sequence[ServiceEntry]) -> tuple[ServicePort, ...]:
    """The ports of one host's entries: each port number once, as the first entry that has it defines it."""
    ports: dict[int, ServicePort] = {}
    for entry in entries:
        for port in entry.ports:
            ports.setdefault(port.number, port)
    return tuple(ports.values())
