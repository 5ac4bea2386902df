"""The agent's NDS client: one ADS stream (state of the world) to Pilot asking for Istio's name table as the
sidecar's node, handing every table Pilot pushes to ``on_table`` and ACKing it (NACKing one that does not parse,
with the error, as Envoy does). A broken stream is reopened after a backoff that doubles from ``initial_backoff``
up to ``max_backoff`` (reset once a table arrives); the last table stays in force meanwhile.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import structlog
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf.message import DecodeError

from meshplane.nds.v1.nds_pb2 import NameTable
from xdscore.types import NAME_TABLE_TYPE

__all__ = ["NdsClient", "NdsSettings", "name_table_of"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class NdsSettings:
    pilot: str  # HOST:PORT
    node_id: str
    initial_backoff: float = 0.1
    max_backoff: float = 5.0


def name_table_of(response: DiscoveryResponse) -> NameTable:
    """The table in a response: its one resource (none: an empty table). ValueError for anything else."""
    if len(response.resources) > 1:
        raise ValueError(f"expected one NameTable, got {len(response.resources)} resources")
    table = NameTable()
    for packed in response.resources:
        if packed.type_url != NAME_TABLE_TYPE:
            raise ValueError(f"expected {NAME_TABLE_TYPE}, got {packed.type_url}")
        try:
            packed.Unpack(table)
        except DecodeError as exc:
            raise ValueError(f"NameTable does not parse: {exc}") from exc
    return table


class NdsClient:
    """Keeps the stream to Pilot open while ``run`` runs; ``tables`` counts the tables received."""

    def __init__(self, settings: NdsSettings, on_table: Callable[[NameTable], None]) -> None:
        self._settings = settings
        self._on_table = on_table
        self.tables = 0

    async def run(self) -> None:
        """Stream until cancelled, reconnecting with backoff."""
        backoff = self._settings.initial_backoff
        while True:
            received_before = self.tables
            try:
                await self._stream()
                log.warning("pilot closed the NDS stream", pilot=self._settings.pilot)
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "NDS stream failed", pilot=self._settings.pilot, code=exc.code().name, details=exc.details()
                )
            if self.tables > received_before:
                backoff = self._settings.initial_backoff
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self._settings.max_backoff)

    async def _stream(self) -> None:
        requests: asyncio.Queue[DiscoveryRequest] = asyncio.Queue()
        first = DiscoveryRequest(type_url=NAME_TABLE_TYPE)
        first.node.id = self._settings.node_id
        requests.put_nowait(first)
        async with grpc.aio.insecure_channel(self._settings.pilot) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            call = stub.StreamAggregatedResources(_drain(requests))
            async for response in call:
                requests.put_nowait(self._handle(response))

    def _handle(self, response: DiscoveryResponse) -> DiscoveryRequest:
        """Apply one response; the ACK (or NACK) to send for it."""
        reply = DiscoveryRequest(type_url=NAME_TABLE_TYPE, response_nonce=response.nonce)
        try:
            table = name_table_of(response)
        except ValueError as exc:
            log.error("NameTable rejected (NACK)", version=response.version_info, error=str(exc))
            reply.error_detail.code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
            reply.error_detail.message = str(exc)
            return reply
        self._on_table(table)
        self.tables += 1
        reply.version_info = response.version_info
        log.info("name table received", version=response.version_info, hosts=len(table.table))
        return reply


async def _drain(queue: asyncio.Queue[DiscoveryRequest]) -> AsyncIterator[DiscoveryRequest]:
    while True:
        yield await queue.get()
