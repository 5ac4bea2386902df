"""What Citadel issues from right now: the signing CA and the trust bundle, which a root rotation moves apart.

Normally both come from the CA directory's one state. During a root rotation (``rotation.py``) the trust bundle
changes first (both roots), then the signer (the new root), then the bundle again (the new root only): each
change bumps its generation, so a stream knows whether what it holds is current. Issuing reads the signer once.

``issue_workload`` and ``sign_csr`` are blocking crypto; the event loop calls ``issued_workload`` and
``signed_csr``, which run them inline when they are cheap and in a worker thread (``asyncio.to_thread``) when they
are not. With an ECDSA signer and ECDSA workload keys a certificate is about 0.1 ms of CPU (key, DER, P-256
signature, PEM), less than the handoff to a worker costs: the submit, the loop woken from the worker, and the GIL
passed back and forth, while the Python around the crypto holds the GIL in either thread (``bench.citadel_certs``:
inline, with plain counters, Citadel's CPU per CSR certificate went from ~0.95 ms to ~0.73 ms, and the worker
threads' ~0.7 s per 2000 certificates to nothing). An RSA workload key (2048 bits, ~50 ms to generate) or an RSA
signer (a plugged-in CA: a 4096-bit signature is milliseconds) would stall every other stream, so those still go
to a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from citadel.ca import (
    KeyType,
    SigningCA,
    bundle_pem,
    cert_pem,
    chain_pem,
    generate_key,
    issue_serving_certificate,
    issue_workload_certificate,
    key_pem,
    sign_csr,
)

__all__ = ["Authority", "ServingCertificate", "WorkloadCertificate", "serial_hex"]


def _ca_chain_pem(signer: SigningCA) -> tuple[str, ...]:
    """The PEM certificates above a leaf of ``signer``, the root last."""
    intermediates = (signer.cert, *signer.chain[:-1]) if signer.chain else ()
    return tuple(cert_pem(cert).decode() for cert in (*intermediates, signer.root))


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as lowercase hex, as Envoy's admin ``/certs`` shows it."""
    return f"{cert.serial_number:x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadCertificate:
    """A workload certificate Citadel made, with the key it made for it (SDS ``default``)."""

    spiffe_id: str
    leaf: x509.Certificate
    chain_pem: bytes  # leaf + intermediates (Envoy's certificate_chain)
    key_pem: bytes = field(repr=False)
    issued_at: datetime
    signer_generation: int  # the Authority's signer generation it was signed under

    @property
    def serial(self) -> str:
        return serial_hex(self.leaf)

    @property
    def expires_at(self) -> datetime:
        return self.leaf.not_valid_after_utc

    def rotate_at(self, fraction: float) -> datetime:
        """When ``fraction`` of its lifetime (counted from issuance, not the backdated not-before) has passed."""
        return self.issued_at + (self.expires_at - self.issued_at) * fraction


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingCertificate:
    """Citadel's own TLS certificate for its gRPC endpoint."""

    leaf: x509.Certificate
    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    issued_at: datetime
    signer_generation: int

    @property
    def expires_at(self) -> datetime:
        return self.leaf.not_valid_after_utc


