"""Config from the Kubernetes API server: Istio's CRDs and Mixer's, listed and watched (``meshplane.kube_watch``),
each object validated like a file's document (``pilot.config.parse.parse_object``) and published to the store as a
unit of its own, ``kind/namespace/name``, its origin the object reference ``kind/namespace/name@resourceVersion``
(``pilot.config.origin``): every message names the object and the version that was read.

Kinds read (``api_resources.CONFIG_KINDS``): VirtualService, DestinationRule, ServiceEntry, WorkloadEntry
(``networking.istio.io``), PeerAuthentication, AuthorizationPolicy, RequestAuthentication (``security.istio.io``),
Telemetry (``telemetry.istio.io``), EnvoyFilter (``networking.istio.io`` v1alpha3), AccessList, RateLimit
(``mixer.meshplane.io/v1``), each in the newest version the server serves. Istio's other kinds
(``ISTIO_KINDS_NOT_READ``: ProxyConfig, WasmPlugin, ...) are watched too, so that each object of them gets
the file source's warning for a skipped document, naming it. A CRD not installed is logged once and looked for
again later; the others are read meanwhile.

With a directory source beside it, the store holds both (``ConfigStore(sources=sources.store_sources(...))``):
``KUBERNETES`` first, so the cluster's object wins a key defined in both and the file's is rejected as a duplicate
naming the object (the cluster is what every replica and ``kubectl`` see; a file is one replica's).

It is a ``ConfigSource`` (``pilot.config.source``, through ``watch_group.WatchedKinds``); ``load_initial`` returns
once every kind was listed (or found not served).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from kubernetes import client

from meshplane.kube_kinds import ApiKind
from meshplane.kube_watch import Changed, Delivery, Listed, WatchOptions
from pilot.config.parse import ParsedFile
from pilot.config.source import ConfigSink
from pilot.config.source_memory import object_unit, parse_object_unit
from pilot.config.types import ConfigKey
from pilot.kube.api_resources import CONFIG_KINDS, ISTIO_KINDS_NOT_READ
from pilot.kube.sources import KUBERNETES
from pilot.kube.watch_group import WatchedKinds

__all__ = ["KUBERNETES", "WATCH_CONNECTIONS", "KubernetesConfigSource", "ObjectObserver"]

log = structlog.get_logger(__name__)

KubeDict = Mapping[str, Any]
# connections an API client needs for Pilot's watches (config and registry kinds, one held open each) and lists
WATCH_CONNECTIONS = 24


class ObjectObserver(Protocol):
    """Who follows the objects as the watch delivers them, status and all (``pilot.kube.status.StatusReconciler``:
    the generation and status to write a verdict against)."""

    def observe(self, obj: Mapping[str, Any]) -> None: ...

    def forget(self, key: ConfigKey) -> None: ...


class _Batch:
    """What one batch of deliveries changed, by unit: the latest parse of each, and the units gone."""

    def __init__(self, observer: ObjectObserver | None) -> None:
        self.parsed: dict[str, ParsedFile] = {}
        self.removed: set[str] = set()
        self._observer = observer

    def put(self, obj: KubeDict) -> None:
        parsed, _ = parse_object_unit(obj)
        self.parsed[parsed.file] = parsed
        self.removed.discard(parsed.file)
        if self._observer is not None:
            self._observer.observe(obj)

    def delete(self, obj: KubeDict) -> None:
        unit = object_unit(obj)
        self.parsed.pop(unit, None)
        self.removed.add(unit)
        if self._observer is not None:
            meta = obj.get("metadata") or {}
            key = ConfigKey(
                kind=str(obj.get("kind", "")), namespace=str(meta.get("namespace", "")), name=str(meta.get("name", ""))
            )
            self._observer.forget(key)


class KubernetesConfigSource(WatchedKinds):
    """Feeds ``sink`` (as source ``name``) from the API server ``api`` reaches."""

    def __init__(
        self,
        api: client.ApiClient,
        sink: ConfigSink,
        *,
        name: str = KUBERNETES,
        kinds: Sequence[ApiKind] = CONFIG_KINDS + ISTIO_KINDS_NOT_READ,
        options: WatchOptions | None = None,
    ) -> None:
        super().__init__(api, kinds, options)
        self._sink = sink
        self._name = name
        self._units: set[str] = set()
        self.observer: ObjectObserver | None = None  # set before load_initial to follow every object

    @property
    def name(self) -> str:
        return self._name

    def loaded(self) -> None:
        store = self._sink.store
        log.info(
            "config_loaded",
            source=self._name,
            objects=len(self._units),
            resources=len(store.accepted),
            rejected=len(store.rejections),
            version=store.version,
        )

    async def take(self, deliveries: Sequence[Delivery]) -> None:
        self.apply(deliveries)

    def apply(self, deliveries: Sequence[Delivery]) -> None:
        """Publish what a batch of deliveries changed, at once: a listing's difference to what was known (a
        relist's objects gone are removed), then each event (an object's last parse in the batch wins)."""
        batch = _Batch(self.observer)
        for delivery in deliveries:
            _collect(batch, delivery)
        if not batch.parsed and not batch.removed:
            return
        removed = batch.removed & self._units
        self._units -= removed
        self._units |= batch.parsed.keys()
        self._sink.publish(self._name, list(batch.parsed.values()), sorted(removed))


def _collect(batch: _Batch, delivery: Delivery) -> None:
    if isinstance(delivery, Listed):
        for gone in delivery.diff.deleted:
            batch.delete(gone)
        for obj in (*delivery.diff.added, *delivery.diff.modified):
            batch.put(obj)
    elif isinstance(delivery, Changed):
        if delivery.event.type == "DELETED":
            batch.delete(delivery.event.object)
        else:
            batch.put(delivery.event.object)
