"""WorkloadGroup auto-registration (Istio's ``pilot/pkg/autoregistration``): a proxy that connects with node
metadata ``AUTO_REGISTER_GROUP: <group>`` gets a WorkloadEntry made from the WorkloadGroup of that name in its
namespace: the group's template (ports, weight, locality, serviceAccount), its labels with ``metadata.labels`` over
the template's, the proxy's IP as address, named ``<group>-<ip>`` (``:`` as ``-``), annotated with Istio's
``istio.io/autoRegistrationGroup``. It is put in an in-memory config source (file mode: it is not written anywhere)
and removed ``grace_period`` seconds after the proxy's last stream closes (Istio's PILOT_WORKLOAD_ENTRY_GRACE_PERIOD,
10 s), unless it reconnects first. A proxy naming a group that does not exist is served without an entry (logged).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping

import structlog

from pilot.config.source_memory import MemorySource
from pilot.config.types import ConfigKey, Kind, Resource, WorkloadGroup
from pilot.model.types import ProxyNode

__all__ = [
    "AUTO_REGISTER_GROUP_METADATA",
    "AUTO_REGISTRATION_GROUP_ANNOTATION",
    "DEFAULT_GRACE_PERIOD",
    "AutoRegistration",
    "entry_name",
    "workload_entry_for",
]

log = structlog.get_logger(__name__)

AUTO_REGISTER_GROUP_METADATA = "AUTO_REGISTER_GROUP"  # Istio's node metadata
AUTO_REGISTRATION_GROUP_ANNOTATION = "istio.io/autoRegistrationGroup"
DEFAULT_GRACE_PERIOD = 10.0


def entry_name(group: str, node: ProxyNode) -> str:
    """Istio's ``autoregisteredWorkloadEntryName``: ``<group>-<ip>``, an IPv6 address's colons as dashes."""
    return f"{group}-{node.ip}".replace(":", "-")


def workload_entry_for(group: WorkloadGroup, node: ProxyNode) -> dict[str, object]:
    """The WorkloadEntry object (as the API server would hold it) for ``node`` connecting to ``group``."""
    name = entry_name(group.meta.key.name, node)
    spec: dict[str, object] = {"address": node.ip, "labels": {**group.template_labels, **group.labels}}
    if group.ports:
        spec["ports"] = dict(group.ports)
    if group.service_account:
        spec["serviceAccount"] = group.service_account
    if group.weight is not None:
        spec["weight"] = group.weight
    if group.locality:
        spec["locality"] = group.locality
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {
            "name": name,
            "namespace": node.namespace,
            "labels": spec["labels"],
            "annotations": {AUTO_REGISTRATION_GROUP_ANNOTATION: group.meta.key.name},
        },
        "spec": spec,
    }


class AutoRegistration:
    """Creates and removes auto-registered WorkloadEntries as proxies connect and disconnect (``DiscoveryServer``
    calls ``connected`` / ``disconnected``)."""

    def __init__(
        self,
        source: MemorySource,
        config: Callable[[], Mapping[ConfigKey, Resource]],
        *,
        grace_period: float = DEFAULT_GRACE_PERIOD,
    ) -> None:
        self._source = source
        self._config = config
        self._grace_period = grace_period
        self._streams: Counter[tuple[str, str]] = Counter()  # (namespace, entry name) -> open streams
        self._removals: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def connected(self, node: ProxyNode) -> None:
        group_name = node.metadata.get(AUTO_REGISTER_GROUP_METADATA)
        if not group_name:
            return
        key = ConfigKey(kind=Kind.WORKLOAD_GROUP, namespace=node.namespace, name=group_name)
        group = self._config().get(key)
        if not isinstance(group, WorkloadGroup):
            log.warning("auto-registration group not found", proxy=node.id, group=str(key))
            return
        entry = workload_entry_for(group, node)
        unit = (node.namespace, entry_name(group_name, node))
        pending = self._removals.pop(unit, None)
        if pending is not None:
            pending.cancel()
        self._streams[unit] += 1
        self._source.put(entry)
        log.info("workload auto-registered", proxy=node.id, group=str(key), workload_entry=unit[1])

    def disconnected(self, node: ProxyNode) -> None:
        group_name = node.metadata.get(AUTO_REGISTER_GROUP_METADATA)
        if not group_name:
            return
        unit = (node.namespace, entry_name(group_name, node))
        if self._streams[unit] == 0:
            return
        self._streams[unit] -= 1
        if self._streams[unit] == 0:
            loop = asyncio.get_running_loop()
            self._removals[unit] = loop.call_later(self._grace_period, self._remove, unit)

    def _remove(self, unit: tuple[str, str]) -> None:
        self._removals.pop(unit, None)
        if self._streams[unit] == 0:
            del self._streams[unit]
            self._source.delete(Kind.WORKLOAD_ENTRY, unit[1], unit[0])
            log.info("auto-registered workload removed", namespace=unit[0], workload_entry=unit[1])
