"""DestinationRule ``tls.credentialName``: the upstream TLS context takes its certificates over SDS from Citadel
(``kubernetes://<name>``, ``kubernetes://<name>-cacert``), field by field; a proxy without SDS gets no endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import TlsParameters
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import SdsSecretConfig

from envoy_bootstrap.bootstrap import HostPort, build_sds_cluster, write_citadel_trust
from meshplane.identity import SDS_CLUSTER
from pilot.config.types import ClientTLSSettings, DestinationRule, PortTrafficPolicy, Subset, TrafficPolicy
from pilot.generate import clusters, endpoints
from pilot.generate.cluster_credential_tls import CREDENTIAL_FETCH_TIMEOUT
from tests.mtls_builders import (
    API,
    DNS,
    REVIEWS,
    MakeMeta,
    dr_tls,
    labels,
    mesh,
    outbound,
    sans,
    snapshot_of,
    upstream_tls,
    write_test_pki,
)
from tests.xdstest import check_resources, envoy_validate

CERT = "kubernetes://client-credential"
CA = "kubernetes://client-credential-cacert"


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    sni: str = REVIEWS
    certificate: tuple[str, ...] = ()  # SDS names of the client certificate
    ca: str = ""  # SDS name of the validation context; "" when nothing is verified
    sans: tuple[tuple[int, str], ...] = ()
    alpn: tuple[str, ...] = ()


CASES: list[tuple[str, TrafficPolicy, int, Expected]] = [
    (
        "mutual",
        dr_tls(mode="MUTUAL", credential_name="client-credential"),
        9080,
        # no subjectAltNames: the certificate must name the host asked for (auto SAN validation, as with files)
        Expected(certificate=(CERT,), ca=CA, sans=((DNS, REVIEWS),)),
    ),
    (
        "mutual-sni-sans",
        dr_tls(
            mode="MUTUAL", credential_name="client-credential", sni="my-nginx.example", subject_alt_names=("a.example",)
        ),
        9080,
        Expected(sni="my-nginx.example", certificate=(CERT,), ca=CA, sans=((DNS, "a.example"),)),
    ),
    (
        "mutual-sni-is-the-default-san",
        dr_tls(mode="MUTUAL", credential_name="client-credential", sni="my-nginx.example"),
        9080,
        Expected(sni="my-nginx.example", certificate=(CERT,), ca=CA, sans=((DNS, "my-nginx.example"),)),
    ),
    (
        "mutual-insecure",  # still sends the client certificate; verifies nothing (Istio)
        dr_tls(mode="MUTUAL", credential_name="client-credential", insecure_skip_verify=True),
        9080,
        Expected(certificate=(CERT,)),
    ),
    (
        "simple",  # only the CAs: SIMPLE sends no client certificate
        dr_tls(mode="SIMPLE", credential_name="client-credential"),
        9080,
        Expected(ca=CA, sans=((DNS, REVIEWS),)),
    ),
    (
        "http2-port",
        dr_tls(mode="MUTUAL", credential_name="client-credential"),
        9090,
        Expected(certificate=(CERT,), ca=CA, sans=((DNS, REVIEWS),), alpn=("h2",)),
    ),
    (
        "port-level",
        TrafficPolicy(
            port_level_settings=(
                PortTrafficPolicy(port=9080, tls=ClientTLSSettings(mode="MUTUAL", credential_name="client-credential")),
            )
        ),
        9080,
        Expected(certificate=(CERT,), ca=CA, sans=((DNS, REVIEWS),)),
    ),
]


def assert_sds(config: SdsSecretConfig, name: str) -> None:
    assert config.name == name
    source = config.sds_config
    (grpc,) = source.api_config_source.grpc_services
    assert grpc.envoy_grpc.cluster_name == SDS_CLUSTER
    assert source.api_config_source.api_type == source.api_config_source.ApiType.GRPC
    # not forever: a sidecar whose namespace lacks the Secret must still start (its connections then fail)
    assert source.initial_fetch_timeout.ToSeconds() == CREDENTIAL_FETCH_TIMEOUT > 0


@pytest.mark.parametrize(("policy", "port", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_credential_name_tls_context(make_meta: MakeMeta, policy: TrafficPolicy, port: int, expected: Expected) -> None:
    cluster = outbound(snapshot_of(*mesh(make_meta, rule_policy=policy)))[f"outbound|{port}||{REVIEWS}"]
    assert not cluster.transport_socket_matches  # the rule's tls replaces auto mTLS
    tls = upstream_tls(cluster.transport_socket)
    common = tls.common_tls_context
    assert tls.sni == expected.sni
    assert (common.tls_params.tls_minimum_protocol_version, common.tls_params.tls_maximum_protocol_version) == (
        TlsParameters.TlsProtocol.TLSv1_2,
        TlsParameters.TlsProtocol.TLSv1_3,
    )
    assert not common.tls_certificates  # no files
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == list(expected.certificate)
    for config in common.tls_certificate_sds_secret_configs:
        assert_sds(config, CERT)
    assert not common.HasField("validation_context")
    assert common.HasField("combined_validation_context") is bool(expected.ca)
    if expected.ca:
        combined = common.combined_validation_context
        assert_sds(combined.validation_context_sds_secret_config, expected.ca)
        assert not combined.default_validation_context.HasField("trusted_ca")  # the CAs are the Secret's
        assert sans(tls) == list(expected.sans)
    assert tuple(common.alpn_protocols) == expected.alpn


def test_subset_credential_applies_to_its_cluster_only(make_meta: MakeMeta) -> None:
    rule = DestinationRule(
        meta=make_meta("DestinationRule", "reviews"),
        host="reviews",
        subsets=(
            Subset(name="v1", labels=labels(version="v1"), traffic_policy=dr_tls(mode="MUTUAL", credential_name="v1")),
            Subset(name="v2", labels=labels(version="v2")),
        ),
    )
    resources = [r for r in mesh(make_meta) if not isinstance(r, DestinationRule)]
    built = outbound(snapshot_of(*resources, rule))
    v1 = upstream_tls(built[f"outbound|9080|v1|{REVIEWS}"].transport_socket).common_tls_context
    assert [c.name for c in v1.tls_certificate_sds_secret_configs] == ["kubernetes://v1"]
    assert v1.combined_validation_context.validation_context_sds_secret_config.name == "kubernetes://v1-cacert"
    v2 = built[f"outbound|9080|v2|{REVIEWS}"]
    assert not v2.HasField("transport_socket") and v2.transport_socket_matches  # auto mTLS, as before


def test_external_service_sans_come_from_its_service_entry(make_meta: MakeMeta) -> None:
    rule = DestinationRule(
        meta=make_meta("DestinationRule", "api"),
        host=API,
        traffic_policy=dr_tls(mode="MUTUAL", credential_name="client-credential"),
    )
    tls = upstream_tls(outbound(snapshot_of(*mesh(make_meta, rule)))[f"outbound|443||{API}"].transport_socket)
    assert (tls.sni, sans(tls)) == (API, [(DNS, API)])


@pytest.mark.parametrize(
    "policy",
    [
        dr_tls(mode="MUTUAL", credential_name="client-credential"),
        dr_tls(mode="SIMPLE", credential_name="client-credential"),
    ],
    ids=["mutual", "simple"],
)
def test_without_sds_the_cluster_has_no_endpoints(make_meta: MakeMeta, policy: TrafficPolicy) -> None:
    """Envoy would reject an update naming sds-grpc that its bootstrap lacks; plaintext or no client certificate
    would be weaker than the rule: the requests fail instead."""
    built = outbound(snapshot_of(*mesh(make_meta, rule_policy=policy)), sds=False)
    cluster = built[f"outbound|9080||{REVIEWS}"]
    assert cluster.type == Cluster.DiscoveryType.STATIC
    assert not cluster.HasField("transport_socket") and not cluster.transport_socket_matches
    assert cluster.load_assignment.cluster_name == cluster.name and not cluster.load_assignment.endpoints
    assert not cluster.HasField("eds_cluster_config")
    subset = built[f"outbound|9080|v1|{REVIEWS}"]  # inherits the rule's tls
    assert subset.type == Cluster.DiscoveryType.STATIC and not subset.load_assignment.endpoints
    assert built["outbound|7000||db.default.svc.cluster.local"].load_assignment.endpoints  # other services as before


def test_the_cluster_bytes_are_the_same_in_every_namespace(make_meta: MakeMeta) -> None:
    """Citadel resolves kubernetes://<name> in the asking proxy's namespace: nothing per namespace in the cluster."""
    snapshot = snapshot_of(*mesh(make_meta, rule_policy=dr_tls(mode="MUTUAL", credential_name="client-credential")))

    def cluster_in(namespace: str) -> Any:
        scope = clusters.outbound_scope(sds=True, namespace=namespace)
        by_name = {c.name: c for c in clusters.build_scope_clusters(scope, snapshot)}
        return by_name[f"outbound|9080||{REVIEWS}"].SerializeToString(deterministic=True)

    assert cluster_in("default") == cluster_in("other")


