"""What every xDS gRPC service needs around its streams: nonces, responses that are already wire bytes, and the
state-of-the-world and delta stream methods, so that a server only says which streams it opens for whom."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from xdscore.stream import Mode, Request

__all__ = ["Nonces", "ServeStream", "first_request", "pass_bytes", "stream_methods"]

ServeStream = Callable[[AsyncIterator[Any], "grpc.aio.ServicerContext[Any, bytes]", Mode], Awaitable[None]]


class Nonces:
    """Response nonces unique to one server process: a random prefix, so that a nonce a client kept from an earlier
    process never matches, and a counter. With a ``payload.PayloadMemo``, streams that send an equal response send
    the first one's nonce: a nonce then names one response content, whichever stream it is on."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._count)}"


def pass_bytes(payload: bytes) -> bytes:
    """Response serializer: responses are already wire bytes (``payload.py``)."""
    return payload


async def first_request(requests: AsyncIterator[Request]) -> Request | None:
    """The stream's first request (it names the client), or None when the client closed before sending one."""
    try:
        return await anext(aiter(requests))
    except StopAsyncIteration:
        return None


def stream_methods(*, sotw: str, delta: str, serve: ServeStream) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The two stream methods of a discovery service (e.g. ``StreamSecrets`` and ``DeltaSecrets``), each calling
    ``serve(requests, context, mode)``; responses are written as bytes."""

    async def serve_sotw(
        requests: AsyncIterator[DiscoveryRequest], context: grpc.aio.ServicerContext[Any, bytes]
    ) -> None:
        await serve(requests, context, "sotw")

    async def serve_delta(
        requests: AsyncIterator[DeltaDiscoveryRequest], context: grpc.aio.ServicerContext[Any, bytes]
    ) -> None:
        await serve(requests, context, "delta")

    return {
        sotw: grpc.stream_stream_rpc_method_handler(
            serve_sotw, request_deserializer=DiscoveryRequest.FromString, response_serializer=pass_bytes
        ),
        delta: grpc.stream_stream_rpc_method_handler(
            serve_delta, request_deserializer=DeltaDiscoveryRequest.FromString, response_serializer=pass_bytes
        ),
    }
