"""Host-side helpers of the scenarios and the demo (the control plane's ports, a free loopback subnet for them), and
``LocalMesh``, the old loopback model: Pilot plus workloads (sample app + real Envoy sidecar each) on one ``/24`` of
127.0.0.0/8, apps using their sidecar as an HTTP proxy on ``:15001``. No e2e scenario uses ``LocalMesh`` any more
(they run as pods: ``e2e.pod_mesh``); only the Mixer benchmark (``bench/_mixer_envoy.py``) still does, and it goes
with it (issue 9, "One model").

    async with LocalMesh(workdir=tmp, subnet="127.0.2") as mesh:      # starts Pilot on 127.0.2.1:15010
        await mesh.apply("mesh", render_demo_mesh("127.0.2"))
        await mesh.start_workloads(DEMO_WORKLOADS, sample_apps=False)   # sidecars, ready
        await mesh.wait_synced()

Each mesh lives on its own ``/24`` of 127.0.0.0/8 (``subnet``), so meshes never collide on ports. Everything is
stopped on exit, also when the body failed; then the tail of every process's log is printed (the full logs stay
in ``workdir``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from citadel.ca_dir import load_or_create_token_key
from citadel.tokens import issue_token
from e2e.config_sync import ConfigSync, MeshNotSyncedError
from e2e.control_plane import CitadelProcess, MixerProcess, PilotProcess
from e2e.mesh_config import WorkloadSpec, check_subnet, subnet_address
from e2e.sample_app import SampleApp
from e2e.traffic import MeshResponse, SidecarClient
from envoy_bootstrap.bootstrap import XdsMode, build_sidecar_bootstrap, write_citadel_trust
from envoy_bootstrap.runner import EnvoyProcess
from meshplane.identity import DEFAULT_TRUST_DOMAIN

__all__ = [
    "CITADEL_HOST",
    "CITADEL_MONITOR_PORT",
    "CITADEL_SDS_PORT",
    "MIXER_GRPC_PORT",
    "MIXER_HOST",
    "MIXER_MONITOR_PORT",
    "MONITOR_PORT",
    "PILOT_HOST",
    "XDS_PORT",
    "LocalMesh",
    "MeshNotSyncedError",
    "Workload",
    "find_free_subnet",
    "port_free",
]

log = structlog.get_logger(__name__)

PILOT_HOST = 1  # Pilot listens on <subnet>.1
XDS_PORT = 15010
MONITOR_PORT = 15014
CITADEL_HOST = PILOT_HOST  # Citadel (when the mesh has one) shares Pilot's address, as in Istio's istiod
CITADEL_SDS_PORT = 15012
CITADEL_MONITOR_PORT = 15019
MIXER_HOST = PILOT_HOST  # Mixer (when the mesh has one) shares Pilot's address too
MIXER_GRPC_PORT = 9091  # Istio Mixer's gRPC port: ext_authz checks and access logs
MIXER_MONITOR_PORT = 42422  # Istio Mixer's Prometheus port: /metrics, /graph
_POLL_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    name: str
    namespace: str
    address: str
    node_id: str
    envoy: EnvoyProcess
    app: SampleApp | None


def _is_failure(exc: BaseException) -> bool:
    """Ctrl-C and cancellation stop a mesh without being failures worth a screen of logs."""
    return not isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))


def port_free(address: str, port: int) -> bool:
    """Whether a listener could bind ``address:port`` now (with SO_REUSEADDR, as Envoy and aiohttp do, so that
    connections in TIME_WAIT from an earlier run do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def find_free_subnet(attempts: int = 50) -> str:
    """A random ``127.X.Y`` whose Pilot ports are free: a fresh subnet per test, so meshes never share ports."""
    for _ in range(attempts):
        subnet = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}"
        pilot = f"{subnet}.{PILOT_HOST}"
        if port_free(pilot, XDS_PORT) and port_free(pilot, MONITOR_PORT):
            return subnet
    raise RuntimeError(f"no free loopback subnet found in {attempts} attempts")