def test_envoy_accepts_the_credential_clusters(make_meta: MakeMeta, tmp_path: Path) -> None:
    """``envoy --mode validate`` over every outbound cluster, with SDS (and the bootstrap's sds-grpc) and without."""
    port_level = TrafficPolicy(
        tls=ClientTLSSettings(mode="SIMPLE", credential_name="api-ca", sni="reviews.example"),
        port_level_settings=(
            PortTrafficPolicy(port=9090, tls=ClientTLSSettings(mode="MUTUAL", credential_name="client-credential")),
        ),
    )
    snapshot = snapshot_of(*mesh(make_meta, rule_policy=port_level))
    pki = write_test_pki(tmp_path)
    sds_cluster = build_sds_cluster(
        HostPort(host="127.0.0.1", port=15012),
        token="t0k3n",
        citadel_trust=write_citadel_trust(tmp_path / "citadel-trust.json", pki["root"]),
    )
    for sds in (True, False):
        built = list(outbound(snapshot, sds=sds).values())
        assignments = endpoints.build_scope_load_assignments(
            endpoints.endpoint_scope(sds=sds, namespace="default"), snapshot
        )
        check_resources(clusters=built, load_assignments=assignments)
        envoy_validate(tmp_path, clusters=[*built, *([sds_cluster] if sds else [])], load_assignments=assignments)