class Authority:
    """The signer and trust bundle in use, and the issuing operations over them (blocking, and their event-loop
    callers that run them inline or in a worker)."""

    def __init__(
        self,
        *,
        signer: SigningCA,
        trust_bundle: Sequence[x509.Certificate],
        cert_ttl: timedelta,
        key_type: KeyType = "ecdsa",
    ) -> None:
        if cert_ttl <= timedelta(0):
            raise ValueError(f"cert_ttl must be positive, got {cert_ttl}")
        if not trust_bundle:
            raise ValueError("trust_bundle must hold at least one root")
        self.cert_ttl = cert_ttl
        self.key_type: KeyType = key_type
        # (signer, generation) and (bundle, pem, generation) are replaced whole: a worker thread reading one
        # tuple sees a consistent pair.
        self._signer: tuple[SigningCA, int] = (signer, 0)
        self._chain_above: tuple[SigningCA, tuple[str, ...]] = (signer, _ca_chain_pem(signer))
        roots = tuple(trust_bundle)
        self._bundle: tuple[tuple[x509.Certificate, ...], bytes, int] = (roots, bundle_pem(roots), 0)

    # ------------------------------------------------------------------------------------------ state

    @property
    def signer(self) -> SigningCA:
        return self._signer[0]

    @property
    def signer_generation(self) -> int:
        return self._signer[1]

    @property
    def trust_bundle(self) -> tuple[x509.Certificate, ...]:
        return self._bundle[0]

    @property
    def trust_bundle_pem(self) -> bytes:
        return self._bundle[1]

    @property
    def bundle_generation(self) -> int:
        return self._bundle[2]

    def use_signer(self, signer: SigningCA) -> None:
        """Sign with ``signer`` from now on; certificates made before are now out of date."""
        self._signer = (signer, self._signer[1] + 1)

    def use_trust_bundle(self, roots: Sequence[x509.Certificate]) -> None:
        """Publish ``roots`` as the trust bundle (ROOTCA) from now on."""
        bundle = tuple(roots)
        self._bundle = (bundle, bundle_pem(bundle), self._bundle[2] + 1)

    def root_expiry_seconds(self, now: datetime | None = None) -> float:
        """Seconds until the current root (the first of the trust bundle) expires."""
        moment = now or datetime.now(UTC)
        return (self.trust_bundle[0].not_valid_after_utc - moment).total_seconds()

    # ------------------------------------------------------------------------------------------ issuing

    async def issued_workload(self, spiffe_id: str) -> WorkloadCertificate:
        """``issue_workload`` from the event loop: inline when cheap (ECDSA key and signer), else in a worker."""
        if self.key_type == "ecdsa" and self._signs_cheaply():
            return self.issue_workload(spiffe_id)
        return await asyncio.to_thread(self.issue_workload, spiffe_id)

    async def signed_csr(self, csr_pem: bytes, *, spiffe_id: str, validity: timedelta | None) -> tuple[str, ...]:
        """``sign_csr`` from the event loop: inline when cheap (an ECDSA signer), else in a worker."""
        if self._signs_cheaply():
            return self.sign_csr(csr_pem, spiffe_id=spiffe_id, validity=validity)
        return await asyncio.to_thread(self.sign_csr, csr_pem, spiffe_id=spiffe_id, validity=validity)

    def _signs_cheaply(self) -> bool:
        return isinstance(self._signer[0].key, ec.EllipticCurvePrivateKey)

    def issue_workload(self, spiffe_id: str, *, now: datetime | None = None) -> WorkloadCertificate:
        """A new key (``key_type``) and a ``cert_ttl`` certificate for ``spiffe_id``. Blocking."""
        signer, generation = self._signer
        moment = now or datetime.now(UTC)
        key = generate_key(self.key_type)
        leaf = issue_workload_certificate(
            signer, spiffe_id=spiffe_id, public_key=key.public_key(), ttl=self.cert_ttl, now=moment
        )
        return WorkloadCertificate(
            spiffe_id=spiffe_id,
            leaf=leaf,
            chain_pem=chain_pem(leaf, signer),
            key_pem=key_pem(key),
            issued_at=moment,
            signer_generation=generation,
        )

    def sign_csr(self, csr_pem: bytes, *, spiffe_id: str, validity: timedelta | None) -> tuple[str, ...]:
        """Sign a workload's CSR for ``spiffe_id`` for ``validity`` (at most, and by default, ``cert_ttl``).

        Returns the PEM certificates as Istio's CA service does: the leaf, the intermediates, the root last.
        Raises the ``citadel.errors`` of ``citadel.ca.sign_csr``. Blocking."""
        signer, _ = self._signer
        ttl = self.cert_ttl if validity is None else min(validity, self.cert_ttl)
        leaf = sign_csr(signer, csr_pem, expected_spiffe_id=spiffe_id, ttl=ttl)
        above = self._chain_above
        if above[0] is not signer:  # encoded once per signer
            above = self._chain_above = (signer, _ca_chain_pem(signer))
        return (cert_pem(leaf).decode(), *above[1])

    def issue_serving(
        self, *, dns_names: Sequence[str], ip_addresses: Sequence[str], ttl: timedelta
    ) -> ServingCertificate:
        """Citadel's own serving certificate (serverAuth, new P-256 key). Blocking."""
        signer, generation = self._signer
        moment = datetime.now(UTC)
        leaf, key = issue_serving_certificate(
            signer, dns_names=dns_names, ip_addresses=ip_addresses, ttl=ttl, now=moment
        )
        return ServingCertificate(
            leaf=leaf,
            chain_pem=chain_pem(leaf, signer),
            key_pem=key_pem(key),
            issued_at=moment,
            signer_generation=generation,
        )
