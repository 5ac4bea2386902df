"""Access-log entries -> RequestRecords with Istio's labels: both reporters, mTLS and plaintext, unknown peers,
response flags, gRPC. The builders at the top are shared by the other tests/test_mixer_* telemetry tests."""

from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.data.accesslog.v3.accesslog_pb2 import (
    AccessLogCommon,
    HTTPAccessLogEntry,
    HTTPRequestProperties,
    HTTPResponseProperties,
    ResponseFlags,
    TLSProperties,
)
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import UInt32Value

from mixer.log_entries import (
    LABEL_NAMES,
    LogEntryError,
    RequestRecord,
    reporting_workload,
    request_record,
    response_flags,
)
from mixer.names import TAG_DESTINATION_SERVICE, TAG_REPORTER
from mixer.registry import WorkloadRegistry
from pilot.config.parse import parse_config_text
from pilot.model import build_snapshot, parse_node_id
from pilot.model.types import ProxyNode

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: backend}
spec:
  hosts: [ratings.backend.svc.cluster.local]
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-v1, namespace: default}
spec: {address: 127.0.0.11, labels: {app: productpage, version: v1}, serviceAccount: productpage}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.21, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: backend}
spec:
  address: 127.0.0.31
  labels: {app: ratings, version: v1, service.istio.io/canonical-name: ratings-svc}
  serviceAccount: ratings
"""

REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.backend.svc.cluster.local"
PRODUCTPAGE_SPIFFE = "spiffe://cluster.local/ns/default/sa/productpage"
REVIEWS_SPIFFE = "spiffe://cluster.local/ns/default/sa/reviews"


def mesh_registry() -> WorkloadRegistry:
    parsed = parse_config_text(MESH, "mesh.yaml")
    assert not parsed.rejected, parsed.rejected
    return WorkloadRegistry(build_snapshot({r.meta.key: r for r in parsed.resources}, version=1))


def sidecar(workload: str, namespace: str, ip: str) -> ProxyNode:
    return parse_node_id(f"sidecar~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local")


def _address(ip: str, port: int) -> Address:
    return Address(socket_address=SocketAddress(address=ip, port_value=port))


def http_entry(
    *,
    reporter: str,
    downstream: tuple[str, int] = ("127.0.0.11", 41000),
    local: tuple[str, int] = ("127.0.0.21", 9080),
    upstream: tuple[str, int] | None = None,
    cluster: str = "",
    destination_service: str = "",
    peer_uri: str = "",
    local_uri: str = "",
    code: int | None = 200,
    flags: ResponseFlags | None = None,
    duration_ms: int = 12,
    authority: str = "reviews:9080",
    content_type: str = "",
    grpc_status: str = "",
    sizes: tuple[int, int, int, int] = (100, 20, 80, 300),  # request headers/body, response headers/body
) -> HTTPAccessLogEntry:
    """An entry as Envoy's http_grpc logger sends it from a sidecar configured by Pilot."""
    tags = {TAG_REPORTER: reporter}
    if destination_service:
        tags[TAG_DESTINATION_SERVICE] = destination_service
    tls = TLSProperties()
    if peer_uri:
        tls.peer_certificate_properties.subject_alt_name.add(dns="ignored.example.com")
        tls.peer_certificate_properties.subject_alt_name.add(uri=peer_uri)
    if local_uri:
        tls.local_certificate_properties.subject_alt_name.add(uri=local_uri)
    common = AccessLogCommon(
        downstream_remote_address=_address(*downstream),
        downstream_local_address=_address(*local),
        upstream_cluster=cluster,
        custom_tags=tags,
        start_time=Timestamp(seconds=1_700_000_000, nanos=500_000_000),
        time_to_last_downstream_tx_byte=Duration(seconds=duration_ms // 1000, nanos=(duration_ms % 1000) * 1_000_000),
        response_flags=flags or ResponseFlags(),
    )
    if upstream is not None:
        common.upstream_remote_address.CopyFrom(_address(*upstream))
    if peer_uri or local_uri:
        common.tls_properties.CopyFrom(tls)
    request = HTTPRequestProperties(
        request_method="GET",
        authority=authority,
        path="/reviews/1",
        request_headers_bytes=sizes[0],
        request_body_bytes=sizes[1],
    )
    if content_type:
        request.request_headers["content-type"] = content_type
    response = HTTPResponseProperties(response_headers_bytes=sizes[2], response_body_bytes=sizes[3])
    if code is not None:
        response.response_code.CopyFrom(UInt32Value(value=code))
    if grpc_status:
        response.response_trailers["grpc-status"] = grpc_status
    return HTTPAccessLogEntry(
        common_properties=common,
        protocol_version=HTTPAccessLogEntry.HTTP2,
        request=request,
        response=response,
    )


def inbound_reviews_entry(**overrides: object) -> HTTPAccessLogEntry:
    """reviews-v1's sidecar reporting a request from productpage-v1 over mTLS."""
    settings: dict[str, object] = {
        "reporter": "destination",
        "destination_service": REVIEWS,
        "peer_uri": PRODUCTPAGE_SPIFFE,
        "local_uri": REVIEWS_SPIFFE,
        **overrides,
    }
    return http_entry(**settings)  # type: ignore[arg-type]


def outbound_productpage_entry(**overrides: object) -> HTTPAccessLogEntry:
    """productpage-v1's sidecar reporting its request to reviews (served by reviews-v1)."""
    settings: dict[str, object] = {
        "reporter": "source",
        "downstream": ("127.0.0.11", 52000),
        "local": ("127.0.0.11", 15001),
        "upstream": ("127.0.0.21", 9080),
        "cluster": f"outbound|9080||{REVIEWS}",
        **overrides,
    }
    return http_entry(**settings)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- tests


REVIEWS_REPORT = RequestRecord(
    reporter="destination",
    source_workload="productpage-v1",
    source_workload_namespace="default",
    source_principal="cluster.local/ns/default/sa/productpage",
    source_app="productpage",
    source_version="v1",
    source_canonical_service="productpage",
    source_canonical_revision="v1",
    destination_workload="reviews-v1",
    destination_workload_namespace="default",
    destination_principal="cluster.local/ns/default/sa/reviews",
    destination_app="reviews",
    destination_version="v1",
    destination_canonical_service="reviews",
    destination_canonical_revision="v1",
    destination_service=REVIEWS,
    destination_service_name="reviews",
    destination_service_namespace="default",
    request_protocol="http",
    response_code="200",
    grpc_response_status="",
    response_flags="-",
    connection_security_policy="mutual_tls",
    duration_ms=12.0,
    request_bytes=120,
    response_bytes=380,
    start_time=1_700_000_000.5,
    mtls=True,
)


def test_destination_report_over_mtls_names_both_workloads_and_principals() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("reviews-v1", "default", "127.0.0.21"), registry)

    record = request_record(inbound_reviews_entry(), reporter, registry)

    assert record == REVIEWS_REPORT


