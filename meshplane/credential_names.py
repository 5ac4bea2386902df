"""SDS names of gateway credentials (Istio's ``credentialName``), shared by Pilot (which names them in gateway
listeners) and Citadel (which serves them).

``kubernetes://<name>`` is the certificate chain and key of the Secret ``<name>`` in the proxy's namespace,
``kubernetes://<name>-cacert`` the roots that validate client certificates (Gateway ``tls.mode: MUTUAL``). A bare
``<name>`` means the same as ``kubernetes://<name>``, and ``kubernetes://<namespace>/<name>`` names the namespace
explicitly (served only when it is the proxy's own), as Istio's ``credentials.ParseResourceName``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SDS_CA_SUFFIX", "SDS_KUBERNETES_PREFIX", "CredentialName", "credential_sds_name", "parse_credential_name"]

SDS_KUBERNETES_PREFIX = "kubernetes://"
SDS_CA_SUFFIX = "-cacert"


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialName:
    """What one SDS name asks for: the Secret ``name`` (its namespace when the name gives one), and whether only
    its CA certificates (``-cacert``)."""

    name: str  # without the -cacert suffix
    namespace: str | None  # None: the proxy's namespace
    ca_only: bool

    def in_namespace(self, proxy_namespace: str) -> str:
        return self.namespace if self.namespace is not None else proxy_namespace


def credential_sds_name(credential_name: str, *, ca: bool = False) -> str:
    """The SDS name Pilot puts in a gateway listener for ``credentialName`` (``ca``: its validation context)."""
    return f"{SDS_KUBERNETES_PREFIX}{credential_name}{SDS_CA_SUFFIX if ca else ''}"


def parse_credential_name(sds_name: str) -> CredentialName | None:
    """The credential an SDS name asks for; None when the name is empty or malformed (``kubernetes://``,
    ``kubernetes://a/b/c``)."""
    rest = sds_name.removeprefix(SDS_KUBERNETES_PREFIX)
    parts = rest.split("/")
    if len(parts) > 2 or not all(parts):
        return None
    namespace, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    ca_only = name.endswith(SDS_CA_SUFFIX) and len(name) > len(SDS_CA_SUFFIX)
    return CredentialName(
        name=name.removesuffix(SDS_CA_SUFFIX) if ca_only else name, namespace=namespace, ca_only=ca_only
    )
