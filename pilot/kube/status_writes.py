"""Pilot's status writes behind leader election: what ``pilot.app`` starts when it reads config from Kubernetes.

Every Pilot replica watches the same objects and validates them the same way, so all of them know every status;
only the holder of the Lease ``meshplane-pilot-status`` (in Pilot's namespace) writes it, as istiod's status
controller writes behind its ``istio-status-leader`` election. Wiring::

    writes = status_writes(api, lambda: store.rejections, lease_namespace=pod_namespace)
    # the Kubernetes config source: writes.reconciler.observe(obj) for every ADDED/MODIFIED object,
    #                               writes.reconciler.forget(key) for every DELETED one
    task = asyncio.create_task(writes.run())
    ...
    writes.stop(); await task  # releases the lease: another replica writes from its next try on
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubernetes import client

from meshplane.kube_leader import LeaderElector, default_identity
from pilot.config.store import Rejection
from pilot.kube.status import KubeStatusClient, StatusReconciler

__all__ = ["STATUS_LEASE", "StatusWrites", "status_writes"]

STATUS_LEASE = "meshplane-pilot-status"


@dataclass(frozen=True, slots=True)
class StatusWrites:
    """A status reconciler and the election that lets it write."""

    reconciler: StatusReconciler
    elector: LeaderElector

    async def run(self) -> None:
        """Elect and write until ``stop()`` (or cancellation); the lease is released at the end."""
        writing = asyncio.create_task(self.reconciler.run(), name="pilot-status-writes")
        try:
            await self.elector.run()
        finally:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)

    def stop(self) -> None:
        self.elector.stop()


def status_writes(
    api: client.ApiClient,
    rejections: Callable[[], Sequence[Rejection]],
    *,
    lease_namespace: str,
    identity: str | None = None,
    source: str = "kubernetes",
    lease_name: str = STATUS_LEASE,
) -> StatusWrites:
    """Status writes for the objects of config source ``source``, by whichever replica holds the lease."""
    reconciler = StatusReconciler(KubeStatusClient(api), rejections, source=source)
    elector = LeaderElector(
        api,
        lease_namespace,
        lease_name,
        identity or default_identity(),
        on_started_leading=reconciler.start_writing,
        on_stopped_leading=reconciler.stop_writing,
    )
    return StatusWrites(reconciler=reconciler, elector=elector)
