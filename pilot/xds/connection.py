"""One ADS stream: its protocol state per type, and the only task that writes to it.

A connection runs one task that handles, in order, the proxy's requests (read by a helper task) and "a newer
snapshot exists" notices. Notices coalesce: the server only overwrites the connection's latest-snapshot slot, so a
slow proxy skips intermediate snapshots and never holds the others up. Each response is planned by the pure
functions in ``watch.py``/``plan.py`` and encoded from cached bytes (``encode.py``); the server's semaphore bounds
how many responses are being built and written at once (Istio's push throttle). A push hands the planner the
changes since the last plan (memoized per pair of shared groups, ``changes.py``), so that its cost follows what
changed, not what the proxy watches.

A snapshot is used for a proxy only once its resources are known to be consistent for it (``consistency.py``):
the server checks the connected proxies when it builds a snapshot; a stream checks its own proxy the first time
it meets a snapshot that was not checked for it (a proxy that connected later). An inconsistent one is withheld:
the stream keeps what it had, and the error shows in ``/debug/syncz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import structlog
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyProto

from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, PUSH_ORDER, ROUTE_TYPE, TypeGenerator
from pilot.metrics import PilotMetrics
from pilot.model import ProxyNode
from pilot.xds import encode
from pilot.xds.cache import ResourceCache
from pilot.xds.consistency import Dangling
from pilot.xds.plan import forget_sent, plan_delta, plan_sotw
from pilot.xds.resources import ProxyResources
from pilot.xds.watch import WatchedResource, should_respond, should_respond_delta

__all__ = ["Connection", "Mode", "SendTimeoutError", "short_type"]

log = structlog.get_logger(__name__)

Mode = Literal["sotw", "delta"]
Request: TypeAlias = DiscoveryRequest | DeltaDiscoveryRequest

_SHORT_TYPES = {CLUSTER_TYPE: "cds", ENDPOINT_TYPE: "eds", LISTENER_TYPE: "lds", ROUTE_TYPE: "rds"}
_PUSH = object()  # inbox marker: the latest-snapshot slot changed
_CLOSED = object()  # inbox marker: the proxy closed its side of the stream


class SendTimeoutError(Exception):
    """A response could not be written within the send timeout: the proxy stopped reading its stream."""


def short_type(type_url: str) -> str:
    """``cds``/``eds``/``lds``/``rds`` for Envoy's four types, else the message name in lower case."""
    return _SHORT_TYPES.get(type_url) or type_url.rsplit(".", 1)[-1].lower()


