"""Pilot as a running process: config sources -> store -> xDS server, plus the monitor endpoints.

Config comes through the source seam (``pilot.config.source``): today one ``DirectorySource``; a Kubernetes
source joins the ``SourceGroup`` and the store's ``sources`` the same way. The mesh config file (``--mesh-config``)
is watched beside it (``pilot.config.mesh_config_file``): an edit is pushed as a ``MeshConfig`` change."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import structlog

from meshplane.serving import stop_on_signals, watch_until_stopped
from pilot.config import FILES, ConfigSink, ConfigStore, DirectorySource, SourceGroup, StoreChange
from pilot.config.mesh_config import MeshConfig, MeshNames
from pilot.config.mesh_config_file import MeshConfigFile
from pilot.metrics import PilotMetrics
from pilot.model import DEFAULT_DOMAIN_SUFFIX, DEFAULT_ROOT_NAMESPACE, DEFAULT_TRUST_DOMAIN
from pilot.monitor import MonitorServer
from pilot.parse_ahead import ParseAhead
from pilot.xds import DiscoveryServer

__all__ = ["PilotOptions", "run_pilot"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PilotOptions:
    config_dir: Path
    xds_address: str = "127.0.0.1:15010"
    monitor_address: str = "127.0.0.1:15014"
    debounce: float = 0.1
    debounce_max: float = 1.0
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    trust_domain: str = DEFAULT_TRUST_DOMAIN  # SPIFFE trust domain of workload identities (as Citadel's)
    root_namespace: str = DEFAULT_ROOT_NAMESPACE  # a PeerAuthentication without selector here is mesh-wide
    mesh_config: Path | None = None  # Istio's MeshConfig, watched; its rootNamespace/trustDomain win


async def run_pilot(
    options: PilotOptions, stop: asyncio.Event | None = None, *, parse_ahead: ParseAhead | None = None
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM arrives when no event is given). ``parse_ahead``: a worker
    started on ``options.config_dir`` before the imports, whose parses the first load uses."""
    if not options.config_dir.is_dir():
        raise FileNotFoundError(f"--config-dir {options.config_dir} is not a directory")
    stop = stop or stop_on_signals()
    flags = MeshNames(trust_domain=options.trust_domain, root_namespace=options.root_namespace)
    store = ConfigStore(domain_suffix=options.domain_suffix, sources=(FILES,))
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
    server = DiscoveryServer(
        debounce=options.debounce,
        debounce_max=options.debounce_max,
        domain_suffix=options.domain_suffix,
        trust_domain=mesh.names.trust_domain,
        root_namespace=mesh.names.root_namespace,
        mesh=mesh.settings,
        metrics=metrics,
    )

    def on_change(change: StoreChange) -> None:
        log.info("config changed", version=change.version, changed=len(change.changed))
        server.update_config(store.accepted, change.version)

    sink = ConfigSink(store, on_change, on_rejected=metrics.rejected_config)
    exclude = (options.mesh_config,) if options.mesh_config is not None else ()
    directory = DirectorySource(options.config_dir, sink, name=FILES, exclude=exclude, parse_ahead=parse_ahead)
    await directory.load_initial()  # hands the server what it loaded, through on_change
    if store.version == 0:  # nothing accepted (an empty directory): on_change was not called, serve empty config
        server.update_config(store.accepted, store.version)
    sources = SourceGroup([directory] if mesh_file is None else [directory, mesh_file])
    await server.start(options.xds_address)
    meshz = mesh_file.describe if mesh_file is not None else lambda: {"file": None, "in_force": mesh.describe()}
    monitor = MonitorServer(
        options.monitor_address, ready=lambda: server.ready, configz=store.configz, meshz=meshz, server=server
    )
    await monitor.start()
    log.info(
        "pilot serving",
        config_dir=str(options.config_dir),
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
