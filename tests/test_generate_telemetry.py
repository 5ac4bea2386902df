"""Telemetry on the generated HTTP connection managers, field by field: file access loggers (Istio's default
format, logFormat text and labels, the CEL status filter, MeshConfig accessLogFile), OpenTelemetry and Zipkin
tracing (collector cluster, sampling, tags), sidecar inbound/outbound and gateway HCMs, the Mixer stream kept in
every case, and real ``envoy --mode validate`` of a sidecar and a gateway with all of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.trace.v3.opentelemetry_pb2 import OpenTelemetryConfig
from envoy.config.trace.v3.zipkin_pb2 import ZipkinConfig
from envoy.extensions.access_loggers.file.v3.file_pb2 import FileAccessLog
from envoy.extensions.access_loggers.filters.cel.v3.cel_pb2 import ExpressionFilter
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.type.tracing.v3.custom_tag_pb2 import CustomTag
from google.protobuf import json_format

from meshplane import names
from pilot.config.mesh_config import parse_mesh_config
from pilot.config.mesh_telemetry_providers import ISTIO_TEXT_LOG_FORMAT
from pilot.config.parse import parse_config_text
from pilot.generate.filter_chains import HTTP_CONNECTION_MANAGER
from pilot.generate.registry import CLUSTER_TYPE, LISTENER_TYPE
from pilot.generate.telemetry_access_logs import CEL_FILTER, FILE_ACCESS_LOGGER
from pilot.generate.tracing import OPENTELEMETRY_TRACER, ZIPKIN_TRACER
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from tests.sidecar_builders import MIXER, listeners_by_port, only_hcm, unpack
from tests.source_builders import generated_type, validate_generated

ROUTER = "router~10.0.0.80~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"
COLLECTOR = "opentelemetry-collector.observability.svc.cluster.local"
OTEL_CLUSTER = f"outbound|4317||{COLLECTOR}"
ZIPKIN_CLUSTER = "outbound|9411||zipkin.istio-system.svc.cluster.local"
MESH_CONFIG = f"""\
enableTracing: true
defaultConfig:
  tracing:
    sampling: 10
extensionProviders:
- name: otel-tracing
  opentelemetry:
    port: 4317
    service: {COLLECTOR}
    maxTagLength: 99
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
- name: text-log
  envoyFileAccessLog:
    path: /var/log/access.log
    logFormat:
      text: "%REQ(:METHOD)% %RESPONSE_CODE%"
- name: json-log
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels:
        method: "%REQ(:METHOD)%"
        code: "%RESPONSE_CODE%"
"""
REGISTRY = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: details}}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP, targetPort: 9080}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: details}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: details}}
spec: {{address: 10.0.0.10, labels: {{app: details}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: collector, namespace: observability}}
spec:
  hosts: [{COLLECTOR}]
  location: MESH_INTERNAL
  ports: [{{number: 4317, name: grpc-otlp, protocol: GRPC}}]
  resolution: STATIC
  endpoints: [{{address: 10.0.0.40}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: zipkin, namespace: istio-system}}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9411, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 10.0.0.41}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: details, namespace: istio-system}}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{{route: [{{destination: {{host: details.default.svc.cluster.local}}}}]}}]
"""


def telemetry(spec: str, name: str = "mesh-default", namespace: str = "istio-system") -> str:
    return (
        f"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n{spec}"
    )


def mesh(*documents: str, mesh_config: str = MESH_CONFIG) -> MeshSnapshot:
    parsed = parse_config_text("\n---\n".join((REGISTRY, *documents)), "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    settings = parse_mesh_config(mesh_config, "mesh-config.yaml").settings
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1, mesh=settings)


def details(snapshot: MeshSnapshot) -> Proxy:
    node = parse_node_id("sidecar~10.0.0.10~details.default~default.svc.cluster.local", "", MIXER)
    return resolve_proxy(node, snapshot)


def gateway(snapshot: MeshSnapshot) -> Proxy:
    return resolve_proxy(parse_node_id(ROUTER, "", MIXER, {"istio": "ingressgateway"}), snapshot)


def hcms(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, HttpConnectionManager]:
    """``inbound:9080`` and ``outbound:9080`` of a sidecar."""
    by_port = listeners_by_port(proxy, snapshot)
    return {side: only_hcm(by_port[f"{side}:9080"]) for side in ("inbound", "outbound")}


def gateway_hcm(proxy: Proxy, snapshot: MeshSnapshot) -> HttpConnectionManager:
    [listener] = generated_type(LISTENER_TYPE, proxy, snapshot)
    return only_hcm(listener)


def file_logs(hcm: HttpConnectionManager) -> list[tuple[FileAccessLog, AccessLog]]:
    return [
        (unpack(FileAccessLog(), log.typed_config), log) for log in hcm.access_log if log.name == FILE_ACCESS_LOGGER
    ]