def test_destination_report_in_plaintext_has_policy_none_and_unknown_principals() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("reviews-v1", "default", "127.0.0.21"), registry)

    record = request_record(inbound_reviews_entry(peer_uri="", local_uri=""), reporter, registry)

    assert record == replace(
        REVIEWS_REPORT,
        source_principal="unknown",
        destination_principal="unknown",
        connection_security_policy="none",
        mtls=False,
    )


def test_destination_report_from_outside_the_mesh_has_an_unknown_source() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("reviews-v1", "default", "127.0.0.21"), registry)

    record = request_record(
        inbound_reviews_entry(downstream=("10.9.9.9", 33000), peer_uri="", local_uri=""), reporter, registry
    )

    assert (
        record.source_workload,
        record.source_workload_namespace,
        record.source_app,
        record.source_version,
        record.source_canonical_service,
        record.source_canonical_revision,
        record.source_principal,
    ) == ("unknown", "unknown", "unknown", "unknown", "unknown", "latest", "unknown")
    assert record.destination_workload == "reviews-v1"
    assert record.connection_security_policy == "none"


def test_destination_service_without_the_tag_is_the_service_port_at_the_local_address() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("reviews-v1", "default", "127.0.0.21"), registry)

    record = request_record(inbound_reviews_entry(destination_service=""), reporter, registry)
    assert record.destination_service == REVIEWS

    nowhere = request_record(
        inbound_reviews_entry(destination_service="", local=("127.0.0.21", 7777)), reporter, registry
    )
    assert (nowhere.destination_service, nowhere.destination_service_name) == ("unknown", "unknown")
    assert nowhere.destination_service_namespace == "unknown"


def test_source_report_resolves_the_destination_by_upstream_address_and_service_by_cluster() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("productpage-v1", "default", "127.0.0.11"), registry)

    record = request_record(outbound_productpage_entry(), reporter, registry)

    assert record == replace(
        REVIEWS_REPORT,
        reporter="source",
        source_principal="unknown",
        destination_principal="unknown",
        connection_security_policy="unknown",
        mtls=False,
    )


def test_source_report_of_a_subset_cluster_and_a_service_in_another_namespace() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("productpage-v1", "default", "127.0.0.11"), registry)

    record = request_record(
        outbound_productpage_entry(upstream=("127.0.0.31", 9090), cluster=f"outbound|9090|v1|{RATINGS}"),
        reporter,
        registry,
    )

    assert (record.destination_service, record.destination_service_name, record.destination_service_namespace) == (
        RATINGS,
        "ratings",
        "backend",
    )
    assert (record.destination_workload, record.destination_workload_namespace) == ("ratings-v1", "backend")
    assert (record.destination_canonical_service, record.destination_canonical_revision) == ("ratings-svc", "v1")


