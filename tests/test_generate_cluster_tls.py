"""Outbound TLS: auto mTLS clusters and their SPIFFE checks, EDS endpoint metadata, DestinationRule ``tls`` modes
and their precedence."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from google.protobuf import json_format

from pilot.config.types import (
    ClientTLSSettings,
    DestinationRule,
    PortTrafficPolicy,
    ServiceEntry,
    Subset,
    TrafficPolicy,
)
from pilot.generate import endpoints
from pilot.generate.cluster_tls import resolve_client_tls
from tests.mtls_builders import (
    API,
    DB,
    DNS,
    LEGACY_ID,
    REVIEWS,
    URI,
    V1_ID,
    V2_ID,
    MakeMeta,
    dr_tls,
    mesh,
    outbound,
    peer_auth,
    sans,
    snapshot_of,
    upstream_tls,
)

# ------------------------------------------------------------------------------------------------ outbound


def test_auto_mtls_cluster_matches_sidecar_endpoints(make_meta: MakeMeta) -> None:
    built = outbound(snapshot_of(*mesh(make_meta)))
    cluster = built[f"outbound|9080||{REVIEWS}"]
    assert not cluster.HasField("transport_socket")
    istio, disabled = cluster.transport_socket_matches
    assert (istio.name, json_format.MessageToDict(istio.match)) == ("tlsMode-istio", {"tlsMode": "istio"})
    assert (disabled.name, json_format.MessageToDict(disabled.match)) == ("tlsMode-disabled", {})
    assert disabled.transport_socket.name == "envoy.transport_sockets.raw_buffer"
    tls = upstream_tls(istio.transport_socket)
    common = tls.common_tls_context
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == ["default"]
    assert common.combined_validation_context.validation_context_sds_secret_config.name == "ROOTCA"
    assert sans(tls) == [(URI, V2_ID), (URI, LEGACY_ID), (URI, V1_ID)]  # sorted
    assert tls.sni == f"outbound_.9080_._.{REVIEWS}"
    assert list(common.alpn_protocols) == ["istio"]
    grpc = upstream_tls(built[f"outbound|9090||{REVIEWS}"].transport_socket_matches[0].transport_socket)
    assert list(grpc.common_tls_context.alpn_protocols) == ["istio", "h2"]
    v2 = upstream_tls(built[f"outbound|9080|v2|{REVIEWS}"].transport_socket_matches[0].transport_socket)
    assert (sans(v2), v2.sni) == ([(URI, V2_ID)], f"outbound_.9080_.v2_.{REVIEWS}")


def test_no_auto_mtls_to_mesh_external_services(make_meta: MakeMeta) -> None:
    cluster = outbound(snapshot_of(*mesh(make_meta)))[f"outbound|443||{API}"]
    assert not cluster.transport_socket_matches and not cluster.HasField("transport_socket")


def tls_modes(assignment: Any) -> dict[str, str | None]:
    modes: dict[str, str | None] = {}
    for group in assignment.endpoints:
        for endpoint in group.lb_endpoints:
            metadata = json_format.MessageToDict(endpoint.metadata)
            match = metadata.get("filterMetadata", {}).get("envoy.transport_socket_match", {})
            modes[endpoint.endpoint.address.socket_address.address] = match.get("tlsMode")
    return modes


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        ((), {"127.0.0.21": "istio", "127.0.0.22": "istio", "127.0.0.23": None}),
        (("v1-http-disable",), {"127.0.0.21": None, "127.0.0.22": "istio", "127.0.0.23": None}),
        (("namespace-disable",), {"127.0.0.21": None, "127.0.0.22": None, "127.0.0.23": None}),
    ],
    ids=["sidecars-but-opted-out", "workload-port-disabled", "namespace-disabled"],
)
def test_eds_metadata_marks_auto_mtls_endpoints(
    make_meta: MakeMeta, policies: tuple[str, ...], expected: dict[str, str | None]
) -> None:
    built = {
        "v1-http-disable": peer_auth(make_meta, "UNSET", namespace="default", ports={19080: "DISABLE"}),
        "namespace-disable": peer_auth(make_meta, "DISABLE", namespace="default"),
    }
    snapshot = snapshot_of(*mesh(make_meta, *(built[p] for p in policies)))
    with_sds = {
        a.cluster_name: a
        for a in endpoints.build_scope_load_assignments(
            endpoints.endpoint_scope(sds=True, namespace="default"), snapshot
        )
    }
    assert tls_modes(with_sds[f"outbound|9080||{REVIEWS}"]) == expected
    grpc_v1 = tls_modes(with_sds[f"outbound|9090|v1|{REVIEWS}"])
    assert grpc_v1["127.0.0.21"] == ("istio" if policies != ("namespace-disable",) else None)  # only 19080 disabled
    without = endpoints.build_scope_load_assignments(endpoints.endpoint_scope(sds=False, namespace="default"), snapshot)
    assert all(mode is None for a in without for mode in tls_modes(a).values())


def test_dns_cluster_inline_endpoints_are_marked(make_meta: MakeMeta) -> None:
    snapshot = snapshot_of(*mesh(make_meta))
    cluster = outbound(snapshot)[f"outbound|7000||{DB}"]
    assert cluster.type == Cluster.DiscoveryType.STRICT_DNS
    assert tls_modes(cluster.load_assignment) == {"127.0.0.31": "istio"}
    assert tls_modes(outbound(snapshot, sds=False)[f"outbound|7000||{DB}"].load_assignment) == {"127.0.0.31": None}


# ------------------------------------------------------------------------------------------------ DestinationRule tls


ALL_REVIEWS = [(URI, V2_ID), (URI, LEGACY_ID), (URI, V1_ID)]
TLS_MODE_CASES: list[tuple[str, TrafficPolicy, bool, dict[str, Any] | None]] = [
    ("disable", dr_tls(mode="DISABLE"), True, None),
    (
        "istio-mutual",
        dr_tls(mode="ISTIO_MUTUAL"),
        True,
        {"sni": f"outbound_.9080_._.{REVIEWS}", "sans": ALL_REVIEWS, "alpn": ["istio"], "sds": True},
    ),
    (
        "istio-mutual-overrides",
        dr_tls(mode="ISTIO_MUTUAL", sni="r.example", subject_alt_names=("spiffe://x/ns/a/sa/b",)),
        True,
        {"sni": "r.example", "sans": [(URI, "spiffe://x/ns/a/sa/b")], "sds": True},
    ),
    ("istio-mutual-without-sds", dr_tls(mode="ISTIO_MUTUAL"), False, None),
    (
        "simple-system-trust",
        dr_tls(mode="SIMPLE"),
        False,
        # no subjectAltNames: the certificate must still name the host asked for (Istio's auto_san_validation)
        {"sni": REVIEWS, "sans": [(DNS, REVIEWS)], "ca": "/etc/ssl/certs/ca-certificates.crt", "sds": False},
    ),
    (
        "simple-files",
        dr_tls(mode="SIMPLE", ca_certificates="/ca.pem", ca_crl="/crl.pem", sni="s", subject_alt_names=("r.example",)),
        True,
        {"sni": "s", "sans": [(DNS, "r.example")], "ca": "/ca.pem", "crl": "/crl.pem", "sds": False},
    ),
    (
        "simple-insecure",
        dr_tls(mode="SIMPLE", insecure_skip_verify=True),
        True,
        {"sni": REVIEWS, "no_validation": True, "sds": False},
    ),
    (
        "mutual",
        dr_tls(mode="MUTUAL", client_certificate="/c.pem", private_key="/k.pem"),
        True,
        {
            "sni": REVIEWS,
            "sans": [(DNS, REVIEWS)],
            "cert": ("/c.pem", "/k.pem"),
            "ca": "/etc/ssl/certs/ca-certificates.crt",
            "sds": False,
        },
    ),
]


@pytest.mark.parametrize(
    ("policy", "sds", "expected"), [c[1:] for c in TLS_MODE_CASES], ids=[c[0] for c in TLS_MODE_CASES]
)
def test_destination_rule_tls_modes(
    make_meta: MakeMeta, policy: TrafficPolicy, sds: bool, expected: dict[str, Any] | None
) -> None:
    cluster = outbound(snapshot_of(*mesh(make_meta, rule_policy=policy)), sds=sds)[f"outbound|9080||{REVIEWS}"]
    assert not cluster.transport_socket_matches  # a DestinationRule's tls replaces auto mTLS
    if expected is None:
        assert not cluster.HasField("transport_socket")
        return
    tls = upstream_tls(cluster.transport_socket)
    common = tls.common_tls_context
    assert tls.sni == expected["sni"]
    assert bool(common.tls_certificate_sds_secret_configs) is expected["sds"]
    if "sans" in expected:
        assert sans(tls) == expected["sans"]
    if "alpn" in expected:
        assert list(common.alpn_protocols) == expected["alpn"]
    assert not common.validation_context.HasField("system_root_certs")  # Envoy refuses SAN checks with it
    assert common.validation_context.trusted_ca.filename == expected.get("ca", "")
    assert common.validation_context.crl.filename == expected.get("crl", "")
    verifies_with_files = not expected["sds"] and not expected.get("no_validation", False)
    assert common.HasField("validation_context") is verifies_with_files
    assert common.HasField("combined_validation_context") is expected["sds"]
    certificates = [(c.certificate_chain.filename, c.private_key.filename) for c in common.tls_certificates]
    assert certificates == ([expected["cert"]] if "cert" in expected else [])


def test_simple_tls_to_an_external_service_verifies_its_service_entry_names(make_meta: MakeMeta) -> None:
    rule = DestinationRule(meta=make_meta("DestinationRule", "api"), host=API, traffic_policy=dr_tls(mode="SIMPLE"))
    tls = upstream_tls(outbound(snapshot_of(*mesh(make_meta, rule)))[f"outbound|443||{API}"].transport_socket)
    assert (tls.sni, sans(tls)) == (API, [(DNS, API)])


SIMPLE, ISTIO = ClientTLSSettings(mode="SIMPLE"), ClientTLSSettings(mode="ISTIO_MUTUAL")
OFF = ClientTLSSettings(mode="DISABLE")


def on_9080(tls: ClientTLSSettings | None = None, port: int = 9080) -> tuple[PortTrafficPolicy, ...]:
    return (PortTrafficPolicy(port=port, tls=tls),)


PRECEDENCE: list[tuple[str, TrafficPolicy, TrafficPolicy | None, ClientTLSSettings | None]] = [
    ("top", TrafficPolicy(tls=SIMPLE), None, SIMPLE),
    ("port-over-top", TrafficPolicy(tls=SIMPLE, port_level_settings=on_9080(ISTIO)), None, ISTIO),
    ("port-level-without-tls", TrafficPolicy(tls=SIMPLE, port_level_settings=on_9080()), None, None),
    ("other-port", TrafficPolicy(tls=SIMPLE, port_level_settings=on_9080(ISTIO, 9090)), None, SIMPLE),
    ("subset-over-rule", TrafficPolicy(tls=SIMPLE), TrafficPolicy(tls=OFF), OFF),
    ("subset-port", TrafficPolicy(tls=SIMPLE), TrafficPolicy(port_level_settings=on_9080(ISTIO)), ISTIO),
    ("subset-port-without-tls", TrafficPolicy(tls=SIMPLE), TrafficPolicy(port_level_settings=on_9080()), None),
    ("subset-without-tls", TrafficPolicy(tls=SIMPLE), TrafficPolicy(), SIMPLE),
]


@pytest.mark.parametrize(
    ("policy", "subset_policy", "expected"), [c[1:] for c in PRECEDENCE], ids=[c[0] for c in PRECEDENCE]
)
def test_tls_precedence(
    make_meta: MakeMeta,
    policy: TrafficPolicy,
    subset_policy: TrafficPolicy | None,
    expected: ClientTLSSettings | None,
) -> None:
    rule = DestinationRule(meta=make_meta("DestinationRule", "r"), host=REVIEWS, traffic_policy=policy)
    subset = Subset(name="v1", traffic_policy=subset_policy) if subset_policy is not None else None
    assert resolve_client_tls(rule, subset, 9080) == expected


SERVICE_ENTRY_SANS = ("spiffe://cluster.local/ns/other/sa/reviews-canary", "reviews.internal", V1_ID)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, [*ALL_REVIEWS, (URI, SERVICE_ENTRY_SANS[0]), (DNS, SERVICE_ENTRY_SANS[1])]),
        (dr_tls(mode="ISTIO_MUTUAL"), [*ALL_REVIEWS, (URI, SERVICE_ENTRY_SANS[0]), (DNS, SERVICE_ENTRY_SANS[1])]),
        (dr_tls(mode="ISTIO_MUTUAL", subject_alt_names=("spiffe://x/ns/a/sa/b",)), [(URI, "spiffe://x/ns/a/sa/b")]),
    ],
    ids=["auto-mtls", "istio-mutual", "istio-mutual-rule-sans-replace-them"],
)
def test_service_entry_subject_alt_names_are_accepted_from_mesh_servers(
    make_meta: MakeMeta, policy: TrafficPolicy | None, expected: list[tuple[int, str]]
) -> None:
    """Istio adds a ServiceEntry's subjectAltNames to its service accounts: a server may present either (a
    name already among the endpoints' identities is not repeated)."""
    resources = [
        replace(r, subject_alt_names=SERVICE_ENTRY_SANS)
        if r.meta.key.name == "reviews" and isinstance(r, ServiceEntry)
        else r
        for r in mesh(make_meta, rule_policy=policy)
    ]
    cluster = outbound(snapshot_of(*resources))[f"outbound|9080||{REVIEWS}"]
    socket = cluster.transport_socket_matches[0].transport_socket if policy is None else cluster.transport_socket
    assert sans(upstream_tls(socket)) == expected