class LocalMesh:
    """Pilot plus workloads on ``<subnet>.x``. Use as ``async with``; see the module docstring."""

    def __init__(
        self,
        *,
        workdir: Path,
        subnet: str,
        xds_mode: XdsMode = "sotw",
        debounce: str = "50ms",
        envoy_log_level: str = "info",
        pilot_log_level: str = "info",
        citadel: bool = False,
        cert_ttl: str = "24h",
        citadel_arguments: tuple[str, ...] = (),
        mixer: bool = False,
        mixer_arguments: tuple[str, ...] = (),
    ) -> None:
        self.subnet = check_subnet(subnet)
        self.workdir = workdir
        self.config_dir = workdir / "config"
        self.xds_mode: XdsMode = xds_mode
        self.envoy_log_level = envoy_log_level
        self.pilot = PilotProcess(
            config_dir=self.config_dir,
            workdir=workdir,
            xds_address=f"{self.address(PILOT_HOST)}:{XDS_PORT}",
            monitor_address=f"{self.address(PILOT_HOST)}:{MONITOR_PORT}",
            debounce=debounce,
            log_level=pilot_log_level,
        )
        # With ``citadel``, every sidecar gets a token for its workload's identity and a certificate over SDS.
        self.citadel: CitadelProcess | None = None
        if citadel:
            self.citadel = CitadelProcess(
                ca_dir=workdir / "ca",
                workdir=workdir,
                sds_address=f"{self.address(CITADEL_HOST)}:{CITADEL_SDS_PORT}",
                monitor_address=f"{self.address(CITADEL_HOST)}:{CITADEL_MONITOR_PORT}",
                cert_ttl=cert_ttl,
                extra_arguments=citadel_arguments,
                log_level=pilot_log_level,
            )
        # With ``mixer``, Mixer reads the same config directory and every sidecar reports to it and asks it.
        self.mixer: MixerProcess | None = None
        if mixer:
            self.mixer = MixerProcess(
                config_dir=self.config_dir,
                workdir=workdir,
                grpc_address=f"{self.address(MIXER_HOST)}:{MIXER_GRPC_PORT}",
                monitor_address=f"{self.address(MIXER_HOST)}:{MIXER_MONITOR_PORT}",
                log_level=pilot_log_level,
                extra_arguments=mixer_arguments,
            )
        self.workloads: dict[str, Workload] = {}
        self._clients: dict[str, SidecarClient] = {}
        self.config = ConfigSync(
            config_dir=self.config_dir,
            pilot=self.pilot,
            mixer=self.mixer,
            proxies=lambda: {workload.name: workload.node_id for workload in self.workloads.values()},
        )

    def address(self, host: int) -> str:
        return subnet_address(self.subnet, host)

    # ------------------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(exist_ok=True)
        try:
            await self.pilot.start()
            if self.citadel is not None:
                await self.citadel.start()
            if self.mixer is not None:
                await self.mixer.start()
        except BaseException as exc:
            await self.close(failed=_is_failure(exc))
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(failed=exc is not None and _is_failure(exc))

    async def close(self, *, failed: bool = False) -> None:
        """Stop everything (clients, sidecars, apps, Pilot), each step even when an earlier one failed."""
        if failed:
            print(self.log_tails(), file=sys.stderr)
        workloads = list(self.workloads.values())
        try:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    await client.close()
            results = await asyncio.gather(*(w.envoy.stop() for w in workloads), return_exceptions=True)
            for workload, result in zip(workloads, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("envoy_stop_failed", workload=workload.name, error=repr(result))
                if workload.app is not None:
                    with contextlib.suppress(Exception):
                        await workload.app.stop()
            await self.pilot.stop()
            if self.citadel is not None:
                await self.citadel.stop()
            if self.mixer is not None:
                await self.mixer.stop()
        finally:  # whatever failed or was cancelled above: no process outlives the mesh
            for workload in workloads:
                workload.envoy.kill()
            self.pilot.kill()
            if self.citadel is not None:
                self.citadel.kill()
            if self.mixer is not None:
                self.mixer.kill()
            self._clients.clear()
            self.workloads.clear()

    def log_tails(self, lines: int = 30) -> str:
        parts = [
            f"==== meshplane LocalMesh {self.subnet}.x, logs in {self.workdir}",
            f"---- pilot ({self.pilot.log_path})",
            self.pilot.log_tail(lines),
        ]
        if self.citadel is not None:
            parts += [f"---- citadel ({self.citadel.log_path})", self.citadel.log_tail(lines)]
        if self.mixer is not None:
            parts += [f"---- mixer ({self.mixer.log_path})", self.mixer.log_tail(lines)]
        for workload in self.workloads.values():
            parts.append(f"---- envoy {workload.name} ({workload.envoy.log_path})")
            parts.append(workload.envoy.log_tail(lines))
        return "\n".join(parts)

    async def stop_mixer(self) -> None:
        """Stop Mixer (sidecars keep running: their RBAC keeps working, their ext_authz checks fail)."""
        if self.mixer is None:
            raise ValueError("this mesh has no Mixer")
        await self.mixer.stop()

    async def start_mixer(self) -> None:
        if self.mixer is None:
            raise ValueError("this mesh has no Mixer")
        await self.mixer.start()

    async def restart_pilot(self) -> None:
        """Stop and start Pilot on the same addresses; sidecars reconnect on their own (bootstrap back-off)."""
        await self.pilot.stop()
        self.config.forget()  # a new Pilot starts its versions over
        await self.pilot.start()

    # ------------------------------------------------------------------------------------------- workloads

    async def start_workload(
        self,
        name: str,
        *,
        host: int,
        namespace: str = "default",
        service: str | None = None,
        version: str = "v1",
        app_port: int = 19080,
        service_account: str = "default",
        citadel: bool = True,
        token: str | None = None,
        wait_ready: bool = True,
        ready_timeout: float = 30.0,
    ) -> Workload:
        """A sample app (when ``service`` is given) on ``<subnet>.<host>:<app_port>`` and a sidecar for it.
        In a mesh with Citadel the sidecar gets a token for ``namespace``/``service_account`` and its certificate
        over SDS, unless ``citadel=False`` (a sidecar without an identity, e.g. to show STRICT refusing it);
        ``token`` replaces the token the harness would mint (e.g. a forged one, to show it gets no certificate).
        ``wait_ready`` waits for Envoy's ``/ready``, i.e. its first CDS and LDS from Pilot."""
        if name in self.workloads:
            raise ValueError(f"workload {name!r} already started")
        address = self.address(host)
        app = None
        if service is not None:
            app = SampleApp(service=service, version=version, address=address, port=app_port, workload=name)
            await app.start()
        identity: dict[str, Any] = {}
        if self.citadel is not None and citadel:
            identity = {
                "citadel": self.citadel.sds_address,
                "token": token if token is not None else self.workload_token(namespace, service_account),
                "citadel_trust": write_citadel_trust(
                    self.workdir / f"{name}.citadel-trust.json", self.citadel.ca_dir / "trust-bundle.pem"
                ),
            }
        if self.mixer is not None:
            identity["mixer"] = self.mixer.grpc_address
        bootstrap = build_sidecar_bootstrap(
            workload=name,
            namespace=namespace,
            address=address,
            pilot=self.pilot.xds_address,
            xds_mode=self.xds_mode,
            **identity,
        )
        envoy = EnvoyProcess(name=name, bootstrap=bootstrap, workdir=self.workdir, log_level=self.envoy_log_level)
        workload = Workload(
            name=name, namespace=namespace, address=address, node_id=bootstrap.node.id, envoy=envoy, app=app
        )
        self.workloads[name] = workload  # registered before start: close() stops it whatever happens next
        await envoy.start()
        if wait_ready:
            await envoy.wait_ready(ready_timeout)
        return workload

    def workload_token(self, namespace: str, service_account: str, ttl: timedelta = timedelta(hours=1)) -> str:
        """A token for ``namespace``/``service_account`` signed with this mesh's Citadel token key, as
        ``citadel token`` prints one."""
        if self.citadel is None:
            raise ValueError("this mesh has no Citadel")
        key = load_or_create_token_key(self.citadel.ca_dir)
        return issue_token(
            key, trust_domain=DEFAULT_TRUST_DOMAIN, namespace=namespace, service_account=service_account, ttl=ttl
        )

    async def start_workloads(
        self, specs: Iterable[WorkloadSpec], *, ready_timeout: float = 30.0, sample_apps: bool = True
    ) -> None:
        """Start several workloads, then wait for all their sidecars to be ready (in parallel). Without
        ``sample_apps`` only the sidecars start (a benchmark runs its apps in processes of their own)."""
        started = [
            await self.start_workload(
                spec.name,
                host=spec.host,
                namespace=spec.namespace,
                service=spec.service if sample_apps else None,
                version=spec.version,
                app_port=spec.app_port,
                service_account=spec.service_account,
                wait_ready=False,
            )
            for spec in specs
        ]
        await asyncio.gather(*(workload.envoy.wait_ready(ready_timeout) for workload in started))

    async def stop_workload(self, name: str) -> None:
        workload = self.workloads.pop(name)
        client = self._clients.pop(name, None)
        if client is not None:
            await client.close()
        await workload.envoy.stop()
        if workload.app is not None:
            await workload.app.stop()

    def app(self, name: str) -> SampleApp:
        app = self.workloads[name].app
        if app is None:
            raise ValueError(f"workload {name!r} has no sample app")
        return app

    # ------------------------------------------------------------------------------------------- config

    async def apply(self, name: str, yaml_text: str) -> Path:
        """Write ``<config dir>/<name>.yaml`` atomically (Pilot watches the directory). Replaces an earlier apply
        of the same name. Follow with ``wait_synced()``."""
        return await self.config.apply(name, yaml_text)

    async def remove(self, name: str) -> None:
        await self.config.remove(name)

    async def configz(self) -> dict[str, Any]:
        return await self.pilot.configz()

    async def syncz(self) -> dict[str, Any]:
        return await self.pilot.syncz()

    async def wait_synced(self, timeout: float = 15.0) -> dict[str, Any]:
        """Until Pilot took in every change made through ``apply``/``remove``, its snapshot caught up and every
        running sidecar ACKed it (``e2e.config_sync.ConfigSync.wait_synced``). Returns ``/debug/configz``."""
        return await self.config.wait_synced(timeout)

    # ------------------------------------------------------------------------------------------- traffic

    def client(self, workload: str) -> SidecarClient:
        """The HTTP client of ``workload``'s app: requests leave from its address through its sidecar."""
        if workload not in self.workloads:
            raise KeyError(f"no workload {workload!r}; started: {', '.join(self.workloads) or 'none'}")
        if workload not in self._clients:
            self._clients[workload] = SidecarClient(address=self.workloads[workload].address)
        return self._clients[workload]

    async def request(
        self,
        client_workload: str,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> MeshResponse:
        """One request from ``client_workload``'s address through its sidecar (``http://<address>:15001``)."""
        return await self.client(client_workload).request(
            url, method=method, headers=headers, timeout=timeout, allow_redirects=allow_redirects
        )

    async def send_many(
        self,
        client_workload: str,
        url: str,
        count: int,
        *,
        concurrency: int = 8,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[MeshResponse]:
        """``count`` requests through ``client_workload``'s sidecar, at most ``concurrency`` at a time."""
        return await self.client(client_workload).send_many(
            url, count, concurrency=concurrency, method=method, headers=headers, timeout=timeout
        )
