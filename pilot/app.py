"""Pilot as a running process: config sources -> store -> xDS server, plus the monitor endpoints.

Config comes through the source seam (``pilot.config.source``): a ``DirectorySource`` (``--config-dir``), a
``KubernetesConfigSource`` (``--kubeconfig``/``--in-cluster``: Istio's and Mixer's CRDs), or both in one store (the
cluster's objects win a key both define: ``pilot.kube.config_source``). With a cluster, the Kubernetes service
registry (``pilot.kube.RegistryFeed``: Services, EndpointSlices, Pods, Namespaces, Nodes) is served beside the
ServiceEntry registry, and each change of it is pushed (endpoint-only ones as EDS alone). The mesh config file
(``--mesh-config``) is watched beside them (``pilot.config.mesh_config_file``): an edit is pushed as a
``MeshConfig`` change. Pilot serves once every source has loaded (every kind of the cluster listed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from meshplane.serving import freeze_loaded, stop_on_signals, watch_until_stopped
from pilot.autoregistration import DEFAULT_GRACE_PERIOD, AutoRegistration
from pilot.config import FILES, ConfigSink, ConfigStore, DirectorySource, SourceGroup, StoreChange
from pilot.config.mesh_config import MeshConfig, MeshNames
from pilot.config.mesh_config_file import MeshConfigFile
from pilot.config.source import ConfigSource
from pilot.config.source_memory import MemorySource
from pilot.kube.sources import load_or_stop, store_sources
from pilot.metrics import PilotMetrics
from pilot.model import (
    DEFAULT_DOMAIN_SUFFIX,
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    SERVICE_ENTRIES,
    ServiceRegistry,
)
from pilot.monitor import MonitorServer
from pilot.parse_ahead import ParseAhead
from pilot.xds import DiscoveryServer
from xdscore import (
    DEFAULT_NEW_STREAMS_BURST,
    DEFAULT_NEW_STREAMS_PER_SECOND,
    DEFAULT_SEND_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
)

if TYPE_CHECKING:
    from meshplane.kube_api import KubeAccess
    from pilot.kube.cluster import ClusterReader
    from pilot.kube.status_writes import StatusWrites

__all__ = ["PilotOptions", "run_pilot"]

AUTO = "autoregistration"  # the config source of auto-registered WorkloadEntries
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PilotOptions:
    config_dir: Path | None = None  # a directory of Istio YAML; with ``kube`` or instead of it
    kube: KubeAccess | None = None  # the cluster whose CRDs and service registry Pilot reads
    xds_address: str = "127.0.0.1:15010"
    monitor_address: str = "127.0.0.1:15014"
    debounce: float = 0.1
    debounce_max: float = 1.0
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    trust_domain: str = DEFAULT_TRUST_DOMAIN  # SPIFFE trust domain of workload identities (as Citadel's)
    root_namespace: str = DEFAULT_ROOT_NAMESPACE  # a PeerAuthentication without selector here is mesh-wide
    mesh_config: Path | None = None  # Istio's MeshConfig, watched; its rootNamespace/trustDomain win
    # with a cluster: where the Lease of the status writes lives (Pilot's own namespace in a pod); None: no writes
    status_lease_namespace: str | None = None
    # how long an auto-registered WorkloadEntry outlives its proxy's last stream (pilot.autoregistration)
    workload_entry_grace_period: float = DEFAULT_GRACE_PERIOD
    send_timeout: float = DEFAULT_SEND_TIMEOUT  # seconds a response's write holds its push-throttle slot
    # seconds a proxy may read nothing of its stream before the stream is closed
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    new_streams_per_second: float = DEFAULT_NEW_STREAMS_PER_SECOND  # admission rate of new ADS streams (0: no limit)
    new_streams_burst: int = DEFAULT_NEW_STREAMS_BURST
    vhds: bool = True  # delta streams' route tables over VHDS (``pilot.xds.vhds``)


async def run_pilot(
    options: PilotOptions, stop: asyncio.Event | None = None, *, parse_ahead: ParseAhead | None = None
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM arrives when no event is given). ``parse_ahead``: a worker
    started on ``options.config_dir`` before the imports, whose parses the first load uses."""
    if options.config_dir is not None and not options.config_dir.is_dir():
        raise FileNotFoundError(f"--config-dir {options.config_dir} is not a directory")
    stop = stop or stop_on_signals()
    flags = MeshNames(trust_domain=options.trust_domain, root_namespace=options.root_namespace)
    store = ConfigStore(
        domain_suffix=options.domain_suffix,
        # auto-registered WorkloadEntries (pilot.autoregistration) come last: a configured one of that name wins
        sources=(*store_sources(kubernetes=options.kube is not None, files=options.config_dir is not None), AUTO),
    )
    metrics = PilotMetrics()
    mesh_file = None
    mesh = MeshConfig(names=flags)
    if options.mesh_config is not None:
        mesh_file = MeshConfigFile(
            options.mesh_config,
            on_change=lambda config: server.update_mesh(config.settings),
            on_rejected=metrics.rejected_config,
            defaults=flags,
        )
        await mesh_file.load_initial()  # MeshConfigError: Pilot does not start on a bad file
        mesh = mesh_file.current
    registries: list[ServiceRegistry] = [SERVICE_ENTRIES]
    sources: list[ConfigSource] = []
    cluster: ClusterReader | None = None

    status: StatusWrites | None = None

    def on_change(change: StoreChange) -> None:
        log.info("config changed", version=change.version, changed=len(change.changed))
        server.update_config(store.accepted, change.version)

    sink = ConfigSink(store, on_change, on_rejected=metrics.rejected_config)
    if options.kube is not None:
        from pilot.kube.cluster import read_cluster  # the kubernetes client is imported only when used

        cluster = read_cluster(
            options.kube, sink, lambda change: server.registries_changed(), domain_suffix=options.domain_suffix
        )
        registries.append(cluster.registry)
        sources += cluster.sources
        if options.status_lease_namespace is not None:
            from pilot.kube.status_writes import status_writes

            status = status_writes(
                cluster.status_api, lambda: store.rejections, lease_namespace=options.status_lease_namespace
            )
            cluster.config.observer = status.reconciler
    server = DiscoveryServer(
        debounce=options.debounce,
        debounce_max=options.debounce_max,
        domain_suffix=options.domain_suffix,
        trust_domain=mesh.names.trust_domain,
        root_namespace=mesh.names.root_namespace,
        mesh=mesh.settings,
        metrics=metrics,
        registries=registries,
        send_timeout=options.send_timeout,
        stall_timeout=options.stall_timeout,
        new_streams_per_second=options.new_streams_per_second,
        new_streams_burst=options.new_streams_burst,
        vhds=options.vhds,
    )
    registration = MemorySource(sink, name=AUTO)
    server.proxy_listeners.append(
        AutoRegistration(registration, lambda: store.accepted, grace_period=options.workload_entry_grace_period)
    )
    sources.append(registration)
    if options.config_dir is not None:
        exclude = (options.mesh_config,) if options.mesh_config is not None else ()
        sources.append(DirectorySource(options.config_dir, sink, name=FILES, exclude=exclude, parse_ahead=parse_ahead))
    group = SourceGroup(sources + ([mesh_file] if mesh_file is not None else []))
    writing = asyncio.create_task(status.run(), name="pilot-status") if status is not None else None
    try:
        await _serve(options, group, store, server, mesh_file, mesh, stop)
    finally:
        if writing is not None and status is not None:
            status.stop()
            await asyncio.gather(writing, return_exceptions=True)
        if cluster is not None:
            cluster.close()


