"""Mixer as a running process: config sources -> store -> snapshot -> policy engine and workload registry;
one gRPC server for ext_authz checks and access logs; the monitor endpoints.

Mixer reads config through Pilot's config layer and its source seam (a ``SourceGroup`` of sources publishing to a
``ConfigSink`` over a ``ConfigStore``: a ``DirectorySource``, the cluster's ``KubernetesConfigSource``, or both, as
Pilot; the same validation, the same last-good semantics) and builds the same ``MeshSnapshot``, with the
Kubernetes service registry when it reads a cluster (its pods are the workloads policies select and requests come
from); so Pilot and Mixer agree on which workloads a policy selects (``pilot.model.policies``) and on who is at
which address.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog

from meshplane.mixer_names import DEFAULT_GRPC_ADDRESS, DEFAULT_MONITOR_ADDRESS
from meshplane.serving import stop_on_signals, watch_until_stopped
from mixer.accesslog_service import DEFAULT_QUEUE_ENTRIES, TelemetryPipeline, add_access_log_service
from mixer.authz_service import add_authorization_service
from mixer.checks import PolicyEngine
from mixer.graph import ServiceGraph
from mixer.metrics import MixerMetrics
from mixer.monitor import MixerMonitor
from mixer.redis_client import RedisAddress, RedisClient
from mixer.shared_quota import SharedQuota
from pilot.config import FILES, ConfigSink, ConfigStore, DirectorySource, SourceGroup, StoreChange
from pilot.config.source import ConfigSource
from pilot.kube.sources import load_or_stop, store_sources
from pilot.model import (
    DEFAULT_DOMAIN_SUFFIX,
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    SERVICE_ENTRIES,
    MeshSnapshot,
    ServiceRegistry,
    build_snapshot,
)
from pilot.parse_ahead import ParseAhead

if TYPE_CHECKING:
    from meshplane.kube_api import KubeAccess
    from pilot.kube.cluster import ClusterReader

__all__ = ["MixerOptions", "MixerServer", "run_mixer"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class MixerOptions:
    config_dir: Path | None = None  # the mesh's config directory; with ``kube`` or instead of it
    kube: KubeAccess | None = None  # the cluster whose CRDs and service registry Mixer reads
    grpc_address: str = DEFAULT_GRPC_ADDRESS
    monitor_address: str = DEFAULT_MONITOR_ADDRESS
    otlp_endpoint: str | None = None
    graph_window: float = 60.0  # seconds of /graph's sliding window
    log_queue: int = DEFAULT_QUEUE_ENTRIES  # access-log entries held for processing before dropping
    quota_store: RedisAddress | None = None  # RateLimit counters in this Redis (shared by Mixers); None: in memory
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    root_namespace: str = DEFAULT_ROOT_NAMESPACE


class MixerServer:
    """The policy engine, the telemetry pipeline and the gRPC server serving both; fed config by ``update``.

    The snapshot is built in a worker thread (hundreds of milliseconds for a large mesh), so checks and access
    logs keep being answered meanwhile; the engine then switches to it on the event loop. Changes that arrive
    while a snapshot is being built are coalesced into the next one."""

    def __init__(self, options: MixerOptions, *, registries: Sequence[ServiceRegistry] = (SERVICE_ENTRIES,)) -> None:
        """``registries``: the service registries every snapshot aggregates (as Pilot's)."""
        self.options = options
        self.registries = tuple(registries)
        self.metrics = MixerMetrics(otlp_endpoint=options.otlp_endpoint)
        quota = SharedQuota(RedisClient(options.quota_store)) if options.quota_store is not None else None
        self.engine = PolicyEngine(shared_quota=quota)
        self.pipeline = TelemetryPipeline(
            metrics=self.metrics,
            registry=lambda: self.engine.registry,
            graph=ServiceGraph(window_seconds=max(1, round(options.graph_window))),
            capacity=options.log_queue,
        )
        self._snapshot: MeshSnapshot | None = None
        self._server: grpc.aio.Server | None = None
        self._pending: ConfigStore | None = None
        self._updating: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def ready(self) -> bool:
        return self._server is not None and self.engine.ready

    @property
    def in_force_version(self) -> int:
        """The config version checks and telemetry use now (``/debug/configz``: ``in_force_version``)."""
        return self.engine.version

    def update(self, store: ConfigStore) -> None:
        """Put the store's accepted config in force soon (see the class doc); returns at once."""
        self._pending = store
        if self._updating is None or self._updating.done():
            self._updating = asyncio.get_running_loop().create_task(self.apply_pending(), name="mixer-update")

    async def load(self, store: ConfigStore) -> None:
        """Put the store's accepted config in force now (the first load, before serving)."""
        self._pending = store
        if self._updating is not None and not self._updating.done():
            await self._updating  # it takes this store too before it ends
        else:
            await self.apply_pending()

    async def apply_pending(self) -> None:
        """Build and switch to snapshots until no change is pending."""
        options = self.options
        while self._pending is not None:
            store, self._pending = self._pending, None
            accepted, version = dict(store.accepted), store.version
            self._snapshot = await asyncio.to_thread(
                build_snapshot,
                accepted,
                version,
                self._snapshot,
                options.domain_suffix,
                trust_domain=options.trust_domain,
                root_namespace=options.root_namespace,
                registries=self.registries,
            )
            self.engine.update(self._snapshot)

    async def start(self) -> None:
        server = grpc.aio.server()
        add_authorization_service(server, self.engine, self.metrics)
        add_access_log_service(server, self.pipeline)
        self.port = server.add_insecure_port(self.options.grpc_address)
        if self.port == 0:
            raise OSError(f"mixer: cannot listen on --grpc-address {self.options.grpc_address}")
        await self.engine.start()
        self.pipeline.start()
        await server.start()
        self._server = server

    async def stop(self, grace: float = 1.0) -> None:
        if self._updating is not None:
            self._updating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._updating
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        await self.pipeline.stop()
        await self.engine.stop()
        if self.engine.shared_quota is not None:
            await self.engine.shared_quota.close()
        self.metrics.shutdown()


async def run_mixer(
    options: MixerOptions, stop: asyncio.Event | None = None, *, parse_ahead: ParseAhead | None = None
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM arrives when no event is given). ``parse_ahead``: a worker
    started on ``options.config_dir`` before the imports, whose parses the first load uses."""
    if options.config_dir is not None and not options.config_dir.is_dir():
        raise FileNotFoundError(f"--config-dir {options.config_dir} is not a directory")
    stop = stop or stop_on_signals()
    store = ConfigStore(
        domain_suffix=options.domain_suffix,
        sources=store_sources(kubernetes=options.kube is not None, files=options.config_dir is not None),
    )

    def on_change(change: StoreChange) -> None:
        log.info("config changed", version=change.version, changed=len(change.changed))
        mixer.update(store)

    sink = ConfigSink(store, on_change)
    sources: list[ConfigSource] = []
    registries: list[ServiceRegistry] = [SERVICE_ENTRIES]
    cluster: ClusterReader | None = None
    if options.kube is not None:
        from pilot.kube.cluster import read_cluster  # the kubernetes client is imported only when used

        cluster = read_cluster(
            options.kube, sink, lambda change: mixer.update(store), domain_suffix=options.domain_suffix
        )
        sources += cluster.sources
        registries.append(cluster.registry)
    if options.config_dir is not None:
        sources.append(DirectorySource(options.config_dir, sink, name=FILES, parse_ahead=parse_ahead))
    mixer = MixerServer(options, registries=registries)
    try:
        await _serve(mixer, SourceGroup(sources), store, stop)
    finally:
        if cluster is not None:
            cluster.close()


async def _serve(mixer: MixerServer, sources: SourceGroup, store: ConfigStore, stop: asyncio.Event) -> None:
    options = mixer.options
    for source in sources.sources:
        if not await load_or_stop(source, stop):
            sources.stop()
            log.info("mixer stopped before it served")
            return
    await mixer.load(store)  # also for an empty directory, where on_change was not called
    await mixer.start()
    monitor = MixerMonitor(
        options.monitor_address,
        ready=lambda: mixer.ready,
        exposition=mixer.metrics.exposition,
        graph=mixer.pipeline.graph.snapshot,
        configz=lambda: {**store.configz(), "in_force_version": mixer.in_force_version},
    )
    try:
        await monitor.start()
    except OSError:
        await mixer.stop()
        raise
    log.info(
        "mixer serving",
        config_dir=str(options.config_dir) if options.config_dir is not None else None,
        cluster=options.kube.describe() if options.kube is not None else None,
        grpc=options.grpc_address,
        monitor=options.monitor_address,
        otlp=options.otlp_endpoint or "off",
        resources=len(store.accepted),
    )
    try:
        await watch_until_stopped(sources, stop)
    finally:
        await monitor.stop()
        await mixer.stop()
        log.info("mixer stopped")
