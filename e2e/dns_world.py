"""A small authoritative DNS server on loopback (UDP and TCP on one port), standing in for the world outside the
mesh in DNS scenarios: no real resolver is reachable from the tests. The unit tests of the agent's DNS proxy and the
end-to-end scenarios use it as the proxy's upstream; the pod scenarios run it in a network namespace on the pod
network (``python -m e2e.dns_world --address IP --port 53 --record name=ip``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["WorldDns", "main", "world_dns"]


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
async def world_dns(
    records: Mapping[str, tuple[str, ...]], *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[WorldDns]:
    """The stand-in upstream on ``host``, UDP and TCP on the same port (``0``: a free one)."""
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

    for attempt in range(20 if port == 0 else 1):  # a free UDP port may be taken for TCP: try another
        transport, _ = await loop.create_datagram_endpoint(lambda: _WorldUdp(world), local_addr=(host, port))
        world.port = transport.get_extra_info("sockname")[1]
        try:
            server = await asyncio.start_server(serve_tcp, host, world.port)
            break
        except OSError:
            transport.close()
            if attempt == 19 or port != 0:
                raise
    try:
        yield world
    finally:
        transport.close()
        server.close()
        await server.wait_closed()


async def _serve(records: Mapping[str, tuple[str, ...]], host: str, port: int) -> None:
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(number, stop.set)
    async with world_dns(records, host=host, port=port) as world:
        print(f"world dns on {host}:{world.port}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.dns_world", description=WorldDns.__doc__)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--record", action="append", default=[], metavar="NAME=IP", help="an A record (repeatable)")
    args = parser.parse_args(argv)
    records: dict[str, tuple[str, ...]] = {}
    for record in args.record:
        name, _, address = record.partition("=")
        records[name.rstrip(".") + "."] = (*records.get(name.rstrip(".") + ".", ()), address)
    asyncio.run(_serve(records, args.address, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
