"""One xDS stream, whatever it serves: its protocol state per type, and the only task that writes to it.

A stream runs one task that handles, in order, the client's requests (read by a helper task) and its owner's
notices (``notify``: "something changed"; an equal notice already queued is not queued again, so a slow client
skips intermediate states and never holds another stream up). Which request needs a response is decided by
``should_respond``/``should_respond_delta`` (``watch.py``), what a response holds by ``plan_sotw``/``plan_delta``
(``plan.py``) over what the type's ``ResourceProducer`` supplies, and the response is encoded from the resources'
cached bytes (``encode.py``). An optional semaphore, shared by a server's streams, bounds how many responses are
being built and written at once (Istio's push throttle). A slow client is slowed, not cut: its stream has at most
one response being written (HTTP/2 flow control makes the write wait) and its notices coalesce while it writes, so
what waits for it is the latest state of each type. A write that takes longer than ``send_timeout`` (Istio's
PILOT_XDS_SEND_TIMEOUT) gives its throttle slot back and goes on waiting; only a client that consumed nothing for
``stall_timeout`` (it stopped reading) loses its stream, and reconnects.

The stream knows nothing of what it serves (go-control-plane's server and cache against what is served): its owner
supplies a producer per type URL, and as the stream's ``StreamOwner`` handles its notices (calling ``respond`` for
the types that may have changed) and logs and counts what operators should see (NACKs, sends).

A push (``respond(requested=False)``) hands the planner the changes since the type was last planned, when the
producer knows them cheaply (``ResourceProducer.changes``), so that its cost follows what changed, not what the
client watches; a producer that returns the very same resource set as last time costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol, TypeAlias

import structlog
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from xdscore.changes import ResourceChanges
from xdscore.payload import PayloadMemo, shared_payload
from xdscore.plan import DeltaResponse, SotwResponse, plan_delta, plan_sotw
from xdscore.resources import ProxyResources
from xdscore.types import short_type
from xdscore.watch import Nack, WatchedResource, should_respond, should_respond_delta

__all__ = [
    "Mode",
    "Request",
    "ResourceProducer",
    "SendTimeoutError",
    "Sent",
    "StreamOwner",
    "StreamSettings",
    "XdsStream",
]

log = structlog.get_logger(__name__)

Mode = Literal["sotw", "delta"]
Request: TypeAlias = DiscoveryRequest | DeltaDiscoveryRequest

_CLOSED = object()  # inbox marker: the client closed its side of the stream


DEFAULT_SEND_TIMEOUT = 20.0  # seconds (Istio's PILOT_XDS_SEND_TIMEOUT)
DEFAULT_STALL_TIMEOUT = 300.0  # seconds


class SendTimeoutError(TimeoutError):
    """A response could not be written within the stall timeout: the client stopped reading its stream."""


class ResourceProducer(Protocol):
    """What one stream is served of one type URL. The stream asks; it plans, encodes and sends."""

    @property
    def wildcard(self) -> bool:
        """The client gets every resource (CDS, LDS), not only the names it subscribes to (EDS, RDS, SDS)."""
        ...

    @property
    def every_watched(self) -> bool:
        """A named type whose SotW responses carry every watched resource that exists, and which sends none when
        none exists. Envoy's SDS refuses a response that lacks a secret it watches; its EDS and RDS keep what a
        response leaves out, and complete their init on an empty response: those take partial pushes (False)."""
        ...

    async def resources(self, watch: WatchedResource) -> ProxyResources | None:
        """What the stream is to be served now (``watch``: its subscription). None: nothing yet (no snapshot, or
        one withheld from this client); the owner's next notice responds. May do CPU work in a worker thread."""
        ...

    def changes(self, since: ProxyResources, current: ProxyResources) -> ResourceChanges | None:
        """How ``current`` differs from ``since``, if the producer knows it cheaply; None: compare every name."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A response written to the stream."""

    version: str
    nonce: str
    size: int  # bytes
    seconds: float  # from planning to written, throttle wait included
    resources: ProxyResources  # the set it was planned from


class StreamOwner(Protocol):
    """What a stream's owner does with its notices, and logs and counts of it."""

    async def noticed(self, notice: Hashable) -> None:
        """``notice`` (given to ``XdsStream.notify``) reached the stream's task: respond to what it changed."""
        ...

    def rejected(self, type_url: str, nack: Nack) -> None:
        """The client NACKed a response (called once per NACK)."""
        ...

    def sent(self, type_url: str, sent: Sent) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSettings:
    """What every stream of one server shares."""

    nonce: Callable[[], str]  # unique per response (``service.Nonces``)
    # Where streams share equal responses (the same resources, version and type): their wire bytes and their nonce,
    # which then names one response content across the streams (``payload.PayloadMemo``); None: not shared
    payloads: PayloadMemo | None = None
    control_plane: str = ""  # ``control_plane.identifier`` in every response
    # seconds a write holds its throttle slot; a slower one waits outside the throttle
    send_timeout: float = DEFAULT_SEND_TIMEOUT
    # seconds a response may take to be written before the stream is closed
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    throttle: asyncio.Semaphore | None = None  # bounds the responses built and written at once, across streams
    default_type_url: str = ""  # the type of a request that names none (a non-aggregated service, e.g. SDS)


