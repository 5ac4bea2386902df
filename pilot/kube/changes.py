"""What a change of the Kubernetes registry's state means for the proxies (Istio's ``PushRequest``: full, or an EDS
update of some services' endpoints, as the kube registry's ``EDSUpdate`` decides).

- ``NONE``: the translated state is the same (a Pod's readiness or status alone: the EndpointSlice change that
  follows it is what moves endpoints; a Namespace's labels; an object the translation does not read).
- ``ENDPOINTS``: only endpoints of services changed, and every proxy's clusters and listeners stay valid: the
  service is not headless (Istio pushes a headless service's endpoint changes in full: its endpoints are
  listeners), and each changed port keeps the same set of (identity, labels) of its endpoints, so every subset's
  SPIFFE IDs in the clusters' SAN checks stay the same (Istio pushes in full when service accounts change).
  Sidecar pods may have appeared or gone (``workloads``): that changes only their own proxies' config, which a
  push has to rebuild for those proxies (Istio's proxy-specific update for a pod).
- ``SERVICES``: anything else: a service, its ports or VIPs, a workload's labels, address, locality or service
  account, the instances of a workload that stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from types import MappingProxyType

from pilot.config.types import ConfigKey, Resolution, WorkloadEntry
from pilot.model.registry import RegistryState
from pilot.model.types import Endpoint, Service

__all__ = ["ChangeLevel", "RegistryChange", "classify_change"]


class ChangeLevel(IntEnum):
    """Ordered: the larger of two changes is the one a batch of events needs."""

    NONE = 0
    ENDPOINTS = 1
    SERVICES = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryChange:
    level: ChangeLevel
    hosts: frozenset[str] = frozenset()  # ENDPOINTS: the services whose endpoints changed
    workloads: frozenset[ConfigKey] = frozenset()  # ENDPOINTS: sidecar pods that appeared or went away

    def merged(self, other: RegistryChange) -> RegistryChange:
        if self.level is not other.level:
            return self if self.level > other.level else other
        return RegistryChange(
            level=self.level, hosts=self.hosts | other.hosts, workloads=self.workloads | other.workloads
        )


NO_CHANGE = RegistryChange(level=ChangeLevel.NONE)
_SERVICE_CHANGE = RegistryChange(level=ChangeLevel.SERVICES)
_NO_ENDPOINTS: Mapping[int, tuple[Endpoint, ...]] = MappingProxyType({})


def classify_change(old: RegistryState, new: RegistryState) -> RegistryChange:
    old_services = {s.host: s for s in old.services}
    new_services = {s.host: s for s in new.services}
    if old_services.keys() != new_services.keys():
        return _SERVICE_CHANGE
    hosts = set()
    for host, service in new_services.items():
        before = old_services[host]
        if before is service:  # the translator reuses a service whose objects are the same
            continue
        if replace(before, endpoints=_NO_ENDPOINTS) != replace(service, endpoints=_NO_ENDPOINTS):
            return _SERVICE_CHANGE
        if before.endpoints != service.endpoints:
            if service.resolution is Resolution.NONE or _identities(before) != _identities(service):
                return _SERVICE_CHANGE
            hosts.add(host)
    workloads = _changed_workloads(old, new)
    if workloads is None:
        return _SERVICE_CHANGE
    if not hosts and not workloads:
        return NO_CHANGE
    return RegistryChange(level=ChangeLevel.ENDPOINTS, hosts=frozenset(hosts), workloads=workloads)


def _identities(service: Service) -> dict[int, frozenset[tuple[str, str, tuple[tuple[str, str], ...]]]]:
    """Per port: the distinct (workload namespace, service account, labels) of its endpoints that have an identity
    (a sidecar's, or a service account): what every subset's SAN check (``cluster_tls.destination_identities``) is
    computed from. Endpoints without one (pods without sidecar) come and go over EDS alone."""
    return {
        number: frozenset(
            (e.workload.namespace if e.workload else "", e.service_account, tuple(sorted(e.labels.items())))
            for e in endpoints
            if e.workload is not None or e.service_account
        )
        for number, endpoints in service.endpoints.items()
    }


def _changed_workloads(old: RegistryState, new: RegistryState) -> frozenset[ConfigKey] | None:
    """The workloads added or removed; None when a workload that stays changed (or its instances did)."""
    before: dict[ConfigKey, WorkloadEntry] = {w.meta.key: w for w in old.workloads}
    after: dict[ConfigKey, WorkloadEntry] = {w.meta.key: w for w in new.workloads}
    for key in before.keys() & after.keys():
        if before[key] is not after[key] and before[key] != after[key]:
            return None
        if _instances(old, key) != _instances(new, key):
            return None
    return frozenset(before.keys() ^ after.keys())


def _instances(state: RegistryState, key: ConfigKey) -> tuple[tuple[str, object, int], ...]:
    return tuple((i.service.host, i.port, i.target_port) for i in state.instances.get(key, ()))