def mixer_logs(hcm: HttpConnectionManager) -> int:
    return sum(log.name == names.HTTP_GRPC_ACCESS_LOGGER for log in hcm.access_log)


# ------------------------------------------------------------------------------------------------ access logs


def test_the_docs_mesh_default_logs_with_istio_s_format_on_every_hcm() -> None:
    snapshot = mesh(telemetry("  accessLogging:\n  - providers:\n    - name: envoy\n"))
    for hcm in [*hcms(details(snapshot), snapshot).values(), gateway_hcm(gateway(snapshot), snapshot)]:
        [(config, log)] = file_logs(hcm)
        assert config.path == "/dev/stdout"
        assert config.log_format.text_format_source.inline_string == ISTIO_TEXT_LOG_FORMAT
        assert not log.HasField("filter")
        assert mixer_logs(hcm) == 1  # Mixer's stream stays: metrics and the graph depend on it


def test_a_workload_telemetry_disables_logs_but_not_mixer_s_stream() -> None:
    snapshot = mesh(
        telemetry("  accessLogging:\n  - providers:\n    - name: envoy\n"),
        telemetry(
            "  selector:\n    matchLabels:\n      app: details\n  accessLogging:\n  - providers:\n    - name: envoy\n"
            "    disabled: true\n",
            name="disable-details-logging",
            namespace="default",
        ),
    )
    for hcm in hcms(details(snapshot), snapshot).values():
        assert file_logs(hcm) == []
        assert mixer_logs(hcm) == 1
    assert len(file_logs(gateway_hcm(gateway(snapshot), snapshot))) == 1  # the gateway is not selected


def test_server_side_only_with_text_format_and_status_filter() -> None:
    snapshot = mesh(
        telemetry(
            "  accessLogging:\n  - providers:\n    - name: text-log\n    match:\n      mode: SERVER\n"
            "    filter:\n      expression: response.code >= 400\n"
        )
    )
    built = hcms(details(snapshot), snapshot)
    assert file_logs(built["outbound"]) == []
    [(config, log)] = file_logs(built["inbound"])
    assert config.path == "/var/log/access.log"
    assert config.log_format.text_format_source.inline_string == "%REQ(:METHOD)% %RESPONSE_CODE%\n"
    assert log.filter.extension_filter.name == CEL_FILTER
    expression = unpack(ExpressionFilter(), log.filter.extension_filter.typed_config)
    assert expression.expression == "response.code >= 400"


def test_labels_become_envoy_s_json_format() -> None:
    snapshot = mesh(telemetry("  accessLogging:\n  - providers:\n    - name: json-log\n"))
    [(config, _)] = file_logs(hcms(details(snapshot), snapshot)["inbound"])
    assert json_format.MessageToDict(config.log_format.json_format) == {
        "code": "%RESPONSE_CODE%",
        "method": "%REQ(:METHOD)%",
    }


def test_mesh_config_access_log_file_without_telemetry() -> None:
    snapshot = mesh(mesh_config="accessLogFile: /dev/stdout\naccessLogFormat: '%RESPONSE_CODE%'\n")
    for hcm in hcms(details(snapshot), snapshot).values():
        [(config, _)] = file_logs(hcm)
        assert (config.path, config.log_format.text_format_source.inline_string) == ("/dev/stdout", "%RESPONSE_CODE%\n")
    assert all(file_logs(h) == [] for h in hcms(details(mesh()), mesh()).values())


# ------------------------------------------------------------------------------------------------ tracing

OTEL_TRACING = (
    "  tracing:\n  - providers:\n    - name: otel-tracing\n    randomSamplingPercentage: 100.00\n    customTags:\n"
    "      provider:\n        literal:\n          value: otel\n"
    "      cluster_id:\n        environment:\n          name: ISTIO_META_CLUSTER_ID\n"
    "          defaultValue: Kubernetes\n"
    "      user:\n        header:\n          name: x-user\n          defaultValue: anonymous\n"
)


def test_opentelemetry_tracing_on_sidecar_and_gateway_hcms() -> None:
    snapshot = mesh(telemetry(OTEL_TRACING))
    expected_tags = [
        CustomTag(
            tag="cluster_id",
            environment=CustomTag.Environment(name="ISTIO_META_CLUSTER_ID", default_value="Kubernetes"),
        ),
        CustomTag(tag="provider", literal=CustomTag.Literal(value="otel")),
        CustomTag(tag="user", request_header=CustomTag.Header(name="x-user", default_value="anonymous")),
    ]
    for hcm, service_name in [
        *((h, "details.default") for h in hcms(details(snapshot), snapshot).values()),
        (gateway_hcm(gateway(snapshot), snapshot), "istio-ingressgateway.istio-system"),
    ]:
        tracing = hcm.tracing
        assert tracing.provider.name == OPENTELEMETRY_TRACER
        config = unpack(OpenTelemetryConfig(), tracing.provider.typed_config)
        assert config.grpc_service == GrpcService(
            envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=OTEL_CLUSTER, authority=COLLECTOR)
        )
        assert config.service_name == service_name
        assert (tracing.random_sampling.value, tracing.client_sampling.value, tracing.overall_sampling.value) == (
            100.0,
            100.0,
            100.0,
        )
        assert tracing.max_path_tag_length.value == 99
        assert list(tracing.custom_tags) == expected_tags


