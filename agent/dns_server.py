"""The sidecar's DNS proxy: UDP and TCP on ``127.0.0.1:15053`` (where the pod's capture rules send the app's port
53), answering mesh names from the latest lookup table and forwarding every other name upstream.

- Before the first name table arrives every query gets SERVFAIL (Istio's agent does the same unless it serves port
  53 itself): a resolver retries, where an upstream NXDOMAIN for a mesh name would be cached.
- A message that does not parse gets FORMERR (when its header does), one without a question SERVFAIL.
- An answer too large for the client's UDP size (its EDNS payload size, else 512 bytes) is sent truncated (TC set,
  no records), and the client retries over TCP; over TCP the limit is 65535 bytes.
- At most ``max_inflight`` queries are worked on at once; UDP queries beyond that are dropped (the client retries),
  TCP connections wait. A TCP connection idle for ``tcp_idle_timeout`` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import structlog

from agent.dns_table import DnsLookup
from agent.dns_upstream import DEFAULT_UPSTREAM_TIMEOUT, Upstream, forward

__all__ = ["DnsProxy", "DnsProxySettings"]

log = structlog.get_logger(__name__)

_UDP_MIN = 512
_TCP_MAX = 65535


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsProxySettings:
    upstreams: tuple[Upstream, ...] = ()
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    max_inflight: int = 1024
    tcp_idle_timeout: float = 10.0


class DnsProxy:
    """Answers DNS from ``lookup()`` (the current table; None before the first) and forwards the rest."""

    def __init__(self, lookup: Callable[[], DnsLookup | None], settings: DnsProxySettings) -> None:
        self._lookup = lookup
        self._settings = settings
        self._inflight = asyncio.Semaphore(settings.max_inflight)
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[int, int]:
        """Listen on UDP and TCP ``host:port``; the ports bound (``port`` 0: one free for both, so the same twice)."""
        attempts = 20 if port == 0 else 1
        for attempt in range(attempts):
            try:
                return await self._bind(host, port)
            except OSError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _bind(self, host: str, port: int) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(host, port))
        udp_port = int(transport.get_extra_info("sockname")[1])
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, host, udp_port)
        except OSError:  # with port 0: the UDP port is taken for TCP; the caller tries another
            transport.close()
            raise
        self._transport = transport
        log.info("dns proxy listening", address=host, port=udp_port)
        return udp_port, udp_port

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tcp is not None:
            await self._tcp.wait_closed()

    # ------------------------------------------------------------------------------------------ answering

    async def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The response to one query message, ready to send; None when nothing should be sent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _format_error(wire)
        if query.flags & dns.flags.QR:
            return None  # a response, not a query: answering it could loop between two servers
        if not query.question or query.opcode() != dns.opcode.QUERY:
            return _reply(query, dns.rcode.SERVFAIL if not query.question else dns.rcode.NOTIMP, tcp=tcp)
        lookup = self._lookup()
        if lookup is None:
            return _reply(query, dns.rcode.SERVFAIL, tcp=tcp)
        question = query.question[0]
        known = lookup.lookup(question.name.to_text(), question.rdtype)
        if known is not None:
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            response.answer.extend(known.rrsets)
            return _encode(response, query, tcp=tcp)
        forwarded = await forward(query, self._settings.upstreams, tcp=tcp, timeout=self._settings.upstream_timeout)
        if forwarded is None:
            return _reply(query, dns.rcode.SERVFAIL, tcp=tcp)
        return _encode(forwarded, query, tcp=tcp)

    # ------------------------------------------------------------------------------------------ transports

    def datagram(self, wire: bytes, client: tuple[str, int]) -> None:
        if self._inflight.locked():
            log.warning("dns proxy busy: query dropped", client=client[0])
            return
        task = asyncio.create_task(self._serve_datagram(wire, client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_datagram(self, wire: bytes, client: tuple[str, int]) -> None:
        async with self._inflight:
            response = await self.answer(wire, tcp=False)
        if response is not None and self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(response, client)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                async with asyncio.timeout(self._settings.tcp_idle_timeout):
                    length = int.from_bytes(await reader.readexactly(2), "big")
                    wire = await reader.readexactly(length)
                async with self._inflight:
                    response = await self.answer(wire, tcp=True)
                if response is None:
                    break
                writer.write(len(response).to_bytes(2, "big") + response)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # idle, closed by the client, or reset: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, proxy: DnsProxy) -> None:
        self._proxy = proxy

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._proxy.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns proxy udp error", error=repr(exc))


def _max_size(query: dns.message.Message, *, tcp: bool) -> int:
    if tcp:
        return _TCP_MAX
    return max(_UDP_MIN, query.payload) if query.edns >= 0 else _UDP_MIN


def _encode(response: dns.message.Message, query: dns.message.Message, *, tcp: bool) -> bytes:
    """``response`` as wire bytes within the client's size limit, else truncated: header, question, TC set."""
    limit = _max_size(query, tcp=tcp)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        truncated = dns.message.make_response(query)
        truncated.set_rcode(response.rcode())
        truncated.flags = response.flags | dns.flags.TC
        return truncated.to_wire(max_size=limit)


def _reply(query: dns.message.Message, rcode: dns.rcode.Rcode, *, tcp: bool) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return _encode(response, query, tcp=tcp)


def _format_error(wire: bytes) -> bytes | None:
    """FORMERR for a message whose 12-byte header is there (id and opcode echoed); else nothing to answer."""
    if len(wire) < 12 or wire[2] & 0x80:  # too short to answer, or itself a response (never answer those)
        return None
    flags = 0x8000 | (wire[2] & 0x79) << 8 | dns.rcode.FORMERR  # QR, the query's opcode and RD; rcode FORMERR
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)
