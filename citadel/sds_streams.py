"""One SDS stream: its identity, the certificate it holds, and when it is re-issued.

The protocol (requests, ACK/NACK, SotW and delta planning, the send timeout) is the shared xDS core's
``XdsStream``, serving the stream's ``SecretProducer`` (``sds_resources.py``). An SDS stream is its owner: it
turns its rotation timer ("``--rotation-fraction`` of the certificate's lifetime has passed") and "the authority
changed" notices from a root rotation (``notify``; coalesced) into pushes. Keys are made and certificates signed by
``Authority.issued_workload`` (inline for ECDSA, in a worker thread for RSA keys).

The token was verified when the stream opened; a certificate is re-issued only while it is still unexpired, else
the stream ends with UNAUTHENTICATED (Envoy keeps the certificate it has until it expires).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from datetime import UTC, datetime
from typing import Any

import structlog

from citadel.authority import Authority, WorkloadCertificate
from citadel.credential_store import CredentialStore, NotServed
from citadel.errors import TokenError
from citadel.metrics import CitadelMetrics
from citadel.sds_resources import SECRET_TYPE, SecretProducer, workload_secret
from citadel.tokens import Identity
from meshplane.identity import SDS_WORKLOAD_CERT
from xdscore import Mode, Nack, Request, Resource, Sent, StreamSettings, WatchedResource, XdsStream

__all__ = ["Mode", "SdsStream"]

log = structlog.get_logger(__name__)

_ROTATE = "rotate"  # notice: the workload certificate reached its rotation time
_REFRESH = "refresh"  # notice: the authority's trust bundle or signer changed


class SdsStream:
    """The identity, certificates and xDS stream of one SDS client (state of the world or delta)."""

    def __init__(
        self,
        *,
        identity: Identity,
        peer: str,
        mode: Mode,
        authority: Authority,
        root_ca: Callable[[], Resource],
        write: Callable[[bytes], Awaitable[None]],
        metrics: CitadelMetrics,
        settings: StreamSettings,
        rotation_fraction: float,
        credentials: CredentialStore | None = None,
    ) -> None:
        """``settings``: the SDS service's, shared by its streams (their nonces, Citadel's control-plane id).
        ``credentials``: the gateway credentials this stream may read (its identity's namespace's); None: none."""
        self.identity = identity
        self.peer = peer
        self.mode: Mode = mode
        self.connected_at = time.time()
        self.workload: WorkloadCertificate | None = None  # the newest certificate made for this stream
        self.sent_workload: WorkloadCertificate | None = None  # the one last sent
        self.handled_bundle_generation = authority.bundle_generation
        self.handled_signer_generation = authority.signer_generation
        self._authority = authority
        self._metrics = metrics
        self._rotation_fraction = rotation_fraction
        self._default: Resource | None = None
        self._rotation_due = False
        self._rotation_timer: asyncio.TimerHandle | None = None
        self._credentials = credentials
        self._not_served: dict[str, str] = {}  # SDS name -> why it is not served (logged once per reason)
        producer = SecretProducer(workload=self._workload_resource, root_ca=root_ca, credential=self._credential)
        producers = {SECRET_TYPE: producer}
        context = {"spiffe_id": identity.spiffe_id, "peer": peer}
        self._stream = XdsStream(
            mode=mode, producers=producers, write=write, owner=self, settings=settings, log_context=context
        )

    @property
    def spiffe_id(self) -> str:
        return self.identity.spiffe_id

    @property
    def watch(self) -> WatchedResource | None:
        return self._stream.watches.get(SECRET_TYPE)

    # ------------------------------------------------------------------------------------------ running

    def notify(self) -> None:
        """The authority's bundle or signer changed: push what differs. Never blocks; notices coalesce."""
        self._stream.notify(_REFRESH)

    async def serve(self, first: Request, requests: AsyncIterator[Request]) -> None:
        """Handle ``first``, every later request, rotations and notices until the workload closes the stream.

        Raises TokenError when a rotation finds the stream's token expired."""
        try:
            await self._stream.serve(first, requests)
        finally:
            if self._rotation_timer is not None:
                self._rotation_timer.cancel()

    async def noticed(self, notice: Hashable) -> None:
        """A rotation or a new bundle or signer: send what changed, if the stream watches it."""
        if notice == _ROTATE:
            self._rotation_due = True
        bundle_generation = self._authority.bundle_generation
        signer_generation = self._authority.signer_generation
        if SECRET_TYPE in self._stream.watches:
            await self._stream.respond(SECRET_TYPE, requested=False, force=False)
        self.handled_bundle_generation = max(self.handled_bundle_generation, bundle_generation)
        self.handled_signer_generation = max(self.handled_signer_generation, signer_generation)

    # ------------------------------------------------------------------------------------------ observed

    def rejected(self, type_url: str, nack: Nack) -> None:
        log.warning("workload rejected secrets (NACK)", spiffe_id=self.spiffe_id, peer=self.peer, **nack.log_fields())

    def sent(self, type_url: str, sent: Sent) -> None:
        default = sent.resources.resources.get(SDS_WORKLOAD_CERT)
        watch = self.watch
        if default is not None and watch is not None and watch.sent.get(SDS_WORKLOAD_CERT) == default.version:
            self.sent_workload = self.workload
        log.debug("secrets sent", spiffe_id=self.spiffe_id, version=sent.version, nonce=sent.nonce)

    async def _workload_resource(self) -> Resource:
        """``default``, issued now when there is none yet, it is due for rotation, or the signer changed."""
        workload = self.workload
        stale = workload is None or workload.signer_generation < self._authority.signer_generation
        if self._default is not None and not stale and not self._rotation_due:
            return self._default
        expires_at = self.identity.expires_at
        if expires_at <= datetime.now(UTC):
            raise TokenError(f"the workload token expired at {expires_at.isoformat()}; reconnect with a new token")
        workload = await self._authority.issued_workload(self.spiffe_id)
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

    def _credential(self, name: str) -> Resource | None:
        """A gateway credential this stream watches, when it is served (why not is logged once per reason)."""
        if self._credentials is None:
            found: Resource | NotServed = NotServed(
                "Citadel serves no gateway credentials (start it with --kubeconfig/--in-cluster or --credentials-dir)"
            )
        else:
            found = self._credentials.resource(name, self.identity.namespace)
        if isinstance(found, NotServed):
            if self._not_served.get(name) != found.reason:
                self._not_served[name] = found.reason
                log.warning(
                    "secret not served, the listener that uses it waits for it",
                    resource=name,
                    spiffe_id=self.spiffe_id,
                    reason=found.reason,
                )
            return None
        if self._not_served.pop(name, None) is not None:
            log.info("secret now served", resource=name, spiffe_id=self.spiffe_id)
        return found

    def _schedule_rotation(self, workload: WorkloadCertificate) -> None:
        if self._rotation_timer is not None:
            self._rotation_timer.cancel()
        delay = (workload.rotate_at(self._rotation_fraction) - datetime.now(UTC)).total_seconds()
        loop = asyncio.get_running_loop()
        self._rotation_timer = loop.call_later(max(delay, 0.0), self._stream.notify, _ROTATE)

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
