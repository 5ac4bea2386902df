"""The benchmark's mesh, and Pilot as a subprocess that serves it.

Mesh of ``services`` services spread over ``namespaces`` namespaces: per service a ServiceEntry (MESH_INTERNAL,
STATIC, one HTTP port, selecting its WorkloadEntries), WorkloadEntries labelled v1/v2, a DestinationRule with
subsets v1 and v2, and a VirtualService routing to v1. Workload ``i`` belongs to service ``i % services``; the first
``streams`` workloads are the simulated sidecars.

The Pilot subprocess (``python -m bench.ads_push --serve ...``) runs a DiscoveryServer with the real generators
and answers one JSON line per command read on stdin: ``usage`` (its CPU seconds and memory), ``change`` (make the
one change the benchmark measures: a VirtualService or a WorkloadEntry, see ``CHANGES``), ``convergence`` (per
stream, seconds from the change to the push written on that stream, as Pilot measured it), ``quit``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from meshplane.logs import configure_logging
from pilot.config import Origin, content_hash
from pilot.config.types import (
    ConfigKey,
    ConfigMeta,
    Destination,
    DestinationRule,
    HTTPRoute,
    HTTPRouteDestination,
    Protocol,
    Resolution,
    Resource,
    ServiceEntry,
    ServicePort,
    Subset,
    VirtualService,
    WorkloadEntry,
)
from pilot.metrics import PilotMetrics
from pilot.xds import DiscoveryServer
from xdscore import DEFAULT_NEW_STREAMS_PER_SECOND

__all__ = [
    "CHANGES",
    "build_mesh",
    "changed_virtual_service",
    "changed_workload_entry",
    "node_ids",
    "serve_pilot",
    "usage",
]

SERVICE_PORT = 9080


def _namespace(service: int, namespaces: int) -> str:
    return f"ns-{service % namespaces}"


def _address(workload: int) -> str:
    return f"10.{workload // 65536 % 256}.{workload // 256 % 256}.{workload % 256}"


def _hashed(resource: Resource) -> Resource:
    return replace(resource, meta=replace(resource.meta, content_hash=content_hash(resource)))


def _meta(kind: str, namespace: str, name: str, file: str) -> ConfigMeta:
    return ConfigMeta(key=ConfigKey(kind=kind, namespace=namespace, name=name), origin=Origin(file=file, line=1))


def _virtual_service(service: int, namespaces: int, weights: tuple[int, int] = (100, 0)) -> VirtualService:
    namespace, name = _namespace(service, namespaces), f"svc-{service}"
    destinations = tuple(
        HTTPRouteDestination(destination=Destination(host=name, subset=subset), weight=weight)
        for subset, weight in zip(("v1", "v2"), weights, strict=True)
        if weight
    )
    return VirtualService(
        meta=_meta("VirtualService", namespace, name, f"{name}.yaml"),
        hosts=(name,),
        http=(HTTPRoute(name="primary", route=destinations),),
    )


def build_mesh(*, services: int, namespaces: int, streams: int) -> dict[ConfigKey, Resource]:
    """Every config resource of the benchmark mesh, content-hashed like the config layer does."""
    out: list[Resource] = []
    for service in range(services):
        namespace, name = _namespace(service, namespaces), f"svc-{service}"
        file = f"{name}.yaml"
        out.append(
            ServiceEntry(
                meta=_meta("ServiceEntry", namespace, name, file),
                hosts=(f"{name}.{namespace}.svc.cluster.local",),
                ports=(ServicePort(number=SERVICE_PORT, name="http", protocol=Protocol.HTTP),),
                location="MESH_INTERNAL",
                resolution=Resolution.STATIC,
                workload_selector=MappingProxyType({"app": name}),
            )
        )
        out.append(
            DestinationRule(
                meta=_meta("DestinationRule", namespace, name, file),
                host=name,
                subsets=tuple(Subset(name=v, labels=MappingProxyType({"version": v})) for v in ("v1", "v2")),
            )
        )
        out.append(_virtual_service(service, namespaces))
    for workload in range(max(streams, 2 * services)):
        service = workload % services
        namespace = _namespace(service, namespaces)
        version = "v1" if (workload // services) % 2 == 0 else "v2"
        out.append(
            WorkloadEntry(
                meta=_meta("WorkloadEntry", namespace, f"wl-{workload}", f"wl-{workload}.yaml"),
                address=_address(workload),
                labels=MappingProxyType({"app": f"svc-{service}", "version": version}),
                ports=MappingProxyType({"http": 19080}),
            )
        )
    return {r.meta.key: r for r in map(_hashed, out)}


def changed_virtual_service(namespaces: int) -> Resource:
    """The one change measured: svc-0's VirtualService splits traffic 50/50 between v1 and v2."""
    return _hashed(_virtual_service(0, namespaces, weights=(50, 50)))


