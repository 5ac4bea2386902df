"""SDS resources and what to send a stream: pure functions, no I/O, tested without gRPC.

Two secrets, named as Istio names them (``meshplane.identity``): ``default``, the workload's certificate chain and
private key (``tls_certificate``), and ``ROOTCA``, the trust bundle (``validation_context.trusted_ca``), both as
inline bytes. A resource's version is a hash of its serialized Secret.

Which request needs a response is the protocol state machine of ``sds_watch.py`` (ACK, NACK recorded and never
answered with a resend, stale nonces, delta subscriptions); what the response holds is decided here:

- state of the world: every subscribed secret that exists, when one of them differs from what the stream was sent
  (or the stream asked); names Citadel does not serve are left out, and a response that would be empty is not sent;
- delta: the subscribed secrets whose version differs from what the stream has, and ``removed_resources`` for
  subscribed names Citadel does not serve (once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from envoy.config.core.v3.base_pb2 import DataSource
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import CertificateValidationContext, TlsCertificate
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse, Resource
from google.protobuf.any_pb2 import Any as AnyProto

from citadel.sds_watch import SecretWatch
from meshplane.identity import SDS_ROOT_CA, SDS_WORKLOAD_CERT

__all__ = [
    "CONTROL_PLANE_ID",
    "SECRET_TYPE",
    "SecretResource",
    "plan_delta",
    "plan_sotw",
    "root_ca_secret",
    "type_version",
    "workload_secret",
]

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
CONTROL_PLANE_ID = "meshplane-citadel"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretResource:
    """One SDS secret, packed, with its content version."""

    name: str
    version: str
    body: AnyProto = field(repr=False)


def _resource(secret: Secret) -> SecretResource:
    body = AnyProto()
    body.Pack(secret)
    version = hashlib.sha256(body.value).hexdigest()[:16]
    return SecretResource(name=secret.name, version=version, body=body)


def workload_secret(certificate_chain: bytes, private_key: bytes) -> SecretResource:
    """``default``: the workload's certificate chain (leaf first) and its private key, inline."""
    return _resource(
        Secret(
            name=SDS_WORKLOAD_CERT,
            tls_certificate=TlsCertificate(
                certificate_chain=DataSource(inline_bytes=certificate_chain),
                private_key=DataSource(inline_bytes=private_key),
            ),
        )
    )


def root_ca_secret(trust_bundle: bytes) -> SecretResource:
    """``ROOTCA``: the roots a workload trusts, inline."""
    return _resource(
        Secret(
            name=SDS_ROOT_CA,
            validation_context=CertificateValidationContext(trusted_ca=DataSource(inline_bytes=trust_bundle)),
        )
    )


def type_version(resources: Sequence[SecretResource]) -> str:
    """The version of a set of secrets: a hash over their names and versions."""
    digest = hashlib.sha256()
    for resource in resources:
        digest.update(f"{resource.name}={resource.version};".encode())
    return digest.hexdigest()[:16]


def plan_sotw(
    watch: SecretWatch, current: Mapping[str, SecretResource], *, nonce: str, full: bool
) -> tuple[DiscoveryResponse | None, SecretWatch]:
    """State of the world. ``full``: the stream asked, so answer even when nothing changed."""
    chosen = [current[name] for name in sorted(watch.names) if name in current]
    if not chosen:
        return None, watch
    if not full and all(watch.sent.get(r.name) == r.version for r in chosen):
        return None, watch
    version = type_version(chosen)
    response = DiscoveryResponse(version_info=version, type_url=SECRET_TYPE, nonce=nonce)
    response.resources.extend(r.body for r in chosen)
    response.control_plane.identifier = CONTROL_PLANE_ID
    sent = MappingProxyType({r.name: r.version for r in chosen})
    return response, replace(watch, sent=sent, version_sent=version, nonce_sent=nonce)


def plan_delta(
    watch: SecretWatch, current: Mapping[str, SecretResource], *, nonce: str, force: bool
) -> tuple[DeltaDiscoveryResponse | None, SecretWatch]:
    """Incremental. ``force``: answer even when nothing differs (a first request must complete Envoy's init)."""
    sent = dict(watch.sent)
    chosen: list[SecretResource] = []
    removed: list[str] = []
    for name in sorted(watch.names):
        resource = current.get(name)
        if resource is None:
            if sent.get(name) != "":  # "" marks a name the stream was told does not exist
                sent[name] = ""
                removed.append(name)
        elif sent.get(name) != resource.version:
            sent[name] = resource.version
            chosen.append(resource)
    if not chosen and not removed and not force:
        return None, watch
    version = type_version([current[name] for name in sorted(sent) if name in current])
    response = DeltaDiscoveryResponse(
        system_version_info=version, type_url=SECRET_TYPE, nonce=nonce, removed_resources=removed
    )
    response.resources.extend(Resource(name=r.name, version=r.version, resource=r.body) for r in chosen)
    response.control_plane.identifier = CONTROL_PLANE_ID
    return response, replace(watch, sent=MappingProxyType(sent), version_sent=version, nonce_sent=nonce)
