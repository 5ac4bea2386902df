"""Access-log entries -> RequestRecords with Istio's labels: both reporters, mTLS and plaintext, unknown peers,
response flags, gRPC. The builders are in tests/mixer_builders.py, shared with the other telemetry tests."""

from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.data.accesslog.v3.accesslog_pb2 import ResponseFlags

from mixer.log_entries import LABEL_NAMES, LogEntryError, reporting_workload, request_record, response_flags
from tests.mixer_builders import (
    RATINGS,
    REVIEWS,
    REVIEWS_REPORT,
    SOURCE_REPORT,
    http_entry,
    inbound_reviews_entry,
    mesh_registry,
    outbound_productpage_entry,
    sidecar,
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

    assert record == SOURCE_REPORT


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


def test_a_reporting_sidecar_is_found_as_pilot_finds_it() -> None:
    """By name, else by address in its own namespace (``resolve_proxy``): an address that belongs to another
    namespace's workload does not make the sidecar that workload."""
    registry = mesh_registry()
    by_name = reporting_workload(sidecar("reviews-v1", "default", "127.0.0.99"), registry)
    assert by_name is not None and (by_name.name, by_name.address) == ("reviews-v1", "127.0.0.21")
    by_address = reporting_workload(sidecar("renamed", "default", "127.0.0.21"), registry)
    assert by_address is not None and by_address.name == "reviews-v1"
    elsewhere = reporting_workload(sidecar("renamed", "other", "127.0.0.21"), registry)
    assert elsewhere is not None and (elsewhere.name, elsewhere.namespace, elsewhere.labels) == ("renamed", "other", {})