def test_zipkin_tracing_with_the_mesh_config_sampling() -> None:
    snapshot = mesh(telemetry('  tracing:\n    - providers:\n        - name: "zipkin"\n'))
    tracing = hcms(details(snapshot), snapshot)["inbound"].tracing
    assert tracing.provider.name == ZIPKIN_TRACER
    assert unpack(ZipkinConfig(), tracing.provider.typed_config) == ZipkinConfig(
        collector_cluster=ZIPKIN_CLUSTER,
        collector_endpoint="/api/v2/spans",
        collector_endpoint_version=ZipkinConfig.HTTP_JSON,
        trace_id_128bit=True,
        shared_span_context={"value": False},
        collector_hostname="zipkin.istio-system.svc.cluster.local",
    )
    assert tracing.random_sampling.value == 10.0  # defaultConfig.tracing.sampling
    assert tracing.max_path_tag_length.value == 256


@pytest.mark.parametrize(
    "spec",
    [
        "  tracing:\n  - providers:\n    - name: otel-tracing\n    disableSpanReporting: true\n",
        "  tracing:\n  - providers:\n    - name: nobody\n",
        "  tracing:\n  - randomSamplingPercentage: 50\n",  # no provider anywhere
    ],
    ids=["span-reporting-disabled", "unknown-provider", "no-provider"],
)
def test_no_tracing(spec: str) -> None:
    snapshot = mesh(telemetry(spec))
    assert not any(h.HasField("tracing") for h in hcms(details(snapshot), snapshot).values())


def test_a_collector_outside_the_registry_gives_no_tracing() -> None:
    config = MESH_CONFIG.replace(f"service: {COLLECTOR}", "service: missing.observability.svc.cluster.local")
    snapshot = mesh(telemetry(OTEL_TRACING), mesh_config=config)
    assert not hcms(details(snapshot), snapshot)["outbound"].HasField("tracing")


def test_a_collector_outside_the_sidecar_s_egress_scope_gives_no_tracing() -> None:
    """The proxy has no cluster for it (Envoy would reject the tracer): no tracing rather than a NACK."""
    sidecar = (
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\n"
        'spec:\n  egress:\n  - hosts: ["./*"]\n'
    )
    snapshot = mesh(telemetry(OTEL_TRACING), sidecar)
    clusters = {c.name for c in generated_type(CLUSTER_TYPE, details(snapshot), snapshot)}
    assert OTEL_CLUSTER not in clusters
    assert not any(h.HasField("tracing") for h in hcms(details(snapshot), snapshot).values())
    with_collector = sidecar.replace('["./*"]', f'["./*", "observability/{COLLECTOR}"]')
    snapshot = mesh(telemetry(OTEL_TRACING), with_collector)
    assert all(h.HasField("tracing") for h in hcms(details(snapshot), snapshot).values())


# ------------------------------------------------------------------------------------------------ real Envoy


def test_real_envoy_accepts_a_sidecar_and_a_gateway_with_logs_filters_and_tracing(tmp_path: Path) -> None:
    snapshot = mesh(
        telemetry(OTEL_TRACING),
        telemetry(
            "  accessLogging:\n  - providers:\n    - name: text-log\n    - name: json-log\n    - name: envoy\n"
            "    filter:\n      expression: response.code >= 400\n",
            name="ns",
            namespace="default",
        ),
        telemetry(
            '  tracing:\n    - providers:\n        - name: "zipkin"\n'
            "  accessLogging:\n  - providers:\n    - name: envoy\n",
            name="gw",
        ),
    )
    for name, proxy in (("sidecar", details(snapshot)), ("gateway", gateway(snapshot))):
        (tmp_path / name).mkdir()
        listeners = validate_generated(tmp_path / name, proxy, snapshot)[LISTENER_TYPE]
        assert any(only_hcm_or_none(x) for x in listeners), name


def only_hcm_or_none(listener: object) -> bool:
    """Whether some HCM of the listener traces (the config validated is the one with Telemetry on it)."""
    for chain in getattr(listener, "filter_chains", ()):
        for network in chain.filters:
            if network.name == HTTP_CONNECTION_MANAGER:
                return unpack(HttpConnectionManager(), network.typed_config).HasField("tracing")
    return False


def test_the_json_labels_are_canonical() -> None:
    snapshot = mesh()
    [provider] = [p for p in snapshot.mesh.extension_providers if p.name == "json-log"]
    assert json.loads(provider.json_labels) == {"code": "%RESPONSE_CODE%", "method": "%REQ(:METHOD)%"}  # type: ignore[attr-defined]
