"""What a control-plane process reads from its cluster (Pilot and Mixer alike): the config source of Istio's and
Mixer's CRDs and the Kubernetes service registry's feed, on one API client with a connection per watch.

``ClusterReader.sources`` go into the process's ``SourceGroup`` (loaded before it serves, watched until it stops);
``registry`` into its snapshots' registries; ``close()`` once they stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from kubernetes import client

from meshplane.kube_api import KubeAccess, new_api_client, watch_api_client
from meshplane.kube_watch import WatchOptions
from pilot.config.source import ConfigSink
from pilot.kube.changes import RegistryChange
from pilot.kube.config_source import WATCH_CONNECTIONS, KubernetesConfigSource
from pilot.kube.registry_feed import RegistryFeed
from pilot.kube.store import KubernetesRegistry
from pilot.model.types import DEFAULT_DOMAIN_SUFFIX

__all__ = ["ClusterReader", "read_cluster"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterReader:
    api: client.ApiClient
    config: KubernetesConfigSource
    feed: RegistryFeed
    status_api: client.ApiClient  # its own pool: status writes and the Lease never wait for a watch's connection

    @property
    def registry(self) -> KubernetesRegistry:
        return self.feed.registry

    @property
    def sources(self) -> tuple[KubernetesConfigSource, RegistryFeed]:
        return (self.config, self.feed)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]  # untyped upstream
        self.status_api.close()  # type: ignore[no-untyped-call]


def read_cluster(
    access: KubeAccess,
    sink: ConfigSink,
    on_registry_change: Callable[[RegistryChange], None],
    *,
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
    options: WatchOptions | None = None,
) -> ClusterReader:
    """The cluster's config source (publishing to ``sink``) and registry feed (``on_registry_change`` on the
    loop); nothing is read before their ``load_initial``."""
    api = watch_api_client(access, WATCH_CONNECTIONS)
    registry = KubernetesRegistry(domain_suffix=domain_suffix)
    log.info("kube_cluster", cluster=access.describe())
    return ClusterReader(
        api=api,
        config=KubernetesConfigSource(api, sink, options=options),
        feed=RegistryFeed(api, registry, on_registry_change, options=options),
        status_api=new_api_client(access),
    )