class XdsStream:
    """The protocol state and sender of one stream (state of the world or delta)."""

    def __init__(
        self,
        *,
        mode: Mode,
        producers: Mapping[str, ResourceProducer],
        write: Callable[[bytes], Awaitable[None]],
        owner: StreamOwner,
        settings: StreamSettings,
        log_context: Mapping[str, object] | None = None,
    ) -> None:
        """``log_context``: who the client is, in this module's log lines."""
        self.mode: Mode = mode
        self.watches: dict[str, WatchedResource] = {}
        self.planned: dict[str, ProxyResources] = {}  # the resources each type was last planned against
        self._planned_names: dict[str, frozenset[str]] = {}  # the watched names then
        self._producers = producers
        self._write = write
        self._owner = owner
        self._settings = settings
        self._throttle: contextlib.AbstractAsyncContextManager[object] = settings.throttle or contextlib.nullcontext()
        self._log_context = dict(log_context or {})
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self.slow_writes = 0  # responses that took longer than ``send_timeout`` to be written

    # ------------------------------------------------------------------------------------------ running

    def notify(self, notice: Hashable) -> None:
        """Hand ``notice`` to the owner's handler on the stream's task. Never blocks; coalesces while queued."""
        if notice not in self._queued:
            self._queued.add(notice)
            self._inbox.put_nowait(notice)

    async def serve(self, first: Request, requests: AsyncIterator[Request]) -> None:
        """Handle ``first``, every later request and every notice, until the client closes the stream (or stops
        reading it: the stall timeout ends it)."""
        reader = asyncio.create_task(self._read(requests), name="xds-read")
        self._inbox.put_nowait(first)
        try:
            while True:
                item = await self._inbox.get()
                if item is _CLOSED:
                    break
                if isinstance(item, DiscoveryRequest | DeltaDiscoveryRequest):
                    await self._handle(item)
                else:
                    self._queued.discard(item)
                    await self._owner.noticed(item)
        except SendTimeoutError as exc:
            log.warning("client stopped reading its stream; closing it", reason=str(exc), **self._log_context)
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
        type_url = request.type_url or self._settings.default_type_url
        producer = self._producers.get(type_url)
        if producer is None:
            log.warning("unsupported xDS type requested; not answered", type_url=type_url[:200], **self._log_context)
            return
        previous = self.watches.get(type_url)
        if isinstance(request, DiscoveryRequest):
            respond, watch = should_respond(previous, request, wildcard=producer.wildcard, now=time.time())
        else:
            respond, watch = should_respond_delta(previous, request, wildcard=producer.wildcard, now=time.time())
        self.watches[type_url] = watch
        nack = watch.last_nack
        if nack is not None and (previous is None or previous.last_nack is not nack):
            self._owner.rejected(type_url, nack)
        if respond:
            await self.respond(type_url, requested=True, force=previous is None)

    async def respond(self, type_url: str, *, requested: bool, force: bool) -> bool:
        """Send what the client needs of ``type_url`` now, if anything; True when something was sent.

        ``requested``: the client asked (SotW answers with everything it watches); else a push (only what differs
        from what it was sent). ``force`` (delta): answer even when nothing differs, as a first request needs."""
        producer = self._producers[type_url]
        watch = self.watches[type_url]
        current = await producer.resources(watch)
        if current is None:
            return False
        first = not watch.nonce_sent
        planned = self.planned.get(type_url)
        pushing = not requested and not first
        if pushing and current is planned:
            return False  # the same set as last time: nothing of this type changed for this client
        changes = None
        incremental = self.mode == "delta" or not watch.wildcard  # a SotW wildcard response is the whole set anyway
        if pushing and incremental and planned is not None and watch.names is self._planned_names.get(type_url):
            changes = producer.changes(planned, current)
        started = time.perf_counter()
        async with self._throttle:
            nonce = self._settings.nonce()
            response: SotwResponse | DeltaResponse | None
            if self.mode == "sotw":
                full = requested or first
                every_watched = producer.every_watched
                response, watch = plan_sotw(
                    watch, current, nonce=nonce, full=full, changes=changes, every_watched=every_watched
                )
            else:
                response, watch = plan_delta(watch, current, nonce=nonce, force=force or first, changes=changes)
            shared = shared_payload(
                response,
                current,
                type_url=type_url,
                control_plane=self._settings.control_plane,
                memo=self._settings.payloads,
            )
            payload = None if shared is None else shared[0]
            if shared is not None and shared[1] != nonce:  # another stream's equal response: its bytes and nonce
                nonce = shared[1]
                watch = replace(watch, nonce_sent=nonce)
            self.watches[type_url] = watch
            self.planned[type_url] = current
            self._planned_names[type_url] = watch.names
            if payload is None:
                return False
            writing = asyncio.ensure_future(self._write(payload))
            try:
                await asyncio.wait((writing,), timeout=self._settings.send_timeout)
            except BaseException:
                writing.cancel()
                raise
        if not writing.done():
            await self._write_slowly(writing, type_url, len(payload))
        writing.result()  # a failed write raises here
        seconds = time.perf_counter() - started
        sent = Sent(version=watch.version_sent, nonce=nonce, size=len(payload), seconds=seconds, resources=current)
        self._owner.sent(type_url, sent)
        return True

    async def _write_slowly(self, writing: asyncio.Future[None], type_url: str, size: int) -> None:
        """Wait, outside the throttle, for a write the client is slow to take; up to ``stall_timeout`` in all."""
        settings = self._settings
        self.slow_writes += 1
        log.info("client reading slowly; waiting for it", type=short_type(type_url), bytes=size, **self._log_context)
        try:
            async with asyncio.timeout(max(0.0, settings.stall_timeout - settings.send_timeout)):
                await asyncio.shield(writing)
        except TimeoutError:
            raise SendTimeoutError(
                f"{short_type(type_url)} response ({size} bytes) not taken within {settings.stall_timeout:g}s"
            ) from None
        finally:
            if not writing.done():
                writing.cancel()

    # ------------------------------------------------------------------------------------------ status

    @property
    def acked(self) -> bool:
        """Every watched type ACKed what was last sent of it (True when nothing is watched)."""
        return all(watch.acked for watch in self.watches.values())
