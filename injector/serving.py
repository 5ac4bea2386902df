"""The injector's TLS identity: a serving certificate for its Service's DNS names (``<service>.<namespace>.svc``,
what the API server verifies) issued from the mesh's CA, so the webhook's ``caBundle`` is the mesh's trust bundle.

Like istiod, which signs its own webhook certificate with the CA it runs, the injector reads Citadel's CA
directory (``--ca-dir``: the same volume or Secret, read-only) and signs with the current signer itself: Citadel's
network APIs issue SPIFFE identities to workloads only, never DNS names. The directory is polled (``load_ca``'s
fingerprint): after a root rotation the certificate is re-issued from the new signer and the caBundle follows the
trust bundle (both roots during the rotation). The certificate is also re-issued at half its lifetime. A new
certificate is loaded into the same ``ssl.SSLContext``: new handshakes use it, the server never restarts."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from citadel.ca import bundle_pem, chain_pem, issue_serving_certificate, key_pem
from citadel.ca_dir import CAState, load_ca
from citadel.errors import CAError

__all__ = ["SERVING_CERT_TTL", "ServingIdentity", "service_dns_names"]

log = structlog.get_logger(__name__)

SERVING_CERT_TTL = timedelta(hours=24)


def service_dns_names(name: str, namespace: str, domain_suffix: str) -> tuple[str, ...]:
    """The names a client of Service ``name`` may verify (the API server uses ``<name>.<namespace>.svc``)."""
    return (name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{domain_suffix}")


@dataclass(frozen=True, slots=True)
class _Issued:
    fingerprint: str  # of the CA state it was issued under
    renew_at: datetime
    bundle: bytes


def _load_chain(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """``load_cert_chain`` reads files: the key exists on disk (0600, in a 0700 directory) only for the call."""
    with tempfile.TemporaryDirectory(prefix="injector-tls-") as directory:
        cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_path.write_bytes(chain)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        context.load_cert_chain(cert_path, key_path)


class ServingIdentity:
    """The serving certificate in use (in ``ssl_context``) and the trust bundle the webhook's caBundle must hold."""

    def __init__(
        self, ca_dir: Path, *, dns_names: Sequence[str], ip_addresses: Sequence[str], ttl: timedelta = SERVING_CERT_TTL
    ) -> None:
        self._ca_dir = ca_dir
        self._dns_names = tuple(dns_names)
        self._ip_addresses = tuple(ip_addresses)
        self._ttl = ttl
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._issued: _Issued | None = None
        self._pending: tuple[bytes, bytes] | None = None  # (chain, key) issued, not yet loaded

    @property
    def trust_bundle(self) -> bytes:
        assert self._issued is not None, "refresh() first"
        return self._issued.bundle

    def refresh(self) -> bool:
        """Re-issue when the CA directory changed or the certificate is half-way through its life (``apply()``
        loads it); True when the trust bundle changed. Raises ``CAError`` only the first time (later failures keep
        the last good one). Blocking crypto: run it in a thread."""
        try:
            state = load_ca(self._ca_dir)
        except CAError:
            if self._issued is None:
                raise
            log.warning("CA directory unreadable; keeping the current serving certificate", exc_info=True)
            return False
        now = datetime.now(UTC)
        issued = self._issued
        if issued is not None and issued.fingerprint == state.fingerprint and now < issued.renew_at:
            return False
        self._issue(state, now)
        return issued is None or issued.bundle != self.trust_bundle

    def _issue(self, state: CAState, now: datetime) -> None:
        leaf, key = issue_serving_certificate(
            state.signer, dns_names=self._dns_names, ip_addresses=self._ip_addresses, ttl=self._ttl, now=now
        )
        self._pending = (chain_pem(leaf, state.signer), key_pem(key))
        renew_at = now + (leaf.not_valid_after_utc - now) / 2
        self._issued = _Issued(state.fingerprint, renew_at, bundle_pem(state.trust_bundle))
        log.info("serving certificate issued", dns_names=list(self._dns_names), ip_addresses=list(self._ip_addresses),
                 serial=f"{leaf.serial_number:x}", expires_at=leaf.not_valid_after_utc.isoformat())  # fmt: skip

    def apply(self) -> None:
        """Load the certificate ``refresh()`` issued into ``ssl_context``, on the thread that serves handshakes (the
        event loop's), so no handshake sees a certificate without its key."""
        pending, self._pending = self._pending, None
        if pending is not None:
            _load_chain(self.ssl_context, *pending)

    async def keep_fresh(
        self,
        on_bundle: Callable[[bytes], Awaitable[None]],
        *,
        poll_interval: float = 5.0,
        resync_interval: float = 60.0,
    ) -> None:
        """Until cancelled: refresh every ``poll_interval`` seconds; ``on_bundle(trust bundle)`` when it changed
        and every ``resync_interval`` seconds (someone may have re-applied the configuration with an empty one)."""
        since_sync = resync_interval
        while True:
            try:
                changed = await asyncio.to_thread(self.refresh)
            except CAError:
                log.exception("no serving certificate could be issued")
                changed = False
            self.apply()
            if changed or since_sync >= resync_interval:
                await on_bundle(self.trust_bundle)
                since_sync = 0.0
            await asyncio.sleep(poll_interval)
            since_sync += poll_interval
