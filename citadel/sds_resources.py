"""What Citadel's SDS serves: the two secrets Istio names (``meshplane.identity``), gateway credentials
(``credential_store.py``), and a stream's resources.

``default`` is the workload's certificate chain and private key (``tls_certificate``), ``ROOTCA`` the trust bundle
(``validation_context.trusted_ca``), both inline. Each is an ``xdscore`` resource: serialized once, versioned by the
hash of its bytes. ``SecretProducer`` is the SDS type's ``ResourceProducer``: it supplies the secrets a stream
watches, and the xDS core decides what to send (ACK/NACK, SotW and delta, every watched secret in each SotW
response, as Envoy's SDS requires).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from envoy.config.core.v3.base_pb2 import DataSource
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import CertificateValidationContext, TlsCertificate
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret

from meshplane.identity import SDS_ROOT_CA, SDS_WORKLOAD_CERT
from xdscore import ProxyResources, Resource, ResourceChanges, ResourceGroup, WatchedResource, make_resource
from xdscore.types import SECRET_TYPE

__all__ = ["CONTROL_PLANE_ID", "SECRET_TYPE", "SecretProducer", "root_ca_secret", "workload_secret"]

CONTROL_PLANE_ID = "meshplane-citadel"
_OWN_NAMES = frozenset((SDS_WORKLOAD_CERT, SDS_ROOT_CA))


def workload_secret(certificate_chain: bytes, private_key: bytes) -> Resource:
    """``default``: the workload's certificate chain (leaf first) and its private key, inline."""
    return make_resource(
        Secret(
            name=SDS_WORKLOAD_CERT,
            tls_certificate=TlsCertificate(
                certificate_chain=DataSource(inline_bytes=certificate_chain),
                private_key=DataSource(inline_bytes=private_key),
            ),
        )
    )


def root_ca_secret(trust_bundle: bytes) -> Resource:
    """``ROOTCA``: the roots a workload trusts, inline."""
    return make_resource(
        Secret(
            name=SDS_ROOT_CA,
            validation_context=CertificateValidationContext(trusted_ca=DataSource(inline_bytes=trust_bundle)),
        )
    )


class SecretProducer:
    """The secrets one SDS stream watches: ``default`` (from ``workload``, which may issue a certificate) and
    ``ROOTCA``. The same set object is returned while its secrets are the same objects, so a push that finds
    nothing new costs nothing."""

    wildcard = False
    every_watched = True

    def __init__(
        self,
        *,
        workload: Callable[[], Awaitable[Resource]],
        root_ca: Callable[[], Resource],
        credential: Callable[[str], Resource | None] = lambda _name: None,
    ) -> None:
        """``credential``: any other watched name (a gateway's ``kubernetes://<name>``), None when not served."""
        self._workload = workload
        self._root_ca = root_ca
        self._credential = credential
        self._last: tuple[tuple[Resource, ...], ProxyResources] | None = None

    async def resources(self, watch: WatchedResource) -> ProxyResources:
        secrets: list[Resource] = []
        if SDS_WORKLOAD_CERT in watch.names:
            secrets.append(await self._workload())
        if SDS_ROOT_CA in watch.names:
            secrets.append(self._root_ca())
        for name in sorted(watch.names - _OWN_NAMES):
            if (credential := self._credential(name)) is not None:
                secrets.append(credential)
        return self._set_of(secrets)

    def changes(self, since: ProxyResources, current: ProxyResources) -> ResourceChanges | None:
        return None  # a few secrets: comparing them is the cheap way

    def _set_of(self, secrets: Sequence[Resource]) -> ProxyResources:
        key = tuple(secrets)
        last = self._last
        if last is None or len(last[0]) != len(key) or any(a is not b for a, b in zip(last[0], key, strict=True)):
            last = self._last = (key, ProxyResources.of([ResourceGroup.of(key)]))
        return last[1]
