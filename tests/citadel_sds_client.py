"""Test support for Citadel's servers: a real SDS stream client with bounded waits, and SDS response decoding."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from envoy.service.secret.v3 import sds_pb2_grpc

from citadel.ca import load_certs_pem
from citadel.sds_resources import SECRET_TYPE

__all__ = ["WAIT", "SdsClient", "Secrets", "decode_secrets", "decode_workload"]

WAIT = 10.0  # the longest a Citadel test waits for one event


@dataclass(frozen=True, slots=True, kw_only=True)
class Secrets:
    """What one SDS response held, decoded: the ``default`` chain and key, the ``ROOTCA`` roots (when sent)."""

    chain: tuple[x509.Certificate, ...] = ()
    key_pem: bytes = b""
    roots: tuple[x509.Certificate, ...] = ()

    @property
    def leaf(self) -> x509.Certificate:
        assert self.chain, "the response held no default certificate"
        return self.chain[0]

    @property
    def serial(self) -> int:
        return self.leaf.serial_number


def decode_secrets(response: DiscoveryResponse | DeltaDiscoveryResponse) -> dict[str, Secret]:
    """The Secrets of a SotW or delta response, by name."""
    if isinstance(response, DeltaDiscoveryResponse):
        packed = [r.resource for r in response.resources]
    else:
        packed = list(response.resources)
    found: dict[str, Secret] = {}
    for item in packed:
        assert item.type_url == SECRET_TYPE, item.type_url
        secret = Secret()
        item.Unpack(secret)
        found[secret.name] = secret
    return found


def decode_workload(response: DiscoveryResponse | DeltaDiscoveryResponse) -> Secrets:
    by_name = decode_secrets(response)
    chain: tuple[x509.Certificate, ...] = ()
    key = b""
    roots: tuple[x509.Certificate, ...] = ()
    if "default" in by_name:
        tls = by_name["default"].tls_certificate
        chain = tuple(load_certs_pem(tls.certificate_chain.inline_bytes))
        key = tls.private_key.inline_bytes
    if "ROOTCA" in by_name:
        roots = tuple(load_certs_pem(by_name["ROOTCA"].validation_context.trusted_ca.inline_bytes))
    return Secrets(chain=chain, key_pem=key, roots=roots)


class SdsClient:
    """One real SDS stream (``StreamSecrets`` or ``DeltaSecrets``). A reader task queues what arrives, so a test
    can wait for the next response, assert silence, or wait for the status the stream ends with."""

    def __init__(self, channel: grpc.aio.Channel, *, token: str | None, delta: bool = False) -> None:
        self.delta = delta
        self._requests: asyncio.Queue[DiscoveryRequest | DeltaDiscoveryRequest | None] = asyncio.Queue()
        self._received: asyncio.Queue[Any] = asyncio.Queue()
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
        method = stub.DeltaSecrets if delta else stub.StreamSecrets
        self.call = method(self._outgoing(), metadata=metadata)
        self._reader = asyncio.create_task(self._read())

    async def _outgoing(self) -> AsyncIterator[Any]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def _read(self) -> None:
        try:
            while (message := await self.call.read()) is not grpc.aio.EOF:
                self._received.put_nowait(message)
            self._received.put_nowait(grpc.aio.EOF)
        except grpc.aio.AioRpcError as exc:
            self._received.put_nowait(exc)
        except asyncio.CancelledError:
            self._received.put_nowait(grpc.aio.EOF)

    def send(self, request: DiscoveryRequest | DeltaDiscoveryRequest) -> None:
        self._requests.put_nowait(request)

    def subscribe(self, *names: str, type_url: str = SECRET_TYPE) -> None:
        """The first request of the stream, for ``names``."""
        if self.delta:
            self.send(DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=names))
        else:
            self.send(DiscoveryRequest(type_url=type_url, resource_names=names))

    def ack(self, response: Any, *names: str) -> None:
        """ACK ``response``; SotW repeats the subscription (``names``), as Envoy does."""
        if self.delta:
            self.send(DeltaDiscoveryRequest(type_url=SECRET_TYPE, response_nonce=response.nonce))
        else:
            self.send(
                DiscoveryRequest(
                    type_url=SECRET_TYPE,
                    resource_names=names,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
            )

    def nack(self, response: Any, *names: str, message: str = "rejected by the test") -> None:
        if self.delta:
            request = DeltaDiscoveryRequest(type_url=SECRET_TYPE, response_nonce=response.nonce)
        else:
            request = DiscoveryRequest(type_url=SECRET_TYPE, resource_names=names, response_nonce=response.nonce)
        request.error_detail.code = 3
        request.error_detail.message = message
        self.send(request)

    async def recv(self, timeout: float = WAIT) -> Any:
        """The next response (fails on a timeout, or when the stream ended)."""
        item = await asyncio.wait_for(self._received.get(), timeout)
        if isinstance(item, grpc.aio.AioRpcError):
            raise AssertionError(f"the stream failed: {item.code().name} {item.details()}")
        assert item is not grpc.aio.EOF, "the stream ended"
        return item

    async def silent_for(self, seconds: float) -> None:
        """Nothing arrives within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            item = await asyncio.wait_for(self._received.get(), seconds)
            raise AssertionError(f"expected nothing, got {item}")

    async def error(self, timeout: float = WAIT) -> grpc.aio.AioRpcError:
        """The error the stream ends with (responses before it are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                item = await self._received.get()
                if isinstance(item, grpc.aio.AioRpcError):
                    return item
                assert item is not grpc.aio.EOF, "the stream ended without an error"

    async def close(self) -> None:
        self._requests.put_nowait(None)
        self.call.cancel()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
