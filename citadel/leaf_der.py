"""Workload certificates encoded straight to DER: the bytes ``cryptography``'s CertificateBuilder makes for them,
for a fraction of its cost.

Every workload certificate of one signer is the same but for its serial, its validity, its SPIFFE ID and its key
(``ca.py`` says what it holds). CertificateBuilder rebuilds and re-validates all of it for every certificate and
its Rust encoder converts each Python extension object again: ~45 us of the ~65 us a P-256 certificate took, the
signature itself ~20 us (``bench.citadel_certs``: issuing was a third of the event loop's time per SDS stream).
A ``LeafTemplate`` encodes the signer's parts once (the signature algorithm, the issuer, the constant extensions:
basicConstraints, keyUsage, extendedKeyUsage, authorityKeyIdentifier) and ``sign`` puts the rest around them
with plain DER (X.690: tag, definite length, content) in the builder's order, then signs the TBSCertificate
with the signer's ECDSA key. ``tests/test_citadel_leaf_der.py`` holds it to the builder byte for byte (the
TBSCertificate of both for the same inputs, over keys, curves, IDs and validity in both time encodings).

Only ECDSA signers (P-256, P-384, P-521) have a template; an RSA signer (a plugged-in CA) uses the builder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["LeafTemplate"]

_SEQUENCE = 0x30
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_URI = 0x86  # GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String
_VERSION_3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
_EMPTY_NAME = bytes.fromhex("3000")
_CRITICAL = bytes.fromhex("0101ff")  # BOOLEAN TRUE; FALSE is the DEFAULT, so left out (DER)
_SAN_OID = bytes.fromhex("0603551d11")  # 2.5.29.17
_SKI_OID = bytes.fromhex("0603551d0e")  # 2.5.29.14
_ECDSA_WITH: dict[type[hashes.HashAlgorithm], bytes] = {  # AlgorithmIdentifier, no parameters (RFC 5758 3.2)
    hashes.SHA256: bytes.fromhex("300a06082a8648ce3d040302"),
    hashes.SHA384: bytes.fromhex("300a06082a8648ce3d040303"),
    hashes.SHA512: bytes.fromhex("300a06082a8648ce3d040304"),
}
_FIRST_GENERALIZED_YEAR = 2050  # RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _integer(value: int) -> bytes:
    """A non-negative INTEGER: big-endian, with a leading zero octet when the top bit is set."""
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _time(moment: datetime) -> bytes:
    """A certificate Time at whole seconds (the builder drops the fraction), UTC."""
    moment = moment.astimezone(UTC)
    if moment.year < _FIRST_GENERALIZED_YEAR:
        return _tlv(_UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return _tlv(_GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def _extension(oid: bytes, value: bytes, *, critical: bool) -> bytes:
    return _tlv(_SEQUENCE, oid + (_CRITICAL if critical else b"") + _tlv(_OCTET_STRING, value))


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, where the content starts, where it ends) of the DER element at ``at``."""
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        return tag, at + 2, at + 2 + first
    count = first & 0x7F
    start = at + 2 + count
    return tag, start, start + int.from_bytes(data[at + 2 : start], "big")


def _subject_public_key(spki: bytes) -> bytes:
    """The subjectPublicKey bits of a DER SubjectPublicKeyInfo (what RFC 5280 4.2.1.2 method 1 hashes)."""
    _, content, _ = _read(spki, 0)  # SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    _, _, algorithm_end = _read(spki, content)
    tag, bits, end = _read(spki, algorithm_end)
    if tag != _BIT_STRING or spki[bits] != 0:
        raise ValueError("the SubjectPublicKeyInfo does not end with a whole-octet BIT STRING")
    return spki[bits + 1 : end]


@dataclass(frozen=True, slots=True)
class LeafTemplate:
    """What every workload certificate of one ECDSA signer shares, encoded once; ``sign`` makes one."""

    key: ec.EllipticCurvePrivateKey
    algorithm: ec.ECDSA
    signature_algorithm: bytes  # DER AlgorithmIdentifier
    issuer: bytes  # DER Name
    constant_extensions: bytes  # DER of the extensions between the SAN and the SKI, in order

    @classmethod
    def for_signer(
        cls,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        extensions: Sequence[x509.Extension[x509.ExtensionType]],
    ) -> LeafTemplate | None:
        """The template of ``key``'s leaves, whose issuer is ``issuer`` and whose extensions between the SAN and the
        SKI are ``extensions``; None when the curve's hash has no encoding here."""
        digest = _curve_hash(key.curve)
        signature_algorithm = _ECDSA_WITH.get(type(digest))
        if signature_algorithm is None:
            return None
        constant = b"".join(
            _extension(_tlv(0x06, _oid_content(ext.oid)), ext.value.public_bytes(), critical=ext.critical)
            for ext in extensions
        )
        return cls(
            key=key,
            algorithm=ec.ECDSA(digest),
            signature_algorithm=signature_algorithm,
            issuer=issuer.public_bytes(),
            constant_extensions=constant,
        )

    def sign(
        self,
        *,
        serial: int,
        not_before: datetime,
        not_after: datetime,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        san: x509.SubjectAlternativeName,
    ) -> x509.Certificate:
        """The certificate for ``public_key`` with ``san`` (critical), signed by the template's key."""
        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ski = hashlib.sha1(_subject_public_key(spki), usedforsecurity=False).digest()  # RFC 5280 4.2.1.2 (1)
        extensions = (
            _extension(_SAN_OID, san.public_bytes(), critical=True)
            + self.constant_extensions
            + _extension(_SKI_OID, _tlv(_OCTET_STRING, ski), critical=False)
        )
        tbs = _tlv(
            _SEQUENCE,
            _VERSION_3
            + _integer(serial)
            + self.signature_algorithm
            + self.issuer
            + _tlv(_SEQUENCE, _time(not_before) + _time(not_after))
            + _EMPTY_NAME
            + spki
            + _tlv(0xA3, _tlv(_SEQUENCE, extensions)),  # [3] EXPLICIT Extensions
        )
        signature = self.key.sign(tbs, self.algorithm)
        der = _tlv(_SEQUENCE, tbs + self.signature_algorithm + _tlv(_BIT_STRING, b"\x00" + signature))
        return x509.load_der_x509_certificate(der)


def _curve_hash(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    """The hash ``ca.py`` signs with for the curve (``_signature_hash``): SHA-384 for P-384, SHA-512 for P-521."""
    if isinstance(curve, ec.SECP384R1):
        return hashes.SHA384()
    if isinstance(curve, ec.SECP521R1):
        return hashes.SHA512()
    return hashes.SHA256()


def _oid_content(oid: x509.ObjectIdentifier) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (X.690 8.19)."""
    arcs = [int(arc) for arc in oid.dotted_string.split(".")]
    content = bytearray()
    for arc in (40 * arcs[0] + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        content.extend(reversed(chunk))
    return bytes(content)
