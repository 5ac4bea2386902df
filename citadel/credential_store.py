"""The gateway credentials Citadel knows (Secrets of every namespace, or a credentials directory), and the SDS
resource one proxy may have of them.

A source (``credential_secrets.py``: the Kubernetes Secrets; ``credential_dir.py``: a directory) ``replace``s the
store's whole content or ``put``s / ``delete``s one Secret; every change is told to the listeners with its
namespace (Citadel's SDS pushes to that namespace's streams). ``resource(sds_name, proxy_namespace)`` is the Envoy
Secret for an SDS name, or why there is none, under Istio's rule: a proxy reads the credentials of its own
namespace only (the namespace its token proves). Resources are built once per Secret content and requested name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from citadel.credentials import (
    CredentialError,
    SecretData,
    ca_certificates,
    ca_secret_resource,
    certificate_key_pair,
    tls_secret_resource,
)
from meshplane.credential_names import SDS_CA_SUFFIX, parse_credential_name
from xdscore import Resource

__all__ = ["CredentialStore", "NotServed", "SecretKey"]

SecretKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class NotServed:
    """Why an SDS name gets no resource (logged; the listener that needs it keeps warming, as in Istio)."""

    reason: str


class CredentialStore:
    """Secrets by (namespace, name); the SDS resources made of them, cached per content."""

    def __init__(self, *, source: str) -> None:
        self.source = source  # what the credentials are read from, for logs: "kubernetes Secrets", "dir /x"
        self._secrets: dict[SecretKey, SecretData] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._cache: dict[tuple[str, str], tuple[SecretData, Resource | NotServed]] = {}
        self.synced = False  # the source's first full content arrived

    def __len__(self) -> int:
        return len(self._secrets)

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """``listener(namespace)`` after each change of a Secret in that namespace."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------------------------------ sources

    def replace(self, secrets: Mapping[SecretKey, SecretData]) -> None:
        """The source's whole content: Secrets not in it are gone."""
        changed = {
            key[0] for key in self._secrets.keys() | secrets.keys() if self._secrets.get(key) != secrets.get(key)
        }
        self._secrets = dict(secrets)
        self.synced = True
        self._changed(changed)

    def put(self, namespace: str, name: str, data: SecretData) -> None:
        if self._secrets.get((namespace, name)) != data:
            self._secrets[(namespace, name)] = data
            self._changed({namespace})

    def delete(self, namespace: str, name: str) -> None:
        if self._secrets.pop((namespace, name), None) is not None:
            self._changed({namespace})

    def _changed(self, namespaces: Iterable[str]) -> None:
        for namespace in sorted(namespaces):
            for listener in self._listeners:
                listener(namespace)

    # ------------------------------------------------------------------------------------------ SDS

    def resource(self, sds_name: str, proxy_namespace: str) -> Resource | NotServed:
        """The Envoy Secret named ``sds_name`` for a proxy of ``proxy_namespace``, or why there is none."""
        wanted = parse_credential_name(sds_name)
        if wanted is None:
            return NotServed(f"{sds_name!r} is not a credential name (kubernetes://<name> or <name>)")
        namespace = wanted.in_namespace(proxy_namespace)
        if namespace != proxy_namespace:
            return NotServed(
                f"a proxy of namespace {proxy_namespace} reads credentials of its own namespace only, "
                f"not of {namespace}"
            )
        key = wanted.name
        if wanted.ca_only and (namespace, key + SDS_CA_SUFFIX) in self._secrets:
            key += SDS_CA_SUFFIX  # Istio: the Secret <name>-cacert when there is one, else <name>'s CA keys
        data = self._secrets.get((namespace, key))
        if data is None:
            return NotServed(f"secret {namespace}/{key} not found (in {self.source})")
        cached = self._cache.get((namespace, sds_name))
        if cached is not None and cached[0] is data:
            return cached[1]
        built = self._build(sds_name, wanted.ca_only, data, f"{namespace}/{key}")
        self._cache[(namespace, sds_name)] = (data, built)
        return built

    @staticmethod
    def _build(sds_name: str, ca_only: bool, data: SecretData, secret: str) -> Resource | NotServed:
        try:
            if ca_only:
                return ca_secret_resource(sds_name, ca_certificates(data))
            return tls_secret_resource(sds_name, certificate_key_pair(data))
        except CredentialError as exc:
            return NotServed(f"secret {secret}: {exc}")
