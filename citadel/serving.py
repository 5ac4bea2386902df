"""Citadel's own TLS identity for its gRPC endpoint: a serving certificate from the current signer, kept fresh.

The certificate names ``meshplane.identity.CITADEL_SERVER_NAME`` (what sidecars verify) and the listen address
(an IP SAN, or a DNS SAN for a host name). It is re-issued when half of its lifetime has passed and when a root
rotation changes the signer; gRPC's dynamic server credentials pick the new one up on the next handshake, so the
server never restarts and open streams are not touched.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import grpc
import structlog

from citadel.authority import Authority, ServingCertificate, serial_hex
from meshplane.identity import CITADEL_SERVER_NAME

__all__ = ["SERVING_CERT_TTL", "ServingCredentials", "serving_names"]

log = structlog.get_logger(__name__)

SERVING_CERT_TTL = timedelta(hours=24)


def serving_names(host: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses) of the serving certificate for a server listening on ``host``.

    A wildcard address (``0.0.0.0``, ``::``) names no IP: clients verify ``CITADEL_SERVER_NAME`` then."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        names = (CITADEL_SERVER_NAME,) if host == CITADEL_SERVER_NAME else (CITADEL_SERVER_NAME, host)
        return names, ()
    if address.is_unspecified:
        return (CITADEL_SERVER_NAME,), ()
    return (CITADEL_SERVER_NAME,), (str(address),)


class ServingCredentials:
    """The serving certificate in use and the gRPC server credentials that serve it."""

    def __init__(self, authority: Authority, *, host: str, ttl: timedelta = SERVING_CERT_TTL) -> None:
        self._authority = authority
        self._dns_names, self._ip_addresses = serving_names(host)
        self._ttl = ttl
        self._lock = threading.Lock()  # gRPC calls fetch() from its own threads
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._renewing: asyncio.Task[None] | None = None
        self.current: ServingCertificate | None = None

    async def start(self) -> grpc.ServerCredentials:
        """Issue the first certificate; the credentials to give ``add_secure_port``."""
        await self.renew()
        with self._lock:
            initial, self._pending = self._pending, None
        assert initial is not None
        # gRPC takes None from the fetcher as "keep the current configuration"; the type stub does not say so.
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self._fetch)
        return grpc.dynamic_ssl_server_credentials(initial, fetch, require_client_authentication=False)

    async def renew(self) -> None:
        """Issue a new serving certificate from the current signer; used from the next handshake on."""
        serving = await asyncio.to_thread(
            self._authority.issue_serving, dns_names=self._dns_names, ip_addresses=self._ip_addresses, ttl=self._ttl
        )
        config = grpc.ssl_server_certificate_configuration([(serving.key_pem, serving.chain_pem)])
        with self._lock:
            self._pending = config
        self.current = serving
        log.info(
            "serving certificate issued",
            serial=serial_hex(serving.leaf),
            dns_names=list(self._dns_names),
            ip_addresses=list(self._ip_addresses),
            expires_at=serving.expires_at.isoformat(),
        )
        self._schedule(serving)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._renewing is not None:
            self._renewing.cancel()

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC asks before each handshake: a new configuration once after a renewal, else None (keep)."""
        with self._lock:
            config, self._pending = self._pending, None
        return config

    def _schedule(self, serving: ServingCertificate) -> None:
        if self._timer is not None:
            self._timer.cancel()
        half_life = (serving.expires_at - serving.issued_at) / 2
        delay = max((serving.issued_at + half_life - datetime.now(UTC)).total_seconds(), 1.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._renew_in_background)

    def _renew_in_background(self) -> None:
        self._renewing = asyncio.get_running_loop().create_task(self._renew_logged(), name="serving-cert-renewal")

    async def _renew_logged(self) -> None:
        try:
            await self.renew()
        except Exception:
            log.exception("renewing the serving certificate failed; retrying in 60s")
            self._timer = asyncio.get_running_loop().call_later(60.0, self._renew_in_background)