def test_source_report_without_a_route_uses_the_authority_and_flags_nr() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("productpage-v1", "default", "127.0.0.11"), registry)

    record = request_record(
        outbound_productpage_entry(
            upstream=None,
            cluster="",
            authority="nowhere.example.com:8080",
            code=404,
            flags=ResponseFlags(no_route_found=True),
        ),
        reporter,
        registry,
    )

    assert record.destination_service == "nowhere.example.com"
    assert (record.destination_service_name, record.destination_service_namespace) == ("nowhere", "unknown")
    assert (record.destination_workload, record.destination_app, record.destination_principal) == (
        "unknown",
        "unknown",
        "unknown",
    )
    assert (record.response_code, record.response_flags) == ("404", "NR")


def test_source_report_of_an_unreachable_service_is_503_uh_with_an_unknown_destination_workload() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("productpage-v1", "default", "127.0.0.11"), registry)

    record = request_record(
        outbound_productpage_entry(upstream=None, code=503, flags=ResponseFlags(no_healthy_upstream=True)),
        reporter,
        registry,
    )

    assert (record.destination_service, record.destination_workload) == (REVIEWS, "unknown")
    assert (record.response_code, record.response_flags) == ("503", "UH")


def test_response_flags_are_envoys_short_names_in_envoys_order() -> None:
    assert response_flags(ResponseFlags()) == "-"
    assert response_flags(ResponseFlags(upstream_retry_limit_exceeded=True, upstream_connection_failure=True)) == (
        "UF,URX"
    )
    assert response_flags(ResponseFlags(downstream_connection_termination=True, rate_limited=True)) == "RL,DC"
    denied = ResponseFlags()
    denied.unauthorized_details.reason = ResponseFlags.Unauthorized.EXTERNAL_SERVICE
    assert response_flags(denied) == "UAEX"
    assert response_flags(ResponseFlags(upstream_request_timeout=True, upstream_connection_termination=True)) == (
        "UT,UC"
    )


def test_grpc_requests_are_grpc_with_their_status() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("ratings-v1", "backend", "127.0.0.31"), registry)

    record = request_record(
        inbound_reviews_entry(
            destination_service=RATINGS, content_type="application/grpc+proto", grpc_status="14", local_uri=""
        ),
        reporter,
        registry,
    )
    assert (record.request_protocol, record.grpc_response_status) == ("grpc", "14")
    assert record.destination_principal == "unknown"

    unlogged = request_record(
        inbound_reviews_entry(destination_service=RATINGS, content_type="application/grpc"), reporter, registry
    )
    assert (unlogged.request_protocol, unlogged.grpc_response_status) == ("grpc", "unknown")

    json = request_record(inbound_reviews_entry(content_type="application/json"), reporter, registry)
    assert (json.request_protocol, json.grpc_response_status) == ("http", "")


def test_a_request_without_response_has_code_0_and_is_an_error() -> None:
    registry = mesh_registry()
    reporter = reporting_workload(sidecar("reviews-v1", "default", "127.0.0.21"), registry)

    record = request_record(
        inbound_reviews_entry(code=None, flags=ResponseFlags(downstream_connection_termination=True)),
        reporter,
        registry,
    )

    assert (record.response_code, record.response_flags, record.is_error) == ("0", "DC", True)
    assert REVIEWS_REPORT.is_error is False
    assert replace(REVIEWS_REPORT, response_code="503").is_error is True
    assert replace(REVIEWS_REPORT, response_code="404").is_error is False


def test_an_entry_without_the_reporter_tag_is_rejected() -> None:
    registry = mesh_registry()
    with pytest.raises(LogEntryError, match="reporter"):
        request_record(http_entry(reporter=""), None, registry)


def test_a_sidecar_unknown_to_the_registry_is_described_by_its_node_id() -> None:
    registry = mesh_registry()

    reporter = reporting_workload(sidecar("legacy-v3", "old", "127.0.0.99"), registry)
    assert reporter is not None
    assert (reporter.name, reporter.namespace, reporter.address) == ("legacy-v3", "old", "127.0.0.99")
    record = request_record(inbound_reviews_entry(), reporter, registry)
    assert (record.destination_workload, record.destination_workload_namespace) == ("legacy-v3", "old")
    assert (record.destination_app, record.destination_canonical_service, record.destination_canonical_revision) == (
        "unknown",
        "legacy-v3",
        "latest",
    )

    by_address = reporting_workload(sidecar("renamed", "default", "127.0.0.21"), registry)
    assert by_address is not None and by_address.name == "reviews-v1"
    assert reporting_workload(None, registry) is None


def test_label_names_are_istios_and_label_values_follow_them() -> None:
    assert LABEL_NAMES == (
        "reporter",
        "source_workload",
        "source_workload_namespace",
        "source_principal",
        "source_app",
        "source_version",
        "source_canonical_service",
        "source_canonical_revision",
        "destination_workload",
        "destination_workload_namespace",
        "destination_principal",
        "destination_app",
        "destination_version",
        "destination_canonical_service",
        "destination_canonical_revision",
        "destination_service",
        "destination_service_name",
        "destination_service_namespace",
        "request_protocol",
        "response_code",
        "grpc_response_status",
        "response_flags",
        "connection_security_policy",
    )
    assert REVIEWS_REPORT.label_values == tuple(getattr(REVIEWS_REPORT, name) for name in LABEL_NAMES)
