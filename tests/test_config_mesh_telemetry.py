"""MeshConfig's telemetry fields and providers: what is read into MeshSettings, Istio's built-in providers, and
each unsupported value rejected at its line."""

from __future__ import annotations

import pytest

from pilot.config.mesh_config import MeshConfigError, parse_mesh_config
from pilot.config.mesh_telemetry_providers import (
    ISTIO_TEXT_LOG_FORMAT,
    FileAccessLogProvider,
    OpenTelemetryTracingProvider,
    PrometheusProvider,
    ZipkinTracingProvider,
)
from pilot.model.mesh_settings import DefaultProviders

P = "extensionProviders[0]"


def test_telemetry_fields_land_in_the_settings() -> None:
    text = """\
enableTracing: true
accessLogFile: /dev/stdout
accessLogFormat: "%RESPONSE_CODE%"
accessLogEncoding: TEXT
defaultConfig:
  tracing:
    sampling: 25.5
defaultProviders:
  metrics: [prometheus]
  tracing: [otel]
  accessLogging: [envoy]
extensionProviders:
- name: otel
  opentelemetry: {service: observability/collector.observability.svc.cluster.local, port: "4317", maxTagLength: 64}
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, enable64bitTraceId: true, path: /spans}
- name: file
  envoyFileAccessLog: {path: /tmp/a.log, logFormat: {text: "%DURATION%"}}
- name: prometheus
  prometheus: {}
"""
    settings = parse_mesh_config(text, "mesh.yaml").settings
    assert settings.default_providers == DefaultProviders(tracing=("otel",), access_logging=("envoy",))
    assert (settings.access_log_file, settings.access_log_format, settings.default_sampling) == (
        "/dev/stdout",
        "%RESPONSE_CODE%",
        25.5,
    )
    assert settings.extension_providers == (
        OpenTelemetryTracingProvider(
            name="otel", service="observability/collector.observability.svc.cluster.local", port=4317, max_tag_length=64
        ),
        ZipkinTracingProvider(
            name="zipkin",
            service="zipkin.istio-system.svc.cluster.local",
            port=9411,
            trace_id_128bit=False,
            path="/spans",
        ),
        FileAccessLogProvider(name="file", path="/tmp/a.log", text_format="%DURATION%\n"),
        PrometheusProvider(name="prometheus"),
    )


def test_istio_s_built_in_providers_exist_unless_a_name_is_taken() -> None:
    settings = parse_mesh_config("{}\n", "mesh.yaml").settings
    assert settings.extension_provider("envoy") == FileAccessLogProvider(name="envoy", path="/dev/stdout")
    assert settings.extension_provider("prometheus") == PrometheusProvider(name="prometheus")
    assert settings.default_sampling == 1.0 and settings.default_providers == DefaultProviders()
    mine = parse_mesh_config(
        "extensionProviders:\n- name: envoy\n  envoyFileAccessLog: {path: /tmp/e.log}\n", "mesh.yaml"
    ).settings
    assert mine.extension_provider("envoy") == FileAccessLogProvider(name="envoy", path="/tmp/e.log")
    assert ISTIO_TEXT_LOG_FORMAT.endswith("%ROUTE_NAME%\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accessLogEncoding: JSON\n", "mesh.yaml:1: accessLogEncoding: JSON: not supported by meshplane yet"),
        ("defaultProviders:\n  metrics: [stackdriver]\n", "mesh.yaml:2: defaultProviders.metrics: ['stackdriver']"),
        (
            "defaultConfig:\n  tracing:\n    zipkin: {address: z:9411}\n",
            "mesh.yaml:3: defaultConfig.tracing.zipkin: not",
        ),
        (
            "defaultConfig:\n  drainDuration: 5s\n",
            "mesh.yaml:2: defaultConfig.drainDuration: not supported by meshplane yet",
        ),
        (
            "extensionProviders:\n- name: o\n  opentelemetry: {service: c.o, port: 4317, http: {path: /v1}}\n",
            f"mesh.yaml:3: {P}.opentelemetry.http: not supported by meshplane yet",
        ),
        (
            "extensionProviders:\n- name: f\n  envoyFileAccessLog: {logFormat: {text: x}}\n",
            f"mesh.yaml:3: {P}.envoyFileAccessLog.path: required field is missing",
        ),
        (
            "extensionProviders:\n- name: metrics\n  prometheus: {}\n",
            f"mesh.yaml:3: {P}.prometheus: prometheus provider 'metrics': not supported by meshplane yet",
        ),
        (
            "extensionProviders:\n- name: als\n  envoyOtelAls: {service: c.o, port: 4317}\n",
            f"mesh.yaml:3: {P}.envoyOtelAls: not supported by meshplane yet",
        ),
    ],
    ids=[
        "json-encoding",
        "metrics-provider",
        "legacy-zipkin",
        "proxy-config",
        "otel-http",
        "file-no-path",
        "prometheus-renamed",
        "otel-als",
    ],
)
def test_rejected(text: str, expected: str) -> None:
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config(text, "mesh.yaml")
    messages = [str(error) for error in raised.value.errors]
    assert any(message.startswith(expected) for message in messages), messages
    assert len(messages) == 1, messages
