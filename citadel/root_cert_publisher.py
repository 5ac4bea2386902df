"""Citadel keeps ``istio-ca-root-cert`` in every namespace (``root_configmaps.py``), as istiod's namespace controller.

Two watches (``meshplane.kube_watch.Watcher``, each in a daemon thread: list, watch from the last version seen,
relist on ``410 Gone`` as a replace, jittered backoff) feed ``RootCertState`` on the event loop: Namespaces (those
of ``--namespace-selector``, a label selector, when given: as Istio's ``discoverySelectors``), and the ConfigMaps
named ``istio-ca-root-cert`` in every namespace (a field selector). Whenever a namespace appears, its ConfigMap is
deleted or changed, or the authority's trust bundle changes (a root rotation's phases, a new plugged-in CA: polled
every ``poll`` seconds from ``bundle_generation``), the stale namespaces are written, one by one in a worker thread.
A failed write is logged and retried after a backoff (2 s doubling to 60 s, per namespace).

Several Citadel replicas may run this at once: every write is create-or-update-when-different, so replicas that
hold the same bundle write nothing twice. Two replicas mid-rotation may hold different bundles for a moment (each
polls the CA directory); the ConfigMap then follows whichever wrote last until both agree.

RBAC: ``get``, ``list``, ``watch`` on ``namespaces``; ``get``, ``list``, ``watch``, ``create``, ``update`` on
``configmaps`` (cluster scope: every namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from citadel.authority import Authority
from citadel.metrics import CitadelMetrics
from citadel.root_configmaps import ROOT_CERT_CONFIGMAP, KubeDict, RootCertState, write_root_cert
from meshplane.kube_kinds import core_kind
from meshplane.kube_watch import Delivery, Listed, Unavailable, Watcher, WatchOptions, deliver_on_loop

__all__ = ["NAMESPACES", "ROOT_CERT_CONFIGMAPS", "RootCertPublisher"]

log = structlog.get_logger(__name__)

_FIRST_RETRY = 2.0
_MAX_RETRY = 60.0

NAMESPACES = core_kind("Namespace", "namespaces", namespaced=False)
ROOT_CERT_CONFIGMAPS = core_kind("ConfigMap", "configmaps")  # watched by name: istio-ca-root-cert


class RootCertPublisher:
    """Keeps the ConfigMap of every namespace equal to ``authority``'s trust bundle; ``run`` until cancelled."""

    def __init__(
        self,
        core: client.CoreV1Api,
        *,
        authority: Authority,
        metrics: CitadelMetrics | None = None,
        namespace_selector: str = "",
        poll: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = RootCertState()
        self._core = core
        self._authority = authority
        self._metrics = metrics
        self._namespace_selector = namespace_selector
        self._poll = poll
        self._clock = clock
        self._wake = asyncio.Event()
        self._retry: dict[str, tuple[float, float]] = {}  # namespace -> (not before, next delay)

    async def run(self) -> None:
        deliver = deliver_on_loop(asyncio.get_running_loop(), self.apply)
        api = self._core.api_client
        watchers = (
            Watcher(api, NAMESPACES, deliver, WatchOptions(label_selector=self._namespace_selector or None)),
            Watcher(
                api,
                ROOT_CERT_CONFIGMAPS,
                deliver,
                WatchOptions(field_selector=f"metadata.name={ROOT_CERT_CONFIGMAP}"),
            ),
        )
        for watcher in watchers:
            watcher.start()
        log.info(
            "publishing the trust bundle to every namespace",
            configmap=ROOT_CERT_CONFIGMAP,
            namespace_selector=self._namespace_selector or None,
        )
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                self._wake.clear()
                await self.publish()
        finally:
            for watcher in watchers:
                watcher.stop()  # its connection is shut down; its daemon thread ends soon after

    def apply(self, delivery: Delivery) -> None:
        """One delivery of the watches (on the loop): the state follows it, then the stale namespaces are written."""
        if isinstance(delivery, Unavailable):  # the watcher logged it and tries again
            return
        listed: Callable[[Iterable[KubeDict]], None]
        changed: Callable[[str, KubeDict], None]
        if delivery.kind == NAMESPACES:
            listed, changed = self.state.namespaces_listed, self.state.namespace_changed
        else:
            listed, changed = self.state.configmaps_listed, self.state.configmap_changed
        if isinstance(delivery, Listed):
            listed(delivery.objects)
        else:
            changed(delivery.event.type, delivery.event.object)
        self._wake.set()

    async def publish(self) -> int:
        """Write every stale namespace whose retry time has come; the number written."""
        bundle = self._authority.trust_bundle_pem.decode()
        written = 0
        for namespace in self.state.stale(bundle):
            not_before, delay = self._retry.get(namespace, (0.0, _FIRST_RETRY))
            if self._clock() < not_before:
                continue
            try:
                action = await asyncio.to_thread(write_root_cert, self._core, namespace, bundle)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                reason = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else type(exc).__name__
                log.warning(
                    "writing the root-cert ConfigMap failed", namespace=namespace, reason=reason, retry_in=delay
                )
                self._retry[namespace] = (self._clock() + delay, min(delay * 2, _MAX_RETRY))
                continue
            self._retry.pop(namespace, None)
            if action == "gone":
                self.state.namespaces.discard(namespace)
                continue
            self.state.published[namespace] = bundle
            if action != "unchanged":
                written += 1
                if self._metrics is not None:
                    self._metrics.configmap_written(action)
                log.info("root-cert ConfigMap written", namespace=namespace, action=action)
        return written
