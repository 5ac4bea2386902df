"""The ADS gRPC server: state-of-the-world and delta streams over one snapshot cache.

The server only moves bytes: responses are pre-encoded ``DiscoveryResponse``/``DeltaDiscoveryResponse`` wire
bytes (``encode.py``), registered with an identity response serializer, and requests are decoded by the protobuf
runtime. Config changes go through ``update_config`` -> debounce -> one snapshot built off the event loop ->
every connection's latest-snapshot slot (``pushes.py``, ``connection.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import grpc
import structlog
from envoy.config.core.v3.base_pb2 import Locality
from google.protobuf.struct_pb2 import Struct

from pilot.config.types import ConfigKey
from pilot.config.types import Resource as ConfigResource
from pilot.generate.registry import GENERATORS, TypeGenerator
from pilot.metrics import PilotMetrics
from pilot.model import (
    DEFAULT_DOMAIN_SUFFIX,
    DEFAULT_MESH_SETTINGS,
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    SERVICE_ENTRIES,
    MeshSettings,
    MeshSnapshot,
    NodeIdError,
    ProxyNode,
    ServiceRegistry,
    parse_node_id,
)
from pilot.xds.cache import ResourceCache
from pilot.xds.connection import Connection, Mode, short_type
from pilot.xds.consistency import InconsistentSnapshotError
from pilot.xds.pushes import Debouncer, build_cache
from pilot.xds.vhds import VhdsSplits
from xdscore import (
    DEFAULT_NEW_STREAMS_BURST,
    DEFAULT_NEW_STREAMS_PER_SECOND,
    DEFAULT_SEND_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    AdmissionRate,
    Nonces,
    PayloadMemo,
    Request,
    StreamSettings,
    first_request,
    stream_methods,
)

__all__ = ["ADS_SERVICE", "DiscoveryServer"]

log = structlog.get_logger(__name__)

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
CONTROL_PLANE_ID = "meshplane-pilot"
_LISTED_PROXIES = 20  # proxies named in /debug/syncz's snapshot_error (all are counted)


def _string_metadata(metadata: Struct) -> dict[str, str]:
    """The string values of Envoy's node metadata (e.g. ``MESHPLANE_SDS``); other kinds are not used."""
    return {key: value.string_value for key, value in metadata.fields.items() if value.HasField("string_value")}


class ProxyListener(Protocol):
    """Something that follows which proxies are connected (``pilot.autoregistration.AutoRegistration``)."""

    def connected(self, node: ProxyNode) -> None: ...

    def disconnected(self, node: ProxyNode) -> None: ...


def _node_labels(metadata: Struct) -> dict[str, str]:
    """Istio's ``LABELS`` node metadata (a struct of strings; other values are not labels)."""
    labels = metadata.fields.get("LABELS")
    if labels is None or not labels.HasField("struct_value"):
        return {}
    return _string_metadata(labels.struct_value)


def _node_locality(locality: Locality) -> str:
    """Envoy's node.locality as a workload's ``region/zone/subzone`` (trailing empty parts dropped)."""
    return "/".join((locality.region, locality.zone, locality.sub_zone)).rstrip("/")


