"""The first service registry: ServiceEntries and the WorkloadEntries their ``workloadSelector`` picks, read from
the config in force (Istio's ``serviceregistry/serviceentry``).

Each host of a ServiceEntry is a ``Service``; its endpoints are the entry's inline endpoints (connected to at their
own port) and the selected workloads' sidecars (at the service port); each selected workload serves each port of
the entry (a ``ServiceInstance``).

The same host in several ServiceEntries of one namespace is one service, merged as Istio does (its sidecar scope
merges the ports of same-host services of one namespace, and its endpoint index collects every entry's instances of
the host): the ports of all of them (a port number the first one has keeps the first one's name and protocol), the
endpoints and selected workloads of each on its own ports; resolution, location, addresses and ``exportTo`` are
the first one's (namespace/name order, as Istio's oldest). An entry for the host in another namespace than the
first's is not merged: the first namespace's wins the host.
"""

from __future__ import annotations

import ipaddress
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from pilot.config.service_entry_merge import entries_by_host, merged_ports
from pilot.config.types import ConfigKey, Resource, ServiceEntry, WorkloadEntry, labels_match, sorted_by_key
from pilot.model.registry import SERVICE_ENTRY_PROVIDER, RegistryState
from pilot.model.types import Endpoint, Service, ServiceInstance

__all__ = ["SERVICE_ENTRIES", "ServiceEntryRegistry", "labels_match"]


class ServiceEntryRegistry:
    """The services and workloads of the ServiceEntries and WorkloadEntries in force."""

    name = "serviceentry"
    provider = SERVICE_ENTRY_PROVIDER

    def __init__(self) -> None:
        # the entries and workloads of the last state, and that state: a snapshot built for a change of other kinds
        # (a VirtualService edit) gets the very same state back, and the model reuses what it derived from it
        self._last: tuple[tuple[Resource, ...], RegistryState] | None = None

    def state(self, configs: Mapping[ConfigKey, Resource]) -> RegistryState:
        read = tuple(r for r in configs.values() if isinstance(r, ServiceEntry | WorkloadEntry))
        last = self._last  # one read: another thread's snapshot may replace it meanwhile
        if last is not None and len(last[0]) == len(read) and all(map(operator.is_, last[0], read)):
            return last[1]
        state = self._state(configs)
        self._last = (read, state)
        return state

    def _state(self, configs: Mapping[ConfigKey, Resource]) -> RegistryState:
        ordered = list(sorted_by_key(configs).values())
        workloads = [r for r in ordered if isinstance(r, WorkloadEntry)]
        workload_index = _index_workloads(workloads)
        instances: dict[ConfigKey, list[ServiceInstance]] = defaultdict(list)
        services = {
            host: _service_from_entries(entries, host, workload_index, instances)
            for host, entries in entries_by_host(r for r in ordered if isinstance(r, ServiceEntry)).items()
        }
        return RegistryState(
            services=tuple(services.values()),
            workloads=tuple(workloads),
            instances=MappingProxyType({k: tuple(v) for k, v in instances.items()}),
        )


SERVICE_ENTRIES = ServiceEntryRegistry()


WorkloadIndex = Mapping[tuple[str, str, str], Sequence[WorkloadEntry]]  # (namespace, label, value) -> workloads


def _index_workloads(workloads: Iterable[WorkloadEntry]) -> WorkloadIndex:
    """Workloads by (namespace, label, value), each list in ConfigKey order, so that a selector looks at the
    workloads carrying its rarest label instead of scanning all of them (1000 services x 3000 workloads)."""
    index: dict[tuple[str, str, str], list[WorkloadEntry]] = defaultdict(list)
    for workload in workloads:
        for label, value in workload.labels.items():
            index[(workload.meta.key.namespace, label, value)].append(workload)
    return index


def _selected_workloads(entry: ServiceEntry, index: WorkloadIndex) -> list[WorkloadEntry]:
    """The WorkloadEntries a ServiceEntry's workloadSelector picks: same namespace, every selector label matches."""
    selector = entry.workload_selector
    if not selector:  # validation requires labels in a selector; no selector selects nothing
        return []
    namespace = entry.meta.key.namespace
    candidates = min((index.get((namespace, k, v), ()) for k, v in selector.items()), key=len)
    return [w for w in candidates if labels_match(selector, w.labels)]


def _service_from_entries(
    entries: Sequence[ServiceEntry],
    host: str,
    workloads: WorkloadIndex,
    instances: dict[ConfigKey, list[ServiceInstance]],
) -> Service:
    """One host of its ServiceEntries as a Service; records the ports each selected workload serves in
    ``instances``."""
    first = entries[0]
    ports = merged_ports(entries)
    endpoints: dict[int, dict[tuple[str, int], Endpoint]] = {p.number: {} for p in ports}
    selected = [(entry, _selected_workloads(entry, workloads)) for entry in entries]
    for entry, chosen in selected:
        for number, found in _entry_endpoints(entry, chosen).items():
            for endpoint in found:
                endpoints[number].setdefault((endpoint.address, endpoint.port), endpoint)
    service = Service(
        host=host,
        namespace=first.meta.key.namespace,
        ports=ports,
        resolution=first.resolution,
        mesh_internal=first.location == "MESH_INTERNAL",
        endpoints=MappingProxyType(
            {
                number: tuple(sorted(eps.values(), key=lambda e: (e.address, e.port)))
                for number, eps in sorted(endpoints.items())
            }
        ),
        source=first.meta.key,
        addresses=tuple(_service_address(address) for address in first.addresses),
    )
    served: set[tuple[ConfigKey, int]] = set()
    for entry, chosen in selected:
        for workload in chosen:
            for port in entry.ports:
                if (workload.meta.key, port.number) in served:
                    continue
                served.add((workload.meta.key, port.number))
                target = workload.ports.get(port.name) or port.target_port or port.number
                instances[workload.meta.key].append(
                    ServiceInstance(service=service, port=port, target_port=target, workload=workload)
                )
    return service


def _entry_endpoints(entry: ServiceEntry, selected: Sequence[WorkloadEntry]) -> dict[int, list[Endpoint]]:
    """The endpoints one ServiceEntry gives each of its ports: inline ones and its selected workloads' sidecars."""
    endpoints: dict[int, list[Endpoint]] = {p.number: [] for p in entry.ports}
    for ep in entry.endpoints:  # inline endpoints: no sidecar of ours, connect to the endpoint's own port
        for port in entry.ports:
            endpoints[port.number].append(
                Endpoint(
                    address=ep.address,
                    port=ep.ports.get(port.name) or port.target_port or port.number,
                    labels=ep.labels,
                    weight=ep.weight or 1,
                    service_account=ep.service_account,
                    locality=ep.locality,
                )
            )
    for workload in selected:
        for port in entry.ports:
            # The workload's sidecar listens on the service port at the workload's address and forwards to the app.
            endpoints[port.number].append(
                Endpoint(
                    address=workload.address,
                    port=port.number,
                    labels=workload.labels,
                    weight=workload.weight or 1,
                    workload=workload.meta.key,
                    service_account=workload.service_account,
                    locality=workload.locality,
                )
            )
    return endpoints


def _service_address(address: str) -> str:
    """A ServiceEntry address as the model holds it (Istio's ``convertServices``): an IP, or a CIDR block in its
    canonical form; a one-address block (``/32``, ``/128``) is that address."""
    if "/" not in address:
        return str(ipaddress.ip_address(address))
    network = ipaddress.ip_network(address, strict=False)
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)
