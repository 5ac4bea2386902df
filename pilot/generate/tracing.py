"""Telemetry ``tracing`` -> the ``tracing`` of a proxy's HTTP connection managers (Istio
``configureTracingFromTelemetry``).

For the tracer ``pilot.model.telemetry.tracing`` chooses for the HCM's side (CLIENT: outbound HCMs and gateways,
SERVER: inbound ones):

- an ``opentelemetry`` provider: ``envoy.tracers.opentelemetry`` exporting spans over OTLP/gRPC to the collector's
  outbound cluster (``service_cluster.lookup_cluster``: the registry service and port the provider names), with
  the collector's host as the gRPC authority and Istio's service name ``<canonical service>.<namespace>``;
- a ``zipkin`` provider: ``envoy.tracers.zipkin`` posting Zipkin v2 JSON to the provider's ``path`` on the
  collector's outbound cluster (128-bit trace ids unless ``enable64bitTraceId``, no shared span context: Istio's
  settings);
- ``random_sampling``: the sampling percentage; ``client_sampling`` and ``overall_sampling`` 100% (Istio's);
  ``max_path_tag_length``: the provider's ``maxTagLength`` (256 by default); ``custom_tags``: the Telemetry's
  literal, environment and request-header tags.

A provider whose service is not in the registry (or has not that port), or not in the egress scope of the proxy's
Sidecar (so that the proxy has no cluster for it), gives no tracing, with a warning: Envoy would reject a tracer
that points at a cluster the proxy does not have. Istio's own span tags
(``istio.canonical_service`` and the like, ``enableIstioTags``) are not added.
"""

from __future__ import annotations

import structlog
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.trace.v3.http_tracer_pb2 import Tracing as HttpTracer
from envoy.config.trace.v3.opentelemetry_pb2 import OpenTelemetryConfig
from envoy.config.trace.v3.zipkin_pb2 import ZipkinConfig
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.type.tracing.v3.custom_tag_pb2 import CustomTag
from envoy.type.v3.percent_pb2 import Percent

from pilot.config.mesh_extension_providers import split_provider_service
from pilot.config.mesh_telemetry_providers import OpenTelemetryTracingProvider
from pilot.config.types import TracingCustomTag, WorkloadMode
from pilot.generate.service_cluster import lookup_cluster
from pilot.generate.telemetry_access_logs import proxy_telemetry_labels, typed_config
from pilot.model.sidecar_scope import proxy_egress_scope
from pilot.model.telemetry import TracingChoice, TracingProvider, tracing
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "OPENTELEMETRY_TRACER",
    "ZIPKIN_TRACER",
    "build_hcm_tracing",
    "build_tracing",
    "tracing_service_name",
]

OPENTELEMETRY_TRACER = "envoy.tracers.opentelemetry"
ZIPKIN_TRACER = "envoy.tracers.zipkin"

log = structlog.get_logger(__name__)
_warned: set[tuple[str, str]] = set()  # (proxy id, reason) already warned about


def tracing_service_name(proxy: Proxy) -> str:
    """Istio's tracing service name: ``<canonical service>.<namespace>``."""
    labels = proxy_telemetry_labels(proxy)
    service = (
        labels.get("service.istio.io/canonical-name")
        or labels.get("app.kubernetes.io/name")
        or labels.get("app")
        or proxy.node.workload_name
    )
    return f"{service}.{proxy.namespace}"


def _custom_tag(tag: TracingCustomTag) -> CustomTag:
    if tag.kind == "literal":
        return CustomTag(tag=tag.tag, literal=CustomTag.Literal(value=tag.value))
    if tag.kind == "environment":
        return CustomTag(tag=tag.tag, environment=CustomTag.Environment(name=tag.name, default_value=tag.default_value))
    return CustomTag(tag=tag.tag, request_header=CustomTag.Header(name=tag.name, default_value=tag.default_value))


def _tracer(provider: TracingProvider, cluster: str, service_name: str) -> HttpTracer:
    _, host = split_provider_service(provider.service)
    if isinstance(provider, OpenTelemetryTracingProvider):
        grpc = GrpcService(envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=cluster, authority=host))
        config = OpenTelemetryConfig(grpc_service=grpc, service_name=service_name)
        return HttpTracer.Http(name=OPENTELEMETRY_TRACER, typed_config=typed_config(config))
    zipkin = ZipkinConfig(
        collector_cluster=cluster,
        collector_endpoint=provider.path,
        collector_endpoint_version=ZipkinConfig.HTTP_JSON,
        trace_id_128bit=provider.trace_id_128bit,
        shared_span_context={"value": False},
        collector_hostname=host,
    )
    return HttpTracer.Http(name=ZIPKIN_TRACER, typed_config=typed_config(zipkin))


def build_hcm_tracing(choice: TracingChoice, cluster: str, service_name: str) -> HttpConnectionManager.Tracing:
    """The HCM's tracing for ``choice``, its spans sent through ``cluster`` (see the module doc)."""
    return HttpConnectionManager.Tracing(
        provider=_tracer(choice.provider, cluster, service_name),
        random_sampling=Percent(value=choice.sampling),
        client_sampling=Percent(value=100.0),
        overall_sampling=Percent(value=100.0),
        max_path_tag_length={"value": choice.provider.max_tag_length},
        custom_tags=[_custom_tag(tag) for tag in choice.custom_tags],
    )


def build_tracing(proxy: Proxy, snapshot: MeshSnapshot, side: WorkloadMode) -> HttpConnectionManager.Tracing | None:
    """The tracing of one side of ``proxy``; None: no tracing there."""
    choice = tracing(snapshot, proxy.namespace, proxy_telemetry_labels(proxy), side)
    if choice is None:
        return None
    namespace, host = split_provider_service(choice.provider.service)
    try:
        cluster = lookup_cluster(snapshot, host, choice.provider.port, namespace=namespace)
        if not proxy_egress_scope(proxy, snapshot).sees_service(host):
            raise LookupError(f"service {host} is not in the egress scope of the proxy's Sidecar")
    except LookupError as exc:
        if (proxy.node.id, str(exc)) not in _warned:  # once per proxy and reason, not on every push
            _warned.add((proxy.node.id, str(exc)))
            log.warning(
                "tracing_provider_unusable", provider=choice.provider.name, reason=str(exc), proxy=proxy.node.id
            )
        return None
    return build_hcm_tracing(choice, cluster, tracing_service_name(proxy))
