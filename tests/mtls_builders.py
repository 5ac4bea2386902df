"""Builders for the mutual TLS generator tests: a mesh with sidecars that do and do not opt into auto mTLS, proxies
with and without Citadel's SDS, unpacking of TLS contexts, and a throwaway PKI for files Envoy must read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import SubjectAltNameMatcher
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import UpstreamTlsContext

from pilot.config.types import (
    ClientTLSSettings,
    ConfigMeta,
    DestinationRule,
    MtlsMode,
    PeerAuthentication,
    Protocol,
    Resolution,
    Resource,
    ServiceEntry,
    ServicePort,
    Subset,
    TrafficPolicy,
    WorkloadEntry,
)
from pilot.generate import clusters
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from tests.sidecar_builders import inbound_listener

MakeMeta = Callable[..., ConfigMeta]
REVIEWS = "reviews.default.svc.cluster.local"
DB = "db.default.svc.cluster.local"
API = "api.example.com"
V1_ID = "spiffe://cluster.local/ns/default/sa/reviews-v1"
V2_ID = "spiffe://cluster.local/ns/default/sa/default"  # reviews-v2 names no service account
LEGACY_ID = "spiffe://cluster.local/ns/default/sa/legacy"
SDS = {"MESHPLANE_SDS": "true"}


def labels(**values: str) -> MappingProxyType[str, str]:
    return MappingProxyType({k.replace("__", "."): v for k, v in values.items()})


def mesh(make_meta: MakeMeta, *extra: Resource, rule_policy: TrafficPolicy | None = None) -> tuple[Resource, ...]:
    """reviews (STATIC; HTTP 9080, GRPC 9090, TCP 5432) served by v1, v2 and a legacy workload that opts out of
    auto mTLS; db (DNS, one sidecar workload); api.example.com (MESH_EXTERNAL); DestinationRule subsets v1, v2."""
    ports = {"http": 19080, "grpc": 19090, "tcp": 15432}

    def reviews(name: str, address: str, account: str, **more: str) -> WorkloadEntry:
        return WorkloadEntry(
            meta=make_meta("WorkloadEntry", name),
            address=address,
            ports=MappingProxyType(ports),
            labels=labels(app="reviews", **more),
            service_account=account,
        )

    return (
        ServiceEntry(
            meta=make_meta("ServiceEntry", "reviews"),
            hosts=(REVIEWS,),
            ports=(
                ServicePort(number=9080, name="http", protocol=Protocol.HTTP),
                ServicePort(number=9090, name="grpc", protocol=Protocol.GRPC),
                ServicePort(number=5432, name="tcp", protocol=Protocol.TCP),
            ),
            location="MESH_INTERNAL",
            resolution=Resolution.STATIC,
            workload_selector=labels(app="reviews"),
        ),
        reviews("reviews-v1", "127.0.0.21", "reviews-v1", version="v1"),
        reviews("reviews-v2", "127.0.0.22", "", version="v2"),
        reviews("legacy", "127.0.0.23", "legacy", version="v1", **{"security__istio__io/tlsMode": "disabled"}),
        DestinationRule(
            meta=make_meta("DestinationRule", "reviews"),
            host="reviews",
            traffic_policy=rule_policy,
            subsets=tuple(Subset(name=v, labels=labels(version=v)) for v in ("v1", "v2")),
        ),
        ServiceEntry(
            meta=make_meta("ServiceEntry", "db"),
            hosts=(DB,),
            ports=(ServicePort(number=7000, name="http-db", protocol=Protocol.HTTP),),
            location="MESH_INTERNAL",
            resolution=Resolution.DNS,
            workload_selector=labels(app="db"),
        ),
        WorkloadEntry(meta=make_meta("WorkloadEntry", "db-1"), address="127.0.0.31", labels=labels(app="db")),
        ServiceEntry(
            meta=make_meta("ServiceEntry", "api"),
            hosts=(API,),
            ports=(ServicePort(number=443, name="https", protocol=Protocol.HTTPS),),
            resolution=Resolution.DNS,
            subject_alt_names=("api.example.com",),
        ),
        *extra,
    )


def peer_auth(
    make_meta: MakeMeta, mode: MtlsMode, *, namespace: str = "istio-system", ports: dict[int, MtlsMode] | None = None
) -> PeerAuthentication:
    selector = labels(app="reviews", version="v1") if ports else None
    return PeerAuthentication(
        meta=make_meta("PeerAuthentication", f"pa-{mode.lower()}", namespace),
        selector=selector,
        mode=mode,
        port_level_mtls=MappingProxyType(ports or {}),
    )


def snapshot_of(*resources: Resource, trust_domain: str = "cluster.local") -> MeshSnapshot:
    return build_snapshot({r.meta.key: r for r in resources}, version=1, trust_domain=trust_domain)


def proxy_of(snapshot: MeshSnapshot, workload: str, address: str, *, sds: bool = True) -> Proxy:
    node_id = f"sidecar~{address}~{workload}.default~default.svc.cluster.local"
    return resolve_proxy(parse_node_id(node_id, "", SDS if sds else None), snapshot)


def unpack(message: Any, packed: Any) -> Any:
    assert packed.Unpack(message), packed.type_url
    return message


def listener_named(proxy: Proxy, snapshot: MeshSnapshot, port: int) -> Listener:
    """What the sidecar serves on inbound ``port`` (virtualInbound's chains for it)."""
    return inbound_listener(proxy, snapshot, port)


def hcm_of(chain: Any) -> HttpConnectionManager:
    (network,) = chain.filters
    return unpack(HttpConnectionManager(), network.typed_config)


def outbound(snapshot: MeshSnapshot, *, sds: bool = True) -> dict[str, Cluster]:
    scope = clusters.outbound_scope(sds=sds, namespace="default")
    return {c.name: c for c in clusters.build_scope_clusters(scope, snapshot)}


def upstream_tls(socket: Any) -> UpstreamTlsContext:
    assert socket.name == "envoy.transport_sockets.tls"
    return unpack(UpstreamTlsContext(), socket.typed_config)


def sans(context: Any) -> list[tuple[int, str]]:
    validation = context.common_tls_context
    if validation.HasField("combined_validation_context"):
        matchers = validation.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    else:
        matchers = validation.validation_context.match_typed_subject_alt_names
    return [(m.san_type, m.matcher.exact or m.matcher.prefix) for m in matchers]


URI, DNS = SubjectAltNameMatcher.SanType.URI, SubjectAltNameMatcher.SanType.DNS


def dr_tls(**fields: Any) -> TrafficPolicy:
    return TrafficPolicy(tls=ClientTLSSettings(**fields))


def write_test_pki(directory: Path) -> dict[str, Path]:
    """A root CA and a client certificate signed by it, as PEM files (what MUTUAL's files would be), and the root's
    CRL revoking that certificate (``crl``)."""
    now = datetime.now(UTC)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "meshplane test root")])
    root = (
        x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name).public_key(root_key.public_key())
        .serial_number(1).not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(root_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(root_name).public_key(leaf_key.public_key())
        .serial_number(2).not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("client.example")]), critical=True)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    revoked = x509.RevokedCertificateBuilder().serial_number(2).revocation_date(now).build()
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(root_name).last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=1)).add_revoked_certificate(revoked).sign(root_key, hashes.SHA256())
    )  # fmt: skip
    files = {"root": directory / "root.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    files["crl"] = directory / "revoked.crl"  # the root's CRL, revoking the client certificate
    files["crl"].write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    files["root"].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files
