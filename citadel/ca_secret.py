"""The self-signed CA as a Kubernetes Secret, as Istio keeps it in ``istio-system/istio-ca-secret``: what goes in it
and how it becomes the CA directory's files again (pure: no I/O).

The Secret has Istio's type (``istio.io/ca-root``) and keys, so ``kubectl get secret istio-ca-secret -n istio-system
-o jsonpath='{.data.ca-cert\\.pem}'`` shows the root as it does for istiod, and a Secret istiod wrote loads here:

- ``ca-cert.pem``, ``ca-key.pem``: the root and its key (``root-cert.pem`` and ``root-key.pem`` in the CA directory);
- ``root-cert.pem``: the trust bundle (the root, then the previous root while a rotation is in progress);

and meshplane's own, kept beside them so that a restarted Citadel is the same CA in every respect:

- ``previous-root-cert.pem``, ``previous-root-key.pem``: the previous root while ``citadel rotate-root`` runs (a
  Citadel restarted mid-rotation resumes it, as from its CA directory);
- ``token-signing-key.pem``: the key of meshplane's workload tokens, so tokens minted before a restart stay valid.

A plugged-in CA (Istio's ``cacerts``) is never put in the Secret: it is the operator's, and it wins over the Secret.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from citadel.ca import bundle_pem, cert_pem, key_pem
from citadel.ca_dir import (
    PREVIOUS_ROOT_CERT,
    PREVIOUS_ROOT_KEY,
    ROOT_CERT,
    ROOT_KEY,
    TOKEN_KEY,
    CAState,
    state_from_files,
)
from citadel.errors import CAError

__all__ = [
    "CA_SECRET_TYPE",
    "DEFAULT_CA_SECRET_NAME",
    "SECRET_CA_CERT",
    "SECRET_CA_KEY",
    "SECRET_ROOT_CERT",
    "SecretRef",
    "ca_files_from_secret",
    "default_ca_secret",
    "secret_data",
    "state_from_secret",
]

DEFAULT_CA_SECRET_NAME = "istio-ca-secret"
CA_SECRET_TYPE = "istio.io/ca-root"  # Istio's type for istio-ca-secret
SECRET_CA_CERT = "ca-cert.pem"
SECRET_CA_KEY = "ca-key.pem"
SECRET_ROOT_CERT = "root-cert.pem"  # the trust bundle, as Istio writes it (never read back: derived)

# Secret key -> CA directory file
_FILE_OF_KEY = {
    SECRET_CA_CERT: ROOT_CERT,
    SECRET_CA_KEY: ROOT_KEY,
    PREVIOUS_ROOT_CERT: PREVIOUS_ROOT_CERT,
    PREVIOUS_ROOT_KEY: PREVIOUS_ROOT_KEY,
    TOKEN_KEY: TOKEN_KEY,
}
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """``NAMESPACE/NAME`` of the Secret the CA is kept in."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """``istio-system/istio-ca-secret``; ValueError naming what is wrong."""
        namespace, slash, name = text.partition("/")
        if not slash:
            raise ValueError(f"{text!r} is not NAMESPACE/NAME")
        if not _DNS_LABEL.match(namespace):
            raise ValueError(f"{text!r}: namespace {namespace!r} is not a DNS label (RFC 1123)")
        if not _SECRET_NAME.match(name):
            raise ValueError(f"{text!r}: name {name!r} is not a DNS subdomain (RFC 1123)")
        return cls(namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def default_ca_secret(
    environ: Mapping[str, str] = os.environ, service_account_namespace: Path = _SERVICE_ACCOUNT_NAMESPACE
) -> SecretRef:
    """In a pod: ``<its namespace>/istio-ca-secret``, the namespace from ``POD_NAMESPACE`` (the manifests set it
    from the downward API) or else the service account's namespace file. CAError when neither says."""
    namespace = environ.get("POD_NAMESPACE", "").strip()
    if not namespace:
        try:
            namespace = service_account_namespace.read_text().strip()
        except OSError:
            namespace = ""
    if not namespace:
        raise CAError(
            f"--in-cluster: cannot tell Citadel's namespace for its CA Secret (POD_NAMESPACE is not set and "
            f"{service_account_namespace} is unreadable): give --ca-secret NAMESPACE/NAME or --no-ca-secret"
        )
    return SecretRef.parse(f"{namespace}/{DEFAULT_CA_SECRET_NAME}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_data(state: CAState, token_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The Secret's ``data`` (base64 values) for a self-signed ``state`` and the token-signing key."""
    if state.mode != "self-signed":
        raise CAError("a plugged-in CA (cacerts) is not stored in the CA Secret")
    data = {
        SECRET_CA_CERT: cert_pem(state.signer.cert),
        SECRET_CA_KEY: key_pem(state.signer.key),
        SECRET_ROOT_CERT: bundle_pem(state.trust_bundle),
        TOKEN_KEY: key_pem(token_key),
    }
    if state.previous_signer is not None:
        data[PREVIOUS_ROOT_CERT] = cert_pem(state.previous_signer.cert)
        data[PREVIOUS_ROOT_KEY] = key_pem(state.previous_signer.key)
    return {key: _b64(value) for key, value in sorted(data.items())}


def ca_files_from_secret(ref: SecretRef, data: Mapping[str, object] | None) -> dict[str, bytes]:
    """The CA directory's files (by file name) that the Secret's ``data`` holds; CAError naming the Secret's key
    when one is missing or not base64. Keys Citadel does not keep (Istio's empty ``cert-chain.pem``, ``key.pem``)
    are not files; ``root-cert.pem`` is derived again from the roots."""
    data = data or {}
    missing = [key for key in (SECRET_CA_CERT, SECRET_CA_KEY) if not data.get(key)]
    if missing:
        raise CAError(
            f"Secret {ref} holds no {' and no '.join(missing)}: a CA Secret needs the root ({SECRET_CA_CERT}) and "
            f"its key ({SECRET_CA_KEY}); delete the Secret to have Citadel create a new CA"
        )
    files: dict[str, bytes] = {}
    for key, file_name in _FILE_OF_KEY.items():
        value = data.get(key)
        if not value:
            continue
        if not isinstance(value, str):
            raise CAError(f"Secret {ref}: {key} is not a string")
        try:
            files[file_name] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise CAError(f"Secret {ref}: {key} is not base64") from None
    return files


def state_from_secret(ref: SecretRef, data: Mapping[str, object] | None) -> CAState:
    """The CA the Secret holds, checked as a CA directory would be (a root with its key, self-signed, CA:TRUE, the
    previous root with its key); CAError naming the Secret's keys."""
    files = ca_files_from_secret(ref, data)
    label = Path(f"<Secret {ref}>")
    try:
        return state_from_files(label, {name: body for name, body in files.items() if name != TOKEN_KEY})
    except CAError as exc:
        reason = exc.reason
        for key, file_name in _FILE_OF_KEY.items():
            reason = reason.replace(str(label / file_name), f"{key} of Secret {ref}")
        raise CAError(reason) from None
