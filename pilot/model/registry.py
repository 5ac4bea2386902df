"""The service-registry seam (Istio's ``serviceregistry/{serviceentry,kube,aggregate}``): where the mesh model gets
its services, the workloads behind them and which ports each workload serves.

A ``ServiceRegistry`` returns its ``RegistryState`` for the config in force: the ServiceEntry/WorkloadEntry
registry (``registry_service_entry``) reads it from that config; a Kubernetes registry (Services, EndpointSlices,
Pods) will return what it watches, with a ``version`` that changes with it. ``build_snapshot`` aggregates the
registries it is given with ``aggregate_registries``, as Istio's PushContext does (``initServiceRegistry``): for a
host served by several registries the first registry's service wins, except that a Kubernetes service takes
precedence over a service of any other registry (so that a ServiceEntry cannot "squat" on a Kubernetes host);
the services that lose are listed as shadowed (``meshplane analyze`` warns about them), and so are their instances.

Adding a registry: implement ``name``, ``provider`` and ``state(configs)`` and pass it to ``build_snapshot``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from pilot.config.types import ConfigKey, Resource, WorkloadEntry, sorted_by_key
from pilot.model.types import Service, ServiceInstance, ShadowedService

__all__ = [
    "ENDPOINTS_KIND",
    "KUBERNETES_PROVIDER",
    "SERVICE_ENTRY_PROVIDER",
    "AggregatedRegistries",
    "MemoryRegistry",
    "RegistryState",
    "ServiceRegistry",
    "aggregate_registries",
]

SERVICE_ENTRY_PROVIDER = "External"  # Istio's provider.External: ServiceEntries and WorkloadEntries
ENDPOINTS_KIND = "Endpoints"  # the change kind of a registry whose endpoints_version alone changed
KUBERNETES_PROVIDER = "Kubernetes"  # Istio's provider.Kubernetes: its services win a host over other providers'


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryState:
    """What one registry holds at one moment."""

    services: tuple[Service, ...] = ()  # the first one wins a host listed twice
    workloads: tuple[WorkloadEntry, ...] = ()
    instances: Mapping[ConfigKey, tuple[ServiceInstance, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # workload key -> the service ports it serves
    version: str = ""  # changes whenever the state does; "" for a registry read from config (config changes tell)
    # changes instead of ``version`` when only endpoints changed, in a way that leaves every proxy's clusters and
    # listeners as they are (``pilot.kube.changes``: ENDPOINTS): the snapshot's change kind ``Endpoints``, pushed
    # as EDS alone
    endpoints_version: str = ""


class ServiceRegistry(Protocol):
    @property
    def name(self) -> str: ...  # unique among the registries of one snapshot

    @property
    def provider(self) -> str: ...  # SERVICE_ENTRY_PROVIDER, KUBERNETES_PROVIDER, ...

    def state(self, configs: Mapping[ConfigKey, Resource]) -> RegistryState:
        """What the registry holds now; ``configs`` is the config in force (in ConfigKey order)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRegistry:
    """A registry holding a fixed state (tests; a stand-in for a registry not written yet)."""

    name: str
    provider: str
    contents: RegistryState

    def state(self, configs: Mapping[ConfigKey, Resource]) -> RegistryState:
        return self.contents


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatedRegistries:
    """Every registry's state merged: one service per host, the workloads and the instances of the services kept."""

    services: Mapping[str, Service]  # host -> service, sorted by host
    workloads: Mapping[ConfigKey, WorkloadEntry]  # sorted by key; the first registry's wins a key listed twice
    instances: Mapping[ConfigKey, tuple[ServiceInstance, ...]]
    shadowed: tuple[ShadowedService, ...]
    versions: Mapping[str, str]  # registry name -> its state's version
    endpoints_versions: Mapping[str, str]  # registry name -> its state's endpoints_version


def aggregate_registries(
    registries: Sequence[ServiceRegistry], configs: Mapping[ConfigKey, Resource]
) -> AggregatedRegistries:
    """Merge the registries' states, in order (see the module doc for who wins a host)."""
    names = [registry.name for registry in registries]
    if len(set(names)) != len(names):
        raise ValueError(f"service registries need distinct names, got {names}")
    states = [(registry, registry.state(configs)) for registry in registries]
    last = _last_aggregated.get("last")
    if last is not None and _same_states(last[0], states):
        return last[1]
    aggregated = _aggregate(states)
    _last_aggregated["last"] = (states, aggregated)
    return aggregated


# the registries and states of the last aggregate, and that aggregate: the same states (config changes of other
# kinds) give the same object back, so that the model can reuse what it derived from it (the VIPs)
_last_aggregated: dict[str, tuple[list[tuple[ServiceRegistry, RegistryState]], AggregatedRegistries]] = {}


def _same_states(
    one: Sequence[tuple[ServiceRegistry, RegistryState]], other: Sequence[tuple[ServiceRegistry, RegistryState]]
) -> bool:
    return len(one) == len(other) and all(r is q and s is t for (r, s), (q, t) in zip(one, other, strict=True))


def _aggregate(states: Sequence[tuple[ServiceRegistry, RegistryState]]) -> AggregatedRegistries:
    owners: dict[str, tuple[Service, ServiceRegistry]] = {}
    shadowed: list[ShadowedService] = []
    for registry, state in states:
        for service in state.services:
            kept = owners.get(service.host)
            if kept is None or _takes_precedence(registry, kept[1]):
                if kept is not None:
                    shadowed.append(_shadowed(kept[0], kept[1], registry))
                owners[service.host] = (service, registry)
            elif kept[0] is not service:
                shadowed.append(_shadowed(service, registry, kept[1]))
    workloads: dict[ConfigKey, WorkloadEntry] = {}
    for _, state in states:
        for workload in state.workloads:
            workloads.setdefault(workload.meta.key, workload)
    instances: dict[ConfigKey, list[ServiceInstance]] = defaultdict(list)
    for _, state in states:
        for key, served in state.instances.items():
            instances[key].extend(i for i in served if _kept(i, owners) and workloads.get(key) is i.workload)
    return AggregatedRegistries(
        services=MappingProxyType({host: owners[host][0] for host in sorted(owners)}),
        workloads=MappingProxyType(sorted_by_key(workloads)),
        instances=MappingProxyType({k: tuple(v) for k, v in sorted_by_key(instances).items() if v}),
        shadowed=tuple(shadowed),
        versions=MappingProxyType({registry.name: state.version for registry, state in states}),
        endpoints_versions=MappingProxyType({registry.name: state.endpoints_version for registry, state in states}),
    )


def _kept(instance: ServiceInstance, owners: Mapping[str, tuple[Service, ServiceRegistry]]) -> bool:
    """True when the instance's service is the one that won its host."""
    owner = owners.get(instance.service.host)
    return owner is not None and owner[0] is instance.service


def _takes_precedence(registry: ServiceRegistry, holder: ServiceRegistry) -> bool:
    """A Kubernetes service wins a host held by another provider's (Istio's guard against domain squatting)."""
    return registry.provider == KUBERNETES_PROVIDER and holder.provider != KUBERNETES_PROVIDER


def _shadowed(service: Service, registry: ServiceRegistry, by: ServiceRegistry) -> ShadowedService:
    return ShadowedService(service=service, registry=registry.name, shadowed_by=by.name)
