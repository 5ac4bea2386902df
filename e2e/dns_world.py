"""A small authoritative DNS server on loopback (UDP and TCP on one port), standing in for the world outside the
mesh in DNS scenarios: no real resolver is reachable from the tests. The unit tests of the agent's DNS proxy and the
end-to-end scenarios use it as the proxy's upstream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["WorldDns", "world_dns"]


class WorldDns:
    """Answers A queries for ``records`` (name -> addresses); ``broken.example.`` SERVFAIL, others NXDOMAIN.
    ``queries`` lists (transport, name) of what it was asked."""

    def __init__(self, records: Mapping[str, tuple[str, ...]]) -> None:
        self.records = dict(records)
        self.queries: list[tuple[str, str]] = []
        self.port = 0

    def answer(self, wire: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        self.queries.append((transport, question.name.to_text()))
        response = dns.message.make_response(query)
        name = question.name.to_text()
        if name == "broken.example.":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, dns.rdatatype.A, self.records[name])
            )
        limit = 65535 if transport == "tcp" else max(512, query.payload) if query.edns >= 0 else 512
        wire_out = response.to_wire()
        if len(wire_out) > limit:  # what a real server does: truncate over UDP, the client retries over TCP
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC
            return truncated.to_wire()
        return wire_out


class _WorldUdp(asyncio.DatagramProtocol):
    def __init__(self, world: WorldDns) -> None:
        self.world = world
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.world.answer(data, "udp"), addr)


@contextlib.asynccontextmanager
async def world_dns(records: Mapping[str, tuple[str, ...]]) -> AsyncIterator[WorldDns]:
    """The stand-in upstream on 127.0.0.1, UDP and TCP on the same (free) port."""
    world = WorldDns(records)
    loop = asyncio.get_running_loop()

    async def serve_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                response = world.answer(await reader.readexactly(length), "tcp")
                writer.write(len(response).to_bytes(2, "big") + response)
                await writer.drain()
        writer.close()

    for attempt in range(20):  # a free UDP port may be taken for TCP: try another
        transport, _ = await loop.create_datagram_endpoint(lambda: _WorldUdp(world), local_addr=("127.0.0.1", 0))
        world.port = transport.get_extra_info("sockname")[1]
        try:
            server = await asyncio.start_server(serve_tcp, "127.0.0.1", world.port)
            break
        except OSError:
            transport.close()
            if attempt == 19:
                raise
    try:
        yield world
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
