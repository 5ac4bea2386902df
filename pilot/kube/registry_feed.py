"""The Kubernetes service registry fed from the API server: Services, EndpointSlices (``discovery.k8s.io/v1``, or
``v1beta1`` where only that is served), Pods, Namespaces and Nodes listed and watched (``meshplane.kube_watch``) into a
``KubernetesRegistry``. Each batch of deliveries is applied in one call, off the event loop (a translation of a
large cluster takes a few hundred milliseconds), in order: a listing replaces its kind, the watch events between
two listings go to one ``apply_all``. ``on_change`` hears every change that matters to the proxies (a
``RegistryChange``: ENDPOINTS ones are EDS-only pushes), on the loop.

It runs like a config source (``load_initial``: until every kind is listed; ``watch``: until ``stop()``), so that a
process runs it in its ``SourceGroup``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog
from kubernetes import client

from meshplane.kube_kinds import ApiKind
from meshplane.kube_watch import Changed, Delivery, Listed, WatchOptions
from pilot.kube.api_resources import REGISTRY_KINDS
from pilot.kube.changes import NO_CHANGE, ChangeLevel, RegistryChange
from pilot.kube.objects import KINDS, Kind
from pilot.kube.store import KubernetesRegistry, WatchEvent
from pilot.kube.watch_group import WatchedKinds

__all__ = ["REGISTRY_FEED", "RegistryFeed"]

log = structlog.get_logger(__name__)

REGISTRY_FEED = "kubernetes-registry"


def _registry_kind(kind: ApiKind) -> Kind:
    name = kind.kind
    for known in KINDS:
        if known == name:
            return known
    raise ValueError(f"the Kubernetes registry does not read {name}")


def apply_deliveries(registry: KubernetesRegistry, deliveries: Sequence[Delivery]) -> RegistryChange:
    """Apply deliveries in order (a listing replaces its kind; the events between listings: one ``apply_all``);
    the merged change. Blocking: run it in a worker thread."""
    change = NO_CHANGE
    events: list[WatchEvent] = []

    def flush() -> RegistryChange:
        applied = registry.apply_all(events) if events else NO_CHANGE
        events.clear()
        return applied

    for delivery in deliveries:
        if isinstance(delivery, Listed):
            change = change.merged(flush()).merged(registry.replace(_registry_kind(delivery.kind), delivery.objects))
        elif isinstance(delivery, Changed):
            event = delivery.event
            events.append(WatchEvent(type=event.type, kind=_registry_kind(delivery.kind), object=event.object))
    return change.merged(flush())


class RegistryFeed(WatchedKinds):
    """Watches the registry's kinds into ``registry``; ``on_change`` is called on the loop for each change."""

    def __init__(
        self,
        api: client.ApiClient,
        registry: KubernetesRegistry,
        on_change: Callable[[RegistryChange], None],
        *,
        kinds: Sequence[ApiKind] = tuple(REGISTRY_KINDS.values()),
        options: WatchOptions | None = None,
    ) -> None:
        super().__init__(api, kinds, options)
        self.registry = registry
        self._on_change = on_change

    @property
    def name(self) -> str:
        return REGISTRY_FEED

    def loaded(self) -> None:
        state = self.registry.state({})
        log.info(
            "kube_registry_loaded",
            services=len(state.services),
            workloads=len(state.workloads),
            version=state.version,
            notes=len(self.registry.notes),
        )

    async def take(self, deliveries: Sequence[Delivery]) -> None:
        change = await asyncio.to_thread(apply_deliveries, self.registry, deliveries)
        if change.level is ChangeLevel.NONE:
            return
        log.debug("kube_registry_changed", level=change.level.name, hosts=len(change.hosts))
        try:
            self._on_change(change)
        except Exception:  # a failing consumer must not stop the registry from being fed
            log.exception("kube_registry_on_change_failed")
