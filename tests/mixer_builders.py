"""Builders shared by the tests/test_mixer_* tests: a fake clock, and for the telemetry side a small mesh, access-log
entries as Pilot-configured sidecars send them, and the RequestRecords they describe."""

from __future__ import annotations

from dataclasses import replace

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

from meshplane.mixer_names import TAG_DESTINATION_SERVICE, TAG_REPORTER
from mixer.log_entries import RequestRecord
from mixer.registry import WorkloadRegistry
from pilot.config.parse import parse_config_text
from pilot.model import build_snapshot, parse_node_id
from pilot.model.types import ProxyNode


class FakeClock:
    """A clock that stands still until a test moves ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------- telemetry


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


# The same request as productpage-v1's sidecar reports it: an access-log entry carries no upstream TLS details.
SOURCE_REPORT = replace(
    REVIEWS_REPORT,
    reporter="source",
    source_principal="unknown",
    destination_principal="unknown",
    connection_security_policy="unknown",
    mtls=False,
)