async def _serve(
    options: PilotOptions,
    sources: SourceGroup,
    store: ConfigStore,
    server: DiscoveryServer,
    mesh_file: MeshConfigFile | None,
    mesh: MeshConfig,
    stop: asyncio.Event,
) -> None:
    """Load every source, serve, watch them until ``stop``."""
    for source in sources.sources:
        if source is not mesh_file and not await load_or_stop(source, stop):  # mesh_file: loaded already
            sources.stop()
            log.info("pilot stopped before it served")
            return
    if store.version == 0:  # nothing accepted (an empty directory): on_change was not called, serve empty config
        server.update_config(store.accepted, store.version)
    freeze_loaded()
    await server.start(options.xds_address)
    meshz = mesh_file.describe if mesh_file is not None else lambda: {"file": None, "in_force": mesh.describe()}
    monitor = MonitorServer(
        options.monitor_address, ready=lambda: server.ready, configz=store.configz, meshz=meshz, server=server
    )
    await monitor.start()
    log.info(
        "pilot serving",
        config_dir=str(options.config_dir) if options.config_dir is not None else None,
        cluster=options.kube.describe() if options.kube is not None else None,
        xds=options.xds_address,
        monitor=options.monitor_address,
        resources=len(store.accepted),
    )
    try:
        await watch_until_stopped(sources, stop)
    finally:
        await monitor.stop()
        await server.stop(grace=1.0)
        log.info("pilot stopped")