class DiscoveryServer:
    """Aggregated Discovery Service for Envoy sidecars, SotW (``StreamAggregatedResources``) and delta."""

    def __init__(
        self,
        *,
        generators: Mapping[str, TypeGenerator] = GENERATORS,
        debounce: float = 0.1,
        debounce_max: float = 1.0,
        domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        root_namespace: str = DEFAULT_ROOT_NAMESPACE,
        max_concurrent_pushes: int = 100,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        new_streams_per_second: float = DEFAULT_NEW_STREAMS_PER_SECOND,
        new_streams_burst: int = DEFAULT_NEW_STREAMS_BURST,
        vhds: bool = True,
        metrics: PilotMetrics | None = None,
        registries: Sequence[ServiceRegistry] = (SERVICE_ENTRIES,),
        mesh: MeshSettings = DEFAULT_MESH_SETTINGS,
    ) -> None:
        """``registries``: the service registries every snapshot aggregates, in precedence order (a registry whose
        contents change on their own calls ``registries_changed``). ``max_concurrent_pushes``: responses built and
        written at once (Istio's push throttle). ``send_timeout``: seconds a response's write holds its throttle slot
        (Istio's PILOT_XDS_SEND_TIMEOUT); a slower write goes on outside it. ``stall_timeout``: seconds a client may
        take nothing of its stream before the stream is closed. ``new_streams_per_second`` and ``new_streams_burst``:
        how fast new streams are admitted (a token bucket they wait on; Istio's PILOT_MAX_REQUESTS_PER_SECOND); rate
        0: no limit. ``vhds``: delta streams get their route tables over VHDS (``pilot.xds.vhds``)."""
        if max_concurrent_pushes < 1:
            raise ValueError(f"max_concurrent_pushes must be >= 1, got {max_concurrent_pushes}")
        self.generators = generators
        # told of every stream's proxy when it opens and closes (WorkloadGroup auto-registration)
        self.proxy_listeners: list[ProxyListener] = []
        self.domain_suffix = domain_suffix
        self.trust_domain = trust_domain
        self.root_namespace = root_namespace
        self.mesh = mesh
        self.registries = tuple(registries)
        self.metrics = metrics or PilotMetrics()
        self.port: int | None = None
        self._max_concurrent_pushes = max_concurrent_pushes
        self._send_timeout = send_timeout
        self._stall_timeout = stall_timeout
        self.admission = AdmissionRate(new_streams_per_second, new_streams_burst)
        self._vhds = VhdsSplits() if vhds else None
        self._debouncer = Debouncer(quiet=debounce, max_delay=debounce_max, flush=self._build_and_push, name="xds-push")
        self._config: tuple[Mapping[ConfigKey, ConfigResource], int] | None = None
        self._cache: ResourceCache | None = None
        self._snapshot_error: dict[str, Any] | None = None  # the last built snapshot, when it was not served
        self._connections: dict[Connection, None] = {}  # insertion-ordered set
        self._server: grpc.aio.Server | None = None
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream_settings = StreamSettings(nonce=Nonces())  # until start: the throttle needs the loop

    # ------------------------------------------------------------------------------------------ public API

    @property
    def ready(self) -> bool:
        """Serving, and the first snapshot is built."""
        return self._server is not None and not self._stopped and self._cache is not None

    @property
    def snapshot(self) -> MeshSnapshot | None:
        return self._cache.snapshot if self._cache is not None else None

    @property
    def cache(self) -> ResourceCache | None:
        return self._cache

    def update_config(self, configs: Mapping[ConfigKey, ConfigResource], version: int) -> None:
        """Accepted config changed: push it after the debounce. Cheap; callable before ``start``."""
        self._config = (MappingProxyType(dict(configs)), version)
        self._trigger()

    def update_mesh(self, mesh: MeshSettings) -> None:
        """The mesh config file changed: rebuild with these settings and push after the debounce (a ``MeshConfig``
        change of the snapshot)."""
        self.mesh = mesh
        self._trigger()

    def registries_changed(self) -> None:
        """A service registry's contents changed (a Kubernetes watch event, later): rebuild and push after the
        debounce, as for a config change. Cheap; callable from any thread."""
        self._trigger()

    def _trigger(self) -> None:
        loop = self._loop
        if loop is None:
            self._debouncer.trigger()  # not started: the debouncer starts with the server
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._debouncer.trigger()
        else:
            loop.call_soon_threadsafe(self._debouncer.trigger)

    async def start(self, address: str) -> None:
        """Listen on ``address`` (``host:port``; port 0 picks one, see ``self.port``) and start pushing."""
        if self._server is not None or self._stopped:
            raise RuntimeError("DiscoveryServer already started (a stopped server cannot be restarted)")
        self._loop = asyncio.get_running_loop()
        self._stream_settings = StreamSettings(
            nonce=Nonces(),
            payloads=PayloadMemo(),  # a push is concatenated once and the same bytes go to every stream
            control_plane=CONTROL_PLANE_ID,
            send_timeout=self._send_timeout,
            stall_timeout=self._stall_timeout,
            throttle=asyncio.Semaphore(self._max_concurrent_pushes),
        )
        server = grpc.aio.server()
        handlers = stream_methods(sotw="StreamAggregatedResources", delta="DeltaAggregatedResources", serve=self._serve)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ADS_SERVICE, handlers),))
        self.port = server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"xDS server: cannot listen on {address!r}")
        await server.start()
        self._server = server
        self._debouncer.start(flush_pending=True)  # the first snapshot is built at once, not after the debounce
        log.info(
            "xDS server listening",
            address=address,
            port=self.port,
            types=[t.rsplit(".", 1)[-1] for t in self.generators],
        )

    async def stop(self, grace: float) -> None:
        """Stop pushing; give open streams ``grace`` seconds, then cancel them. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self._debouncer.stop()
        if self._server is not None:
            await self._server.stop(grace)

    def syncz(self) -> dict[str, Any]:
        """Every connected proxy's protocol state, for ``/debug/syncz``; ``snapshot_error`` says why the newest
        snapshot built is not the one served (None when it is)."""
        latest = self._cache.version if self._cache is not None else None
        proxies = sorted((c.status(latest) for c in self._connections), key=lambda p: (p["id"], p["connected_at"]))
        return {
            "snapshot_version": latest if latest is not None else -1,
            "snapshot_error": self._snapshot_error,
            "proxies": proxies,
        }

    def config_dump(self, node_id: str) -> dict[str, Any] | None:
        """What the proxy connected as ``node_id`` was sent, as JSON; None if unknown. Every stream of that node
        counts (a pod's Envoy asks for CDS/LDS/EDS/RDS, its agent for NDS on a stream of its own): their types
        are merged, the newest stream's where two have the same type (an Envoy that reconnected)."""
        dumps = [connection.config_dump() for connection in self._connections if connection.node.id == node_id]
        if not dumps:
            return None
        types: dict[str, Any] = {}
        for dump in dumps:
            types.update(dump["types"])
        return {**dumps[-1], "types": types}

    # ------------------------------------------------------------------------------------------ pushes

    async def _build_and_push(self, changed_at: float) -> None:
        if self._config is None:
            return
        configs, version = self._config
        nodes = {connection.node for connection in self._connections}
        started = time.perf_counter()
        try:
            cache = await asyncio.to_thread(
                build_cache,
                configs,
                version,
                previous=self._cache,
                generators=self.generators,
                domain_suffix=self.domain_suffix,
                trust_domain=self.trust_domain,
                root_namespace=self.root_namespace,
                registries=self.registries,
                mesh=self.mesh,
                nodes=nodes,
                changed_at=changed_at,
            )
        except InconsistentSnapshotError as exc:
            self._refused(exc)
            return
        self.metrics.snapshot_built(time.perf_counter() - started)
        self._cache, self._snapshot_error = cache, None
        if self._vhds is not None:
            self._vhds.next_snapshot()
        for connection in self._connections:
            connection.notify(cache)

    def _refused(self, error: InconsistentSnapshotError) -> None:
        """A built snapshot is inconsistent: keep serving the previous one, and say why (log, metric, syncz)."""
        missing = {short_type(type_url): list(names) for type_url, names in error.missing.items()}
        self.metrics.inconsistent_snapshot("snapshot")
        self._snapshot_error = {
            "snapshot_version": error.version,
            "error": str(error),
            "dangling": missing,
            "proxies": sorted(error.dangling)[:_LISTED_PROXIES],
            "proxy_count": len(error.dangling),
        }
        log.error(
            "inconsistent snapshot not served; keeping the previous one",
            version=error.version,
            serving=self._cache.version if self._cache is not None else None,
            dangling=missing,
            proxies=len(error.dangling),
        )

    # ------------------------------------------------------------------------------------------ streams

    async def _serve(
        self, requests: AsyncIterator[Request], context: grpc.aio.ServicerContext[Any, bytes], mode: Mode
    ) -> None:
        waited = await self.admission.admit()
        if waited > 0:
            self.metrics.admission_waited(waited)
        first = await first_request(requests)
        if first is None:
            return
        node = await self._node(first, context)
        connection = Connection(
            node=node,
            mode=mode,
            write=context.write,
            generators=self.generators,
            cache=self._cache,
            metrics=self.metrics,
            settings=self._stream_settings,
            vhds=self._vhds if mode == "delta" else None,
        )
        self._connections[connection] = None
        self.metrics.connection_opened()
        log.info("proxy connected", proxy=node.id, mode=mode, peer=context.peer())
        for listener in self.proxy_listeners:
            listener.connected(node)
        try:
            await connection.serve(first, requests)
        finally:
            del self._connections[connection]
            self.metrics.connection_closed()
            log.info("proxy disconnected", proxy=node.id, mode=mode)
            for listener in self.proxy_listeners:
                listener.disconnected(node)

    async def _node(self, first: Request, context: grpc.aio.ServicerContext[Any, bytes]) -> ProxyNode:
        if not first.node.id:
            message = "the first request on an ADS stream must carry node.id (Istio's sidecar~<ip>~<workload>.<ns>~...)"
        else:
            try:
                metadata = first.node.metadata
                return parse_node_id(
                    first.node.id,
                    first.node.cluster,
                    _string_metadata(metadata),
                    _node_labels(metadata),
                    _node_locality(first.node.locality),
                )
            except NodeIdError as exc:
                message = str(exc)
        log.warning("ADS stream rejected", reason=message, peer=context.peer())
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        raise AssertionError("unreachable: context.abort raises")