def changed_workload_entry(configs: Mapping[ConfigKey, Resource], *, services: int, streams: int) -> Resource:
    """The one change measured with ``--change workload``: the last workload (serving svc-<n % services>) gets
    weight 2: that service's cluster and one subset cluster get a new ClusterLoadAssignment (EDS only)."""
    last = max(streams, 2 * services) - 1
    [key] = [k for k in configs if k.kind == "WorkloadEntry" and k.name == f"wl-{last}"]
    workload = configs[key]
    assert isinstance(workload, WorkloadEntry)
    return _hashed(replace(workload, weight=2))


# --change -> what the streams wait for: the first response of this type after the change
CHANGES = {"virtualservice": "RDS", "workload": "EDS"}


def node_ids(*, services: int, namespaces: int, streams: int) -> list[str]:
    """The simulated sidecars' Istio node ids, one per workload ``0 .. streams-1``."""
    out = []
    for workload in range(streams):
        namespace = _namespace(workload % services, namespaces)
        out.append(f"sidecar~{_address(workload)}~wl-{workload}.{namespace}~{namespace}.svc.cluster.local")
    return out


class RecordingMetrics(PilotMetrics):
    """Pilot's metrics, also keeping every convergence sample (seconds from a change to a stream's last write)."""

    def __init__(self) -> None:
        super().__init__()
        self.convergence: list[float] = []
        self.builds: list[float] = []

    def snapshot_built(self, seconds: float) -> None:
        self.builds.append(seconds)
        super().snapshot_built(seconds)

    def converged(self, seconds: float) -> None:
        self.convergence.append(seconds)
        super().converged(seconds)


def usage() -> dict[str, float]:
    """This process's CPU seconds (all threads), peak and current resident memory (MiB)."""
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return {
        "cpu": self_usage.ru_utime + self_usage.ru_stime,
        "peak_rss_mib": self_usage.ru_maxrss / 1024,
        "rss_mib": resident_pages * resource.getpagesize() / 2**20,
    }


async def serve_pilot(
    *,
    services: int,
    namespaces: int,
    streams: int,
    debounce: float,
    change: str,
    port: int = 0,
    new_streams_per_second: float | None = None,
    vhds: bool = True,
) -> None:
    """The Pilot side of the benchmark: serve the mesh on 127.0.0.1:``port`` (0: any free port; a port another
    Pilot serves is shared with it, gRPC sets SO_REUSEPORT), obey stdin commands, answer on stdout.
    ``new_streams_per_second``: Pilot's admission rate (None: its default; 0: no limit). ``vhds``: Pilot's
    ``--vhds``."""
    configure_logging(level="warning")
    started = time.perf_counter()
    configs = build_mesh(services=services, namespaces=namespaces, streams=streams)
    metrics = RecordingMetrics()
    server = DiscoveryServer(
        debounce=debounce,
        debounce_max=max(1.0, debounce),
        metrics=metrics,
        new_streams_per_second=DEFAULT_NEW_STREAMS_PER_SECOND
        if new_streams_per_second is None
        else new_streams_per_second,
        vhds=vhds,
    )
    server.update_config(configs, 1)
    await server.start(f"127.0.0.1:{port}")
    while not server.ready:
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()

    def reply(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    reply({"port": server.port, "configs": len(configs), "startup_seconds": time.perf_counter() - started, **usage()})
    try:
        while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if command == "usage":
                reply(usage())
            elif command.startswith("syncz"):  # "syncz [node id ...]": the server's state, those proxies' in full
                wanted = set(command.split()[1:])
                syncz = server.syncz()
                reply(
                    {
                        "connections": len(syncz["proxies"]),
                        "admission_waiting": server.admission.waiting,
                        "proxies": [proxy for proxy in syncz["proxies"] if proxy["id"] in wanted],
                    }
                )
            elif command == "convergence":
                reply({"seconds": metrics.convergence, "builds": metrics.builds})
            elif command == "change":
                if change == "workload":
                    changed = changed_workload_entry(configs, services=services, streams=streams)
                else:
                    changed = changed_virtual_service(namespaces)
                server.update_config({**configs, changed.meta.key: changed}, 2)
                reply({"ok": True})
            elif command == "quit":
                break
            else:
                reply({"error": f"unknown command {command!r}"})
    finally:
        await server.stop(grace=0)
