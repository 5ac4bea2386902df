"""One SDS stream: its identity, the certificate it holds, its protocol state, and the only task that writes to it.

A stream runs one task that handles, in order, the workload's requests (read by a helper task), its rotation timer
("half of the certificate's lifetime has passed") and "the authority changed" notices from a root rotation
(``notify``; coalesced). Each response is planned by the pure functions of ``sds_resources.py`` over the
protocol state machine of ``sds_watch.py``. Keys are made and certificates signed in a worker thread.

The token was verified when the stream opened; a certificate is re-issued only while it is still unexpired, else
the stream ends with UNAUTHENTICATED (Envoy keeps the certificate it has until it expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import structlog
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)

from citadel.authority import Authority, WorkloadCertificate
from citadel.errors import TokenError
from citadel.metrics import CitadelMetrics
from citadel.sds_resources import SECRET_TYPE, SecretResource, plan_delta, plan_sotw, workload_secret
from citadel.sds_watch import SecretWatch, should_respond, should_respond_delta
from citadel.tokens import Identity
from meshplane.identity import SDS_WORKLOAD_CERT

__all__ = ["Mode", "SdsStream"]

log = structlog.get_logger(__name__)

Mode = Literal["sotw", "delta"]
Request: TypeAlias = DiscoveryRequest | DeltaDiscoveryRequest
Response: TypeAlias = DiscoveryResponse | DeltaDiscoveryResponse

_ROTATE = "rotate"  # inbox marker: the workload certificate reached its rotation time
_REFRESH = "refresh"  # inbox marker: the authority's trust bundle or signer changed
_CLOSED = "closed"  # inbox marker: the workload closed its side of the stream


class SdsStream:
    """The state and sender of one SDS stream (state of the world or delta)."""

    def __init__(
        self,
        *,
        identity: Identity,
        peer: str,
        mode: Mode,
        authority: Authority,
        root_ca: Callable[[], SecretResource],
        write: Callable[[Response], Awaitable[None]],
        metrics: CitadelMetrics,
        nonce: Callable[[], str],
        rotation_fraction: float,
        send_timeout: float = 20.0,
    ) -> None:
        self.identity = identity
        self.peer = peer
        self.mode: Mode = mode
        self.connected_at = time.time()
        self.watch: SecretWatch | None = None
        self.workload: WorkloadCertificate | None = None  # the newest certificate made for this stream
        self.sent_workload: WorkloadCertificate | None = None  # the one last sent
        self.handled_bundle_generation = authority.bundle_generation
        self.handled_signer_generation = authority.signer_generation
        self._authority = authority
        self._root_ca = root_ca
        self._write = write
        self._metrics = metrics
        self._nonce = nonce
        self._rotation_fraction = rotation_fraction
        self._send_timeout = send_timeout
        self._default: SecretResource | None = None
        self._inbox: asyncio.Queue[Request | str] = asyncio.Queue()
        self._refresh_queued = False
        self._rotation_due = False
        self._rotation_timer: asyncio.TimerHandle | None = None

    @property
    def spiffe_id(self) -> str:
        return self.identity.spiffe_id

    # ------------------------------------------------------------------------------------------ running

    def notify(self) -> None:
        """The authority's bundle or signer changed: push what differs. Never blocks; notices coalesce."""
        if not self._refresh_queued:
            self._refresh_queued = True
            self._inbox.put_nowait(_REFRESH)

    async def serve(self, first: Request, requests: AsyncIterator[Request]) -> None:
        """Handle ``first``, every later request, rotations and notices until the workload closes the stream.

        Raises TokenError when a rotation finds the stream's token expired."""
        reader = asyncio.create_task(self._read(requests), name=f"sds-read {self.spiffe_id}")
        self._inbox.put_nowait(first)
        try:
            while True:
                item = await self._inbox.get()
                if item == _CLOSED:
                    break
                if item == _REFRESH:
                    self._refresh_queued = False
                    await self._push()
                elif item == _ROTATE:
                    self._rotation_due = True
                    await self._push()
                else:
                    assert isinstance(item, DiscoveryRequest | DeltaDiscoveryRequest)
                    await self._handle(item)
        except TimeoutError:
            log.warning("workload not reading its SDS stream; closing it", spiffe_id=self.spiffe_id, peer=self.peer)
        finally:
            if self._rotation_timer is not None:
                self._rotation_timer.cancel()
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
        type_url = request.type_url or SECRET_TYPE  # SDS is not aggregated: the type may be left implicit
        if type_url != SECRET_TYPE:
            log.warning("SDS request for another type; not answered", spiffe_id=self.spiffe_id, type_url=type_url)
            return
        previous = self.watch
        if isinstance(request, DiscoveryRequest):
            respond, watch = should_respond(previous, request, now=time.time())
        else:
            respond, watch = should_respond_delta(previous, request, now=time.time())
        self.watch = watch
        nack = watch.last_nack
        if nack is not None and (previous is None or previous.last_nack is not nack):
            log.warning(
                "workload rejected secrets (NACK)",
                spiffe_id=self.spiffe_id,
                peer=self.peer,
                rejected_version=nack.version,
                nonce=nack.nonce,
                error=nack.error,
            )
        if respond:
            await self._send(requested=True, first=previous is None)

    async def _push(self) -> None:
        """Send what changed (a rotation, a new bundle or signer), if the stream watches it."""
        if self.watch is None:
            return
        await self._send(requested=False, first=False)

    async def _send(self, *, requested: bool, first: bool) -> None:
        watch = self.watch
        assert watch is not None
        bundle_generation = self._authority.bundle_generation
        signer_generation = self._authority.signer_generation
        current: dict[str, SecretResource] = {}
        for name in watch.names:
            if name == SDS_WORKLOAD_CERT:
                current[name] = await self._workload_resource()
            else:
                root_ca = self._root_ca()
                if name == root_ca.name:
                    current[name] = root_ca
        nonce = self._nonce()
        response: Response | None
        if self.mode == "sotw":
            response, self.watch = plan_sotw(watch, current, nonce=nonce, full=requested)
        else:
            response, self.watch = plan_delta(watch, current, nonce=nonce, force=first)
        if response is not None:
            async with asyncio.timeout(self._send_timeout):
                await self._write(response)
            if SDS_WORKLOAD_CERT in current and self.watch.sent.get(SDS_WORKLOAD_CERT):
                self.sent_workload = self.workload
            log.debug("secrets sent", spiffe_id=self.spiffe_id, version=self.watch.version_sent, nonce=nonce)
        self.handled_bundle_generation = max(self.handled_bundle_generation, bundle_generation)
        self.handled_signer_generation = max(self.handled_signer_generation, signer_generation)

    async def _workload_resource(self) -> SecretResource:
        """``default``, issued now when there is none yet, it is due for rotation, or the signer changed."""
        workload = self.workload
        stale = workload is None or workload.signer_generation < self._authority.signer_generation
        if self._default is not None and not stale and not self._rotation_due:
            return self._default
        expires_at = self.identity.expires_at
        if expires_at <= datetime.now(UTC):
            raise TokenError(f"the workload token expired at {expires_at.isoformat()}; reconnect with a new token")
        workload = await asyncio.to_thread(self._authority.issue_workload, self.spiffe_id)
        self._metrics.issued("sds")
        self.workload = workload
        self._default = workload_secret(workload.chain_pem, workload.key_pem)
        self._rotation_due = False
        self._schedule_rotation(workload)
        log.info(
            "workload certificate issued",
            spiffe_id=self.spiffe_id,
            serial=workload.serial,
            expires_at=workload.expires_at.isoformat(),
            rotate_at=workload.rotate_at(self._rotation_fraction).isoformat(),
        )
        return self._default

    def _schedule_rotation(self, workload: WorkloadCertificate) -> None:
        if self._rotation_timer is not None:
            self._rotation_timer.cancel()
        delay = (workload.rotate_at(self._rotation_fraction) - datetime.now(UTC)).total_seconds()
        loop = asyncio.get_running_loop()
        self._rotation_timer = loop.call_later(max(delay, 0.0), self._inbox.put_nowait, _ROTATE)

    # ------------------------------------------------------------------------------------------ status

    def caught_up(self, *, bundle_generation: int, signer_generation: int) -> bool:
        """Pushed what the given authority generations changed, and the workload ACKed the last response."""
        if self.handled_bundle_generation < bundle_generation or self.handled_signer_generation < signer_generation:
            return False
        watch = self.watch
        return watch is None or not watch.nonce_sent or watch.acked

    def status(self) -> dict[str, Any]:
        """This stream's entry in ``/debug/sdsz``."""
        watch = self.watch
        sent = self.sent_workload
        nack = watch.last_nack if watch is not None else None
        return {
            "identity": self.spiffe_id,
            "peer": self.peer,
            "mode": self.mode,
            "connected_at": _iso(self.connected_at),
            "resources": sorted(watch.names) if watch is not None else [],
            "serial": sent.serial if sent is not None else None,
            "expires_at": sent.expires_at.isoformat() if sent is not None else None,
            "version_sent": watch.version_sent if watch is not None else "",
            "version_acked": watch.version_acked if watch is not None else "",
            "acked": watch.acked if watch is not None else False,
            "last_nack": None if nack is None else {"version": nack.version, "nonce": nack.nonce, "error": nack.error},
            "token_expires_at": self.identity.expires_at.isoformat(),
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
