"""Authority's event-loop callers: ECDSA certificates are issued inline, RSA keys and RSA signers in a worker, and
both give what the blocking operations give."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from citadel.authority import Authority
from citadel.ca import KeyType, PrivateKey, SigningCA, create_root, load_certs_pem, verify_workload_certificate
from tests.citadel_builders import WORKLOAD_ID, CAChain, make_csr, rsa_key


def _authority(*, key_type: KeyType = "ecdsa", signer_key: PrivateKey | None = None) -> Authority:
    if signer_key is None:
        root, key = create_root("cluster.local")
        signer = SigningCA(root, key)
    else:
        chain = CAChain(1, signer_key=signer_key)
        signer = SigningCA(chain.signer, chain.signer_key, chain.above_signer)
    return Authority(signer=signer, trust_bundle=(signer.root,), cert_ttl=timedelta(hours=1), key_type=key_type)


def _threads_of(monkeypatch: pytest.MonkeyPatch, authority: Authority, method: str) -> list[int]:
    """The threads ``method`` of ``authority`` runs in, recorded as it is called."""
    threads: list[int] = []
    blocking: Callable[..., Any] = getattr(authority, method)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return blocking(*args, **kwargs)

    monkeypatch.setattr(authority, method, recorded)
    return threads


@pytest.mark.parametrize(
    ("key_type", "rsa_signer", "inline"),
    [("ecdsa", False, True), ("rsa", False, False), ("ecdsa", True, False)],
    ids=["ecdsa-key-ecdsa-signer-inline", "rsa-key-in-a-worker", "rsa-signer-in-a-worker"],
)
async def test_workload_certificates_are_issued_inline_only_when_cheap(
    monkeypatch: pytest.MonkeyPatch, key_type: KeyType, rsa_signer: bool, inline: bool
) -> None:
    authority = _authority(key_type=key_type, signer_key=rsa_key() if rsa_signer else None)
    threads = _threads_of(monkeypatch, authority, "issue_workload")

    workload = await authority.issued_workload(WORKLOAD_ID)

    assert (threads == [threading.get_ident()]) is inline
    public_key = workload.leaf.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey if key_type == "ecdsa" else rsa.RSAPublicKey)
    leaf, *intermediates = load_certs_pem(workload.chain_pem)
    assert verify_workload_certificate(leaf, intermediates, authority.trust_bundle) == WORKLOAD_ID


@pytest.mark.parametrize(("rsa_signer", "inline"), [(False, True), (True, False)], ids=["ecdsa-signer", "rsa-signer"])
async def test_csrs_are_signed_inline_only_with_an_ecdsa_signer(
    monkeypatch: pytest.MonkeyPatch, rsa_signer: bool, inline: bool
) -> None:
    authority = _authority(signer_key=rsa_key() if rsa_signer else None)
    threads = _threads_of(monkeypatch, authority, "sign_csr")
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), uris=(WORKLOAD_ID,))

    chain = await authority.signed_csr(csr, spiffe_id=WORKLOAD_ID, validity=None)

    assert (threads == [threading.get_ident()]) is inline
    leaf, *above = (load_certs_pem(pem.encode())[0] for pem in chain)
    assert above[-1] == authority.signer.root
    assert verify_workload_certificate(leaf, above[:-1], authority.trust_bundle) == WORKLOAD_ID
