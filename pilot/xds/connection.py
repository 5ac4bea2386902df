"""One ADS stream: a proxy, the snapshot it is served from, and the order its types are pushed in.

The protocol (requests, ACK/NACK, SotW and delta planning, coalesced notices, throttle, send timeout) is the
shared core's ``XdsStream``; a connection is its owner. For each generated type it supplies a producer that reads
the proxy's resources from the snapshot being served (``ResourceCache``, the proxy's views built in a worker thread
when they are not yet), and it turns "a newer snapshot exists" notices into pushes in Envoy's order. Notices
coalesce: the server only overwrites the connection's latest-snapshot slot, so a slow proxy skips intermediate
snapshots and never holds the others up. A push hands the planner the changes since the last plan (memoized per
pair of shared groups, ``xdscore.changes``), so that its cost follows what changed, not what the proxy watches.

A snapshot is used for a proxy only once its resources are known to be consistent for it (``consistency.py``):
the server checks the connected proxies when it builds a snapshot; a stream checks its own proxy the first time
it meets a snapshot that was not checked for it (a proxy that connected later). An inconsistent one is withheld:
the stream keeps what it had, and the error shows in ``/debug/syncz``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyProto

from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, PUSH_ORDER, ROUTE_TYPE, TypeGenerator
from pilot.metrics import PilotMetrics
from pilot.model import ProxyNode
from pilot.xds.cache import ResourceCache
from pilot.xds.consistency import Dangling
from pilot.xds.vhds import VhdsSplits, VhdsView
from xdscore import (
    Mode,
    Nack,
    ProxyResources,
    Request,
    ResourceChanges,
    SendTimeoutError,
    Sent,
    StreamSettings,
    WatchedResource,
    XdsStream,
    forget_sent,
    short_type,
)
from xdscore.types import VIRTUAL_HOST_TYPE

__all__ = ["Connection", "Mode", "SendTimeoutError", "short_type"]

log = structlog.get_logger(__name__)

_PUSH = "push"  # notice: the latest-snapshot slot changed
_VIRTUAL_HOSTS = "vhds"  # notice: route tables were sent over a VHDS stream; their virtual hosts follow


class _SnapshotProducer:
    """One type's resources for the connection's proxy, from the snapshot the connection serves."""

    every_watched = False

    def __init__(self, connection: Connection, type_url: str, wildcard: bool) -> None:
        self._connection = connection
        self._type_url = type_url
        self.wildcard = wildcard

    async def resources(self, watch: WatchedResource) -> ProxyResources | None:
        del watch  # a proxy's views hold every name; the planner picks the watched ones
        return await self._connection.view(self._type_url)

    def changes(self, since: ProxyResources, current: ProxyResources) -> ResourceChanges | None:
        cache = self._connection.cache
        return cache.changes(since, current) if cache is not None else None


class _VhdsRoutesProducer(_SnapshotProducer):
    """RDS for a stream served over VHDS: the proxy's route tables without their virtual hosts. A watched table the
    proxy is about to be sent (new, changed, or subscribed again after an unsubscribe) starts a new VHDS watch in
    Envoy when it has none: its virtual hosts are sent again after it (``Connection._reconcile_virtual_hosts``)."""

    async def resources(self, watch: WatchedResource) -> ProxyResources | None:
        view = await self._connection.vhds_view()
        if view is None:
            return None
        tables, sent = view.routes.resources, watch.sent
        self._connection.refresh_tables(
            name for name in watch.names if (table := tables.get(name)) is not None and sent.get(name) != table.version
        )
        return view.routes


class _VirtualHostProducer(_SnapshotProducer):
    """VHDS: the virtual hosts of the route tables the stream has been sent over RDS.

    Envoy subscribes to VHDS by namespace (the table's name) but never sends those names: its VirtualHost requests
    are a wildcard subscription, and each table's VHDS watch takes the ``<table>/...`` resources. A watch exists
    once Envoy has applied that table's RDS response, and a resource that arrives before it is dropped for good;
    so a table's virtual hosts go out only after the table itself (pushed after RDS, and after every RDS response:
    ``Connection.sent``)."""

    async def resources(self, watch: WatchedResource) -> ProxyResources | None:
        connection = self._connection
        routes = connection.watches.get(ROUTE_TYPE)
        if routes is None or not routes.nonce_sent:
            return None  # no table yet: nothing to say (not even that what a reconnecting Envoy has is gone)
        view = await connection.vhds_view()
        if view is None:
            return None
        tables = _tables_sent(routes)
        connection.virtual_hosts_planned(tables, first=not watch.nonce_sent)
        return view.subscribed(tables)


class Connection:
    """The proxy and snapshots of one ADS stream (state of the world or delta)."""

    def __init__(
        self,
        *,
        node: ProxyNode,
        mode: Mode,
        write: Callable[[bytes], Awaitable[None]],
        generators: Mapping[str, TypeGenerator],
        cache: ResourceCache | None,
        metrics: PilotMetrics,
        settings: StreamSettings,
        vhds: VhdsSplits | None = None,
    ) -> None:
        """``vhds`` (delta streams only): serve route tables over VHDS, split by these (the server's)."""
        if vhds is not None and mode != "delta":
            raise ValueError("VHDS needs a delta stream")
        self.node = node
        self.mode: Mode = mode
        self.connected_at = time.time()
        self.cache = cache  # the snapshot this stream's responses are built from
        self._latest = cache  # the newest snapshot the server announced
        self._order = [t for t in PUSH_ORDER if t in generators] + [t for t in generators if t not in PUSH_ORDER]
        self._metrics = metrics
        self._vhds = vhds
        self._vhds_view: tuple[ProxyResources, VhdsView] | None = None  # the RDS view it was split from, and it
        self._refresh_tables: set[str] = set()  # tables sent (again) since VHDS was last planned
        self._vhds_tables: frozenset[str] = frozenset()  # the tables VHDS was last planned over
        self._consistent: ResourceCache | None = None  # the last snapshot found consistent for this proxy
        self._withheld: tuple[int, Dangling] | None = None  # (version, dangling) of a snapshot not used, if any
        producers = {t: _SnapshotProducer(self, t, g.wildcard) for t, g in generators.items()}
        if vhds is not None and ROUTE_TYPE in generators:
            producers[ROUTE_TYPE] = _VhdsRoutesProducer(self, ROUTE_TYPE, False)
            producers[VIRTUAL_HOST_TYPE] = _VirtualHostProducer(self, VIRTUAL_HOST_TYPE, True)
            self._order.insert(self._order.index(ROUTE_TYPE) + 1, VIRTUAL_HOST_TYPE)
        self._stream = XdsStream(
            mode=mode, producers=producers, write=write, owner=self, settings=settings, log_context={"proxy": node.id}
        )

    @property
    def watches(self) -> dict[str, WatchedResource]:
        return self._stream.watches

    # ------------------------------------------------------------------------------------------ running

    def notify(self, cache: ResourceCache) -> None:
        """A new snapshot exists. Never blocks: only the newest one is kept until the sender gets to it."""
        self._latest = cache
        self._stream.notify(_PUSH)

    async def serve(self, first: Request, requests: AsyncIterator[Request]) -> None:
        """Handle ``first`` and every later request, and pushes, until the proxy closes the stream."""
        await self._stream.serve(first, requests)

    async def noticed(self, notice: Hashable) -> None:
        """The stream's task got to a notice: a newer snapshot (push it), or route tables sent (their VHDS)."""
        if notice == _VIRTUAL_HOSTS:
            await self._respond_virtual_hosts()
        elif self._latest is not None:
            await self._push(self._latest)

    async def view(self, type_url: str) -> ProxyResources | None:
        """The proxy's resources of one type in the snapshot being served (built in a worker thread if need be);
        None while there is none, or it is withheld from this proxy."""
        cache = self.cache
        if cache is None or not await self.usable(cache):
            return None
        current = cache.cached_view(type_url, self.node)
        if current is None:
            try:
                current = await asyncio.to_thread(cache.view, type_url, self.node)
            except Exception:
                log.exception("generating resources failed", proxy=self.node.id, type=short_type(type_url))
                raise
        return current

    async def vhds_view(self) -> VhdsView | None:
        """The proxy's route tables in VHDS form, from the snapshot being served (a table already split, by any
        stream, is not split again; a new one is split in a worker thread)."""
        splits = self._vhds
        routes = await self.view(ROUTE_TYPE)
        if routes is None or splits is None:
            return None
        memo = self._vhds_view
        if memo is not None and memo[0] is routes:
            return memo[1]
        view = splits.cached_view(routes)
        if view is None:
            view = await asyncio.to_thread(splits.view, routes)
        self._vhds_view = (routes, view)
        return view

    async def usable(self, cache: ResourceCache) -> bool:
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
        if not await self.usable(cache):
            return  # keep what the proxy has (from self.cache, if anything)
        self.cache = cache
        stream, watches = self._stream, self._stream.watches
        pushed = False
        warming: frozenset[str] = frozenset()
        for type_url in self._order:
            if type_url not in watches:
                continue
            if type_url == ENDPOINT_TYPE and warming:
                # Envoy keeps an updated EDS cluster warming until it gets its ClusterLoadAssignment again, and
                # holds the CDS ACK until then: resend those assignments even where they did not change (Istio's
                # full push does the same), or a changed cluster (e.g. its TLS settings) never becomes active.
                # SotW answers as if asked (everything watched); delta forgets it sent them, then sends them.
                if self.mode == "delta":
                    watches[type_url] = forget_sent(watches[type_url], warming)
                pushed = await stream.respond(type_url, requested=True, force=True) or pushed
                continue
            if type_url == VIRTUAL_HOST_TYPE:
                pushed = await self._respond_virtual_hosts() or pushed
                continue
            before = watches[type_url].sent
            sent = await stream.respond(type_url, requested=False, force=False)
            pushed = sent or pushed
            if sent and type_url == CLUSTER_TYPE and ENDPOINT_TYPE in watches:
                warming = _changed_eds_clusters(before, watches[type_url].sent, watches[ENDPOINT_TYPE])
        if pushed and cache.changed_at is not None:
            self._metrics.converged(time.monotonic() - cache.changed_at)

    def refresh_tables(self, tables: Iterable[str]) -> None:
        """These tables are being sent to the proxy: their virtual hosts follow, even where sent before."""
        self._refresh_tables.update(tables)

    def virtual_hosts_planned(self, tables: frozenset[str], *, first: bool) -> None:
        """VHDS is being planned over these tables' virtual hosts (``first``: the stream's first VHDS response,
        which covers every table sent so far)."""
        self._vhds_tables = tables
        if first:
            self._refresh_tables.clear()

    async def _respond_virtual_hosts(self) -> bool:
        """Push VHDS once the proxy's record matches what its Envoy holds (``_reconcile_virtual_hosts``)."""
        if VIRTUAL_HOST_TYPE not in self.watches:
            return False
        forgot = self._reconcile_virtual_hosts()
        return await self._stream.respond(VIRTUAL_HOST_TYPE, requested=forgot, force=False)

    def _reconcile_virtual_hosts(self) -> bool:
        """Forget having sent the virtual hosts of tables Envoy's VHDS watch for them does not hold: a table sent
        again (a new watch in Envoy when it had none, e.g. subscribed again after an unsubscribe), so they are sent
        again; and a table the proxy no longer has, so they are not removed (Envoy keeps a removed table while its
        listener drains, as without VHDS). True when something was forgotten."""
        routes = self.watches.get(ROUTE_TYPE)
        kept = _tables_sent(routes) if routes is not None else frozenset()
        refresh, self._refresh_tables = self._refresh_tables, set()
        tables = (refresh & self._vhds_tables) | (self._vhds_tables - kept)
        if not tables:
            return False  # the usual push: nothing to forget, and no look at every virtual host sent
        watch = self.watches[VIRTUAL_HOST_TYPE]
        stale = frozenset(name for name in watch.sent if name.rpartition("/")[0] in tables)
        if not stale:
            return False
        self.watches[VIRTUAL_HOST_TYPE] = forget_sent(watch, stale)
        return True

    # ------------------------------------------------------------------------------------------ observed

    def rejected(self, type_url: str, nack: Nack) -> None:
        self._metrics.rejected(short_type(type_url))
        log.warning("proxy rejected config (NACK)", proxy=self.node.id, type=short_type(type_url), **nack.log_fields())

    def sent(self, type_url: str, sent: Sent) -> None:
        if type_url == ROUTE_TYPE and self._vhds is not None:
            self._stream.notify(_VIRTUAL_HOSTS)  # e.g. a table the proxy just subscribed to: now its virtual hosts
        self._metrics.pushed(short_type(type_url), sent.seconds)
        log.debug(
            "pushed",
            proxy=self.node.id,
            type=short_type(type_url),
            version=sent.version,
            nonce=sent.nonce,
            bytes=sent.size,
            snapshot=self.cache.version if self.cache is not None else None,
        )

    # ------------------------------------------------------------------------------------------ status

    def synced(self, latest_version: int | None) -> bool:
        """Pushed the latest snapshot, and every watched type ACKed what was last sent."""
        if self.cache is None or self.cache.version != latest_version or self._latest is not self.cache:
            return False
        return self._stream.acked

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
        """The resources this proxy was sent (as of the snapshot it was last pushed), as JSON. Over VHDS, each route
        table also lists the virtual hosts sent for it, as Envoy shows the table it assembled."""
        types: dict[str, Any] = {}
        for type_url in self._order:
            watch = self.watches.get(type_url)
            current = self._stream.planned.get(type_url)
            if watch is None or current is None:
                continue
            resources = []
            for name in sorted(n for n, version in watch.sent.items() if version):
                resource = current.resources.get(name)
                if resource is not None:
                    message = AnyProto.FromString(resource.any_bytes)
                    resources.append(json_format.MessageToDict(message, preserving_proto_field_name=True))
            types[short_type(type_url)] = {"version": watch.version_sent, "resources": resources}
        if "vhds" in types and "rds" in types:
            _assemble_tables(types["rds"]["resources"], types["vhds"]["resources"])
        return {
            "id": self.node.id,
            "snapshot_version": self.cache.version if self.cache is not None else None,
            "types": types,
        }


def _assemble_tables(tables: list[dict[str, Any]], virtual_hosts: list[dict[str, Any]]) -> None:
    """Each VHDS table as Envoy assembles it (its config_dump shows the same): with the virtual hosts sent under it."""
    by_table: dict[str, list[dict[str, Any]]] = {}
    for host in virtual_hosts:
        by_table.setdefault(str(host.get("name", "")).rsplit("/", 1)[0], []).append(host)
    for table in tables:
        if "vhds" in table:
            table["virtual_hosts"] = by_table.get(str(table.get("name", "")), [])


def _tables_sent(routes: WatchedResource) -> frozenset[str]:
    return frozenset(name for name, version in routes.sent.items() if version)


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
