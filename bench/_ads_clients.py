"""Simulated Envoy sidecars: many ADS streams (SotW or delta) multiplexed over a few gRPC channels.

Each stream behaves like Envoy's ADS client: CDS and LDS as wildcards, EDS for the EDS clusters CDS names, RDS for
the route tables the listeners name, every response ACKed; on a delta stream, once a route table names VHDS, the
VirtualHost type as Envoy asks for it (a request without names: its VHDS watches match by namespace). Parsing is
memoized by the resource bytes (or, for delta, by the resource version): the streams receive the same shared
resources, so the client side stays cheap and the benchmark measures Pilot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from xdscore.types import VIRTUAL_HOST_TYPE

__all__ = ["ClientStream", "open_channels"]

_HCM_TYPE = "type.googleapis.com/" + HttpConnectionManager.DESCRIPTOR.full_name
_TYPES = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)


class _Names:
    """What a stream subscribes to because of a resource: memoized per serialized resource."""

    def __init__(self) -> None:
        self._eds: dict[bytes, str] = {}
        self._rds: dict[bytes, tuple[str, ...]] = {}
        self._vhds: dict[bytes, bool] = {}

    def eds_name(self, value: bytes) -> str:
        name = self._eds.get(value)
        if name is None:
            cluster = Cluster.FromString(value)
            name = (cluster.eds_cluster_config.service_name or cluster.name) if cluster.type == Cluster.EDS else ""
            self._eds[value] = name
        return name

    def rds_names(self, value: bytes) -> tuple[str, ...]:
        names = self._rds.get(value)
        if names is None:
            found = []
            for chain in Listener.FromString(value).filter_chains:
                for network in chain.filters:
                    if network.typed_config.type_url == _HCM_TYPE:
                        hcm = HttpConnectionManager.FromString(network.typed_config.value)
                        if hcm.HasField("rds"):
                            found.append(hcm.rds.route_config_name)
            names = self._rds[value] = tuple(found)
        return names

    def uses_vhds(self, value: bytes) -> bool:
        found = self._vhds.get(value)
        if found is None:
            found = self._vhds[value] = RouteConfiguration.FromString(value).HasField("vhds")
        return found


NAMES = _Names()
_BY_VERSION: dict[tuple[str, str], Any] = {}


def open_channels(port: int, count: int) -> list[grpc.aio.Channel]:
    """``count`` channels, each its own HTTP/2 connection (a local subchannel pool keeps them apart)."""
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    return [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(count)]


OPEN_TIMEOUT_SECONDS = 30.0  # a stream whose first requests are not written by then is opened again


class ClientStream:
    """One simulated sidecar. ``synced`` is set once every type is ACKed; ``changed_at`` is when it ACKed the
    first response of the type given to ``expect_change(type_url)`` after that call (for RDS, over VHDS: the first
    VirtualHost response); ``change_bytes`` counts the bytes of every response since that call."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str, *, delta: bool) -> None:
        self.node_id = node_id
        self.delta = delta
        self._stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self._call: Any = self._new_call()
        self._stopping = False
        self.retries = 0  # times the stream failed or was closed and was opened again, as Envoy reopens ADS
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.synced_at = 0.0
        self.changed_at = 0.0
        self.responses = 0
        self.change_bytes = 0
        self._vhds = False  # asked for the VirtualHost type (a table named VHDS)
        self._acked: set[str] = set()
        self._subscribed: dict[str, tuple[str, ...]] = {ENDPOINT_TYPE: (), ROUTE_TYPE: ()}
        self._delta_names: dict[str, dict[str, Any]] = {CLUSTER_TYPE: {}, LISTENER_TYPE: {}}  # name -> derived
        self._expect_change: str | None = None  # the type URL whose next response is the change
        self._sotw_versions: dict[str, str] = {}
        self._last_nonce: dict[str, str] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def expect_change(self, type_url: str = ROUTE_TYPE) -> None:
        self._expect_change = VIRTUAL_HOST_TYPE if type_url == ROUTE_TYPE and self._vhds else type_url
        self.change_bytes = 0

    @property
    def uses_vhds(self) -> bool:
        """A route table named VHDS, and the stream asked for the VirtualHost type."""
        return self._vhds

    @property
    def acked(self) -> frozenset[str]:
        """The type URLs this stream has ACKed a response of."""
        return frozenset(self._acked)

    def _new_call(self) -> Any:
        return self._stub.DeltaAggregatedResources() if self.delta else self._stub.StreamAggregatedResources()

    async def stop(self) -> None:
        self._stopping = True
        self._call.cancel()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self.task

    async def _run(self) -> None:
        """The stream, opened again after a failure or a close (Envoy's ADS client retries with a backoff: 0.5 s,
        doubling to 4 s here) until ``stop``; before it synced, the state starts over, as a new Envoy stream does.
        A stream whose first requests gRPC's client has not written after ``OPEN_TIMEOUT_SECONDS`` is one that
        failed to open: grpc-python's client has left one of 2000 streams opened at once waiting in its first
        write for good, with Pilot never seeing it (a stall of the simulated client, which Envoy does not share)."""
        backoff = 0.5
        while True:
            # InvalidStateError: a write on a call the server had already finished
            with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError, asyncio.InvalidStateError):
                await self._attempt()
            if self._stopping:
                return
            self.retries += 1
            backoff = 0.5 if self.synced.is_set() else backoff  # a stream that synced starts over, as Envoy's does
            await asyncio.sleep(backoff)
            backoff = min(4.0, backoff * 2)
            if self._stopping:
                return
            self._call.cancel()  # a timed-out open is given up for good
            self._call = self._new_call()
            self._acked.clear()
            self._vhds = False
            self._subscribed = {ENDPOINT_TYPE: (), ROUTE_TYPE: ()}
            self._delta_names = {CLUSTER_TYPE: {}, LISTENER_TYPE: {}}
            self._sotw_versions.clear()
            self._last_nonce.clear()

    async def _attempt(self) -> None:
        async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
            for type_url in (CLUSTER_TYPE, LISTENER_TYPE):
                await self._request(type_url, node=type_url == CLUSTER_TYPE)
        while (response := await self._call.read()) is not grpc.aio.EOF:
            self.responses += 1
            if self._expect_change is not None:
                self.change_bytes += response.ByteSize()
            await self._on_response(response)

    async def _request(self, type_url: str, *, node: bool = False, names: Iterable[str] = ()) -> None:
        if self.delta:
            request: Any = DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=list(names))
        else:
            request = DiscoveryRequest(type_url=type_url, resource_names=list(names))
        if node:
            request.node.id = self.node_id
        await self._call.write(request)

    async def _on_response(self, response: Any) -> None:
        type_url = response.type_url
        follow = self._derived(type_url, response)  # EDS names from CDS, RDS names from LDS
        if self.delta:
            await self._call.write(DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce))
        else:
            names = self._subscribed.get(type_url, ())
            self._sotw_versions[type_url] = response.version_info
            self._last_nonce[type_url] = response.nonce
            await self._call.write(
                DiscoveryRequest(
                    type_url=type_url,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                    resource_names=list(names),
                )
            )
        if follow is not None:
            await self._resubscribe(*follow)
        names_vhds = type_url == ROUTE_TYPE and self.delta and not self._vhds
        if names_vhds and any(NAMES.uses_vhds(item.resource.value) for item in response.resources):
            self._vhds = True
            await self._request(VIRTUAL_HOST_TYPE)
        self._acked.add(type_url)
        needed = (*_TYPES, VIRTUAL_HOST_TYPE) if self._vhds else _TYPES
        if not self.synced.is_set() and self._acked.issuperset(needed):
            self.synced_at = time.monotonic()
            self.synced.set()
        if type_url == self._expect_change and not self.changed.is_set():
            self.changed_at = time.monotonic()
            self.changed.set()

    def _derived(self, type_url: str, response: Any) -> tuple[str, tuple[str, ...]] | None:
        if type_url not in (CLUSTER_TYPE, LISTENER_TYPE):
            return None
        derive = NAMES.eds_name if type_url == CLUSTER_TYPE else NAMES.rds_names
        if self.delta:
            known = self._delta_names[type_url]
            for name in response.removed_resources:
                known.pop(name, None)
            for item in response.resources:
                known[item.name] = self._by_version(type_url, item, derive)
            values: Iterable[Any] = known.values()
        else:
            values = [derive(packed.value) for packed in response.resources]
        names: set[str] = set()
        for value in values:
            if isinstance(value, str):
                if value:
                    names.add(value)
            else:
                names.update(value)
        target = ENDPOINT_TYPE if type_url == CLUSTER_TYPE else ROUTE_TYPE
        return target, tuple(sorted(names))

    @staticmethod
    def _by_version(type_url: str, item: Any, derive: Any) -> Any:
        """Delta resources carry a content version: derive once per (type, version), not per stream."""
        key = (type_url, item.version)
        derived = _BY_VERSION.get(key)
        if derived is None:
            derived = _BY_VERSION[key] = derive(item.resource.value)
        return derived

    async def _resubscribe(self, type_url: str, names: tuple[str, ...]) -> None:
        previous = self._subscribed[type_url]
        if names == previous:
            return
        self._subscribed[type_url] = names
        if self.delta:
            added = sorted(set(names) - set(previous))
            removed = sorted(set(previous) - set(names))
            await self._call.write(
                DeltaDiscoveryRequest(
                    type_url=type_url, resource_names_subscribe=added, resource_names_unsubscribe=removed
                )
            )
        else:  # SotW: the new names, with the version and nonce last seen for the type (as Envoy does)
            await self._call.write(
                DiscoveryRequest(
                    type_url=type_url,
                    resource_names=list(names),
                    version_info=self._sotw_versions.get(type_url, ""),
                    response_nonce=self._last_nonce.get(type_url, ""),
                )
            )