class Connection:
    """The state and sender of one ADS stream (state of the world or delta)."""

    def __init__(
        self,
        *,
        node: ProxyNode,
        mode: Mode,
        write: Callable[[bytes], Awaitable[None]],
        generators: Mapping[str, TypeGenerator],
        cache: ResourceCache | None,
        throttle: asyncio.Semaphore,
        metrics: PilotMetrics,
        nonce: Callable[[], str],
        control_plane: str = "",
        send_timeout: float = 20.0,
    ) -> None:
        self.node = node
        self.mode: Mode = mode
        self.connected_at = time.time()
        self.watches: dict[str, WatchedResource] = {}
        self.cache = cache  # the snapshot this stream's responses are built from
        self._latest = cache  # the newest snapshot the server announced
        self._write = write
        self._generators = generators
        self._order = [t for t in PUSH_ORDER if t in generators] + [t for t in generators if t not in PUSH_ORDER]
        self._throttle = throttle
        self._metrics = metrics
        self._nonce = nonce
        self._control_plane = control_plane
        self._send_timeout = send_timeout
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._push_queued = False
        self._planned: dict[str, ProxyResources] = {}  # the resources each type was last planned against
        self._planned_names: dict[str, frozenset[str]] = {}  # the watched names then
        self._consistent: ResourceCache | None = None  # the last snapshot found consistent for this proxy
        self._withheld: tuple[int, Dangling] | None = None  # (version, dangling) of a snapshot not used, if any

    # ------------------------------------------------------------------------------------------ running

    def notify(self, cache: ResourceCache) -> None:
        """A new snapshot exists. Never blocks: only the newest one is kept until the sender gets to it."""
        self._latest = cache
        if not self._push_queued:
            self._push_queued = True
            self._inbox.put_nowait(_PUSH)

    async def serve(self, first: Request, requests: AsyncIterator[Request]) -> None:
        """Handle ``first`` and every later request, and pushes, until the proxy closes the stream."""
        reader = asyncio.create_task(self._read(requests), name=f"xds-read {self.node.id}")
        self._inbox.put_nowait(first)
        try:
            while True:
                item = await self._inbox.get()
                if item is _CLOSED:
                    break
                if item is _PUSH:
                    self._push_queued = False
                    if self._latest is not None:
                        await self._push(self._latest)
                else:
                    assert isinstance(item, DiscoveryRequest | DeltaDiscoveryRequest)
                    await self._handle(item)
        except SendTimeoutError as exc:
            # Istio's PILOT_XDS_SEND_TIMEOUT: a proxy that stopped reading loses its stream (and reconnects),
            # instead of holding a push slot forever.
            log.warning("proxy not reading; closing its stream", proxy=self.node.id, reason=str(exc))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, requests: AsyncIterator[Request]) -> None:
        try:
            async for request in requests:
                self._inbox.put_nowait(request)
        finally:
            self._inbox.put_nowait(_CLOSED)

    async def _handle(self, request: Request) -> None:
        type_url = request.type_url
        generator = self._generators.get(type_url)
        if generator is None:
            log.warning("unsupported xDS type requested; not answered", proxy=self.node.id, type_url=type_url)
            return
        previous = self.watches.get(type_url)
        if isinstance(request, DiscoveryRequest):
            respond, watch = should_respond(previous, request, wildcard=generator.wildcard, now=time.time())
        else:
            respond, watch = should_respond_delta(previous, request, wildcard=generator.wildcard, now=time.time())
        self.watches[type_url] = watch
        nack = watch.last_nack
        if nack is not None and (previous is None or previous.last_nack is not nack):
            self._metrics.rejected(short_type(type_url))
            log.warning(
                "proxy rejected config (NACK)",
                proxy=self.node.id,
                type=short_type(type_url),
                rejected_version=nack.version,
                running_version=nack.running_version,
                nonce=nack.nonce,
                error=nack.error,
            )
        if respond and self.cache is not None and await self._usable(self.cache):
            await self._respond(type_url, requested=True, force=previous is None)

    async def _usable(self, cache: ResourceCache) -> bool:
        """Whether ``cache`` is consistent for this proxy (checked once per snapshot; may generate its resources)."""
        if cache is self._consistent:
            return True
        dangling = cache.cached_dangling(self.node)
        if dangling is None:
            try:
                dangling = await asyncio.to_thread(cache.dangling, self.node)
            except Exception:
                log.exception("generating resources failed", proxy=self.node.id, snapshot=cache.version)
                raise
        if not dangling:
            self._consistent, self._withheld = cache, None
            return True
        if self._withheld is None or self._withheld[0] != cache.version:
            self._withheld = (cache.version, dangling)
            self._metrics.inconsistent_snapshot("proxy")
            log.error(
                "snapshot inconsistent for this proxy; not served to it",
                proxy=self.node.id,
                snapshot=cache.version,
                dangling={short_type(t): list(names) for t, names in dangling.items()},
            )
        return False

    async def _push(self, cache: ResourceCache) -> None:
        if not await self._usable(cache):
            return  # keep what the proxy has (from self.cache, if anything)
        self.cache = cache
        pushed = False
        warming: frozenset[str] = frozenset()
        for type_url in self._order:
            if type_url not in self.watches:
                continue
            if type_url == ENDPOINT_TYPE and warming:
                # Envoy keeps an updated EDS cluster warming until it gets its ClusterLoadAssignment again, and
                # holds the CDS ACK until then: resend those assignments even where they did not change (Istio's
                # full push does the same), or a changed cluster (e.g. its TLS settings) never becomes active.
                # SotW answers as if asked (everything watched); delta forgets it sent them, then sends them.
                if self.mode == "delta":
                    self.watches[type_url] = forget_sent(self.watches[type_url], warming)
                pushed = await self._respond(type_url, requested=True, force=True) or pushed
                continue
            before = self.watches[type_url].sent
            sent = await self._respond(type_url, requested=False, force=False)
            pushed = sent or pushed
            if sent and type_url == CLUSTER_TYPE and ENDPOINT_TYPE in self.watches:
                warming = _changed_eds_clusters(before, self.watches[type_url].sent, self.watches[ENDPOINT_TYPE])
        if pushed and cache.changed_at is not None:
            self._metrics.converged(time.monotonic() - cache.changed_at)

    async def _respond(self, type_url: str, *, requested: bool, force: bool) -> bool:
        """Send what the proxy needs of ``type_url`` from ``self.cache``, if anything. True when something was sent."""
        cache = self.cache
        assert cache is not None
        watch = self.watches[type_url]
        first = not watch.nonce_sent
        current = cache.cached_view(type_url, self.node)
        if current is None:
            try:
                current = await asyncio.to_thread(cache.view, type_url, self.node)
            except Exception:
                log.exception("generating resources failed", proxy=self.node.id, type=short_type(type_url))
                raise
        planned = self._planned.get(type_url)
        pushing = not requested and not first
        if pushing and current is planned:
            return False  # the same objects as last time: nothing of this type changed for this proxy
        changes = None
        incremental = self.mode == "delta" or not watch.wildcard  # a SotW wildcard response is the whole set anyway
        if pushing and incremental and planned is not None and watch.names is self._planned_names.get(type_url):
            changes = cache.changes(planned, current)
        started = time.perf_counter()
        async with self._throttle:
            nonce = self._nonce()
            payload: bytes | None = None
            if self.mode == "sotw":
                sotw, watch = plan_sotw(watch, current, nonce=nonce, full=requested or first, changes=changes)
                if sotw is not None:
                    if sotw.resources is None:
                        bodies: list[bytes] | tuple[bytes, ...] = current.sotw_bodies
                    else:
                        bodies = [piece for r in sotw.resources for piece in (r.sotw_header, r.any_bytes)]
                    payload = encode.discovery_response(
                        version_info=sotw.version,
                        resources=bodies,
                        type_url=type_url,
                        nonce=nonce,
                        control_plane=self._control_plane,
                    )
            else:
                delta, watch = plan_delta(watch, current, nonce=nonce, force=force or first, changes=changes)
                if delta is not None:
                    if delta.resources is None:
                        bodies = current.delta_bodies
                    else:
                        bodies = [p for r in delta.resources for p in (r.delta_prefix, r.any_bytes, r.delta_suffix)]
                    payload = encode.delta_discovery_response(
                        system_version_info=delta.version,
                        resources=bodies,
                        type_url=type_url,
                        nonce=nonce,
                        removed_resources=delta.removed,
                        control_plane=self._control_plane,
                    )
            self.watches[type_url] = watch
            self._planned[type_url] = current
            self._planned_names[type_url] = watch.names
            if payload is None:
                return False
            try:
                async with asyncio.timeout(self._send_timeout):
                    await self._write(payload)
            except TimeoutError:
                raise SendTimeoutError(
                    f"{short_type(type_url)} response ({len(payload)} bytes) not sent within {self._send_timeout:g}s"
                ) from None
        self._metrics.pushed(short_type(type_url), time.perf_counter() - started)
        log.debug(
            "pushed",
            proxy=self.node.id,
            type=short_type(type_url),
            version=watch.version_sent,
            nonce=nonce,
            bytes=len(payload),
            snapshot=cache.version,
        )
        return True

    # ------------------------------------------------------------------------------------------ status

    def synced(self, latest_version: int | None) -> bool:
        """Pushed the latest snapshot, and every watched type ACKed what was last sent."""
        if self.cache is None or self.cache.version != latest_version or self._latest is not self.cache:
            return False
        return all(watch.acked for watch in self.watches.values())

    def status(self, latest_version: int | None) -> dict[str, Any]:
        """This stream's entry in ``/debug/syncz``."""
        proxy = self.cache.proxy(self.node) if self.cache is not None else None
        workload = proxy.workload if proxy is not None else None
        types: dict[str, Any] = {}
        for type_url in self._order:
            watch = self.watches.get(type_url)
            if watch is None:
                continue
            nack = watch.last_nack
            types[short_type(type_url)] = {
                "sent": watch.version_sent,
                "acked": watch.version_acked,
                "nonce_sent": watch.nonce_sent,
                "nonce_acked": watch.nonce_acked,
                "last_nack": None
                if nack is None
                else {"version": nack.version, "nonce": nack.nonce, "error": nack.error, "at": _iso(nack.at)},
                "resources": watch.resource_count,
            }
        return {
            "id": self.node.id,
            "workload": workload.meta.key.name if workload is not None else None,
            "namespace": self.node.namespace,
            "address": proxy.address if proxy is not None else self.node.ip,
            "mode": self.mode,
            "connected_at": _iso(self.connected_at),
            "snapshot_version": self.cache.version if self.cache is not None else None,
            "synced": self.synced(latest_version),
            "snapshot_error": None
            if self._withheld is None
            else {
                "snapshot_version": self._withheld[0],
                "dangling": {short_type(t): list(names) for t, names in self._withheld[1].items()},
            },
            "types": types,
        }

    def config_dump(self) -> dict[str, Any]:
        """The resources this proxy was sent (as of the snapshot it was last pushed), as JSON."""
        types: dict[str, Any] = {}
        for type_url in self._order:
            watch = self.watches.get(type_url)
            current = self._planned.get(type_url)
            if watch is None or current is None:
                continue
            resources = []
            for name in sorted(n for n, version in watch.sent.items() if version):
                resource = current.resources.get(name)
                if resource is not None:
                    message = AnyProto.FromString(resource.any_bytes)
                    resources.append(json_format.MessageToDict(message, preserving_proto_field_name=True))
            types[short_type(type_url)] = {"version": watch.version_sent, "resources": resources}
        return {
            "id": self.node.id,
            "snapshot_version": self.cache.version if self.cache is not None else None,
            "types": types,
        }


def _changed_eds_clusters(
    before: Mapping[str, str], after: Mapping[str, str], endpoints: WatchedResource
) -> frozenset[str]:
    """The clusters a CDS push changed that the proxy already watches in EDS (had before, new version)."""
    return frozenset(
        name
        for name, version in after.items()
        if name in endpoints.names and before.get(name) not in (None, "", version)
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
