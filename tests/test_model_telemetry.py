"""Which Telemetry applies to a workload and what the merge says (Istio's applicableTelemetries, mergeLogs,
mergeTracing, mergeMetrics): one per scope (root, namespace, workload), the later overriding, providers inherited,
per-side matches, MeshConfig defaults and fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from pilot.config.mesh_extension_providers import ExtensionProvider
from pilot.config.mesh_telemetry_providers import FileAccessLogProvider, OpenTelemetryTracingProvider
from pilot.config.types import (
    ConfigMeta,
    MetricsOverride,
    MetricTagOverride,
    StatusCodeFilter,
    Telemetry,
    TelemetryAccessLogging,
    TelemetryMetrics,
    TelemetryTracing,
    WorkloadMode,
)
from pilot.model import MeshSettings, build_snapshot
from pilot.model.mesh_settings import DefaultProviders
from pilot.model.telemetry import (
    DEFAULT_METRICS_PLAN,
    AccessLogChoice,
    access_logs,
    applicable_telemetries,
    metrics_plan,
    tracing,
)
from pilot.model.types import MeshSnapshot

MakeMeta = Callable[..., ConfigMeta]
CLIENT, SERVER = WorkloadMode.CLIENT, WorkloadMode.SERVER
APP = MappingProxyType({"app": "details"})
FILE = FileAccessLogProvider(name="file", path="/tmp/access.log")
ENVOY = FileAccessLogProvider(name="envoy", path="/dev/stdout")  # Istio's built-in provider
OTEL = OpenTelemetryTracingProvider(name="otel", service="collector.obs.svc.cluster.local", port=4317)


def telemetry(make_meta: MakeMeta, name: str, namespace: str = "default", **spec: object) -> Telemetry:
    return Telemetry(meta=make_meta("Telemetry", name, namespace), **spec)  # type: ignore[arg-type]


def mesh(
    *resources: Telemetry, providers: tuple[ExtensionProvider, ...] = (FILE, OTEL), **settings: object
) -> MeshSnapshot:
    return build_snapshot(
        {r.meta.key: r for r in resources},
        version=1,
        mesh=MeshSettings(extension_providers=providers, **settings),  # type: ignore[arg-type]
    )


def logs_on(*names: str) -> tuple[TelemetryAccessLogging, ...]:
    return (TelemetryAccessLogging(providers=names),)


def test_one_per_scope_root_then_namespace_then_workload(make_meta: MakeMeta) -> None:
    root_a = telemetry(make_meta, "a", "istio-system")
    root_b = telemetry(make_meta, "b", "istio-system")
    namespace = telemetry(make_meta, "ns")
    other_namespace = telemetry(make_meta, "other", "other")
    root_selector = telemetry(make_meta, "root-details", "istio-system", selector=APP)
    workload_a = telemetry(make_meta, "w-a", selector=APP)
    workload_b = telemetry(make_meta, "w-b", selector=APP)
    unmatched = telemetry(make_meta, "w-0", selector=MappingProxyType({"app": "reviews"}))
    snapshot = mesh(root_b, root_a, namespace, other_namespace, root_selector, workload_b, workload_a, unmatched)
    assert applicable_telemetries(snapshot, "default", APP) == (root_a, namespace, workload_a)
    assert applicable_telemetries(snapshot, "default", MappingProxyType({})) == (root_a, namespace)
    assert applicable_telemetries(snapshot, "istio-system", APP) == (root_a, root_selector)


def test_access_logs_the_workload_disables_what_the_mesh_enables(make_meta: MakeMeta) -> None:
    root = telemetry(make_meta, "mesh-default", "istio-system", access_logging=logs_on("envoy"))
    off = telemetry(
        make_meta,
        "disable-details-logging",
        selector=APP,
        access_logging=(TelemetryAccessLogging(providers=("envoy",), disabled=True),),
    )
    snapshot = mesh(root, off)
    assert access_logs(snapshot, "default", MappingProxyType({}), CLIENT) == (AccessLogChoice(provider=ENVOY),)
    assert access_logs(snapshot, "default", APP, CLIENT) == ()
    assert access_logs(snapshot, "default", APP, SERVER) == ()


def test_access_logs_inherit_providers_and_match_a_side(make_meta: MakeMeta) -> None:
    root = telemetry(make_meta, "mesh", "istio-system", access_logging=logs_on("file"))
    server_off = telemetry(
        make_meta,
        "ns",
        access_logging=(TelemetryAccessLogging(mode=SERVER, disabled=True),),  # no providers: the parent's (file)
    )
    snapshot = mesh(root, server_off)
    assert access_logs(snapshot, "default", APP, CLIENT) == (AccessLogChoice(provider=FILE),)
    assert access_logs(snapshot, "default", APP, SERVER) == ()


def test_access_log_filter_sticks_to_the_providers_it_names(make_meta: MakeMeta) -> None:
    errors = StatusCodeFilter(expression="response.code >= 400", op=">=", code=400)
    root = telemetry(
        make_meta, "mesh", "istio-system", access_logging=(TelemetryAccessLogging(providers=("file",), filter=errors),)
    )
    assert access_logs(mesh(root), "default", APP, CLIENT) == (AccessLogChoice(provider=FILE, filter=errors),)


def test_no_telemetry_logging_means_the_mesh_config_decides(make_meta: MakeMeta) -> None:
    assert access_logs(mesh(), "default", APP, CLIENT) is None
    defaults = DefaultProviders(access_logging=("file",))
    assert access_logs(mesh(default_providers=defaults), "default", APP, SERVER) == (AccessLogChoice(provider=FILE),)


def test_unknown_or_wrong_type_providers_configure_nothing(make_meta: MakeMeta) -> None:
    root = telemetry(make_meta, "mesh", "istio-system", access_logging=logs_on("nope", "otel"))
    assert access_logs(mesh(root), "default", APP, CLIENT) == ()


def test_tracing_later_scopes_override_sampling_and_tags(make_meta: MakeMeta) -> None:
    root = telemetry(
        make_meta,
        "mesh",
        "istio-system",
        tracing=(TelemetryTracing(providers=("otel",), random_sampling_percentage=100.0),),
    )
    zero = telemetry(make_meta, "w", selector=APP, tracing=(TelemetryTracing(random_sampling_percentage=0.0),))
    snapshot = mesh(root, zero, default_sampling=5.0)
    chosen = tracing(snapshot, "default", MappingProxyType({}), CLIENT)
    assert chosen is not None and (chosen.provider, chosen.sampling) == (OTEL, 100.0)
    chosen = tracing(snapshot, "default", APP, SERVER)
    assert chosen is not None and chosen.sampling == 0.0


def test_tracing_default_sampling_disabled_spans_and_no_provider(make_meta: MakeMeta) -> None:
    root = telemetry(make_meta, "mesh", "istio-system", tracing=(TelemetryTracing(providers=("otel",)),))
    chosen = tracing(mesh(root, default_sampling=2.5), "default", APP, CLIENT)
    assert chosen is not None and chosen.sampling == 2.5
    off = telemetry(make_meta, "ns", tracing=(TelemetryTracing(disable_span_reporting=True),))
    assert tracing(mesh(root, off), "default", APP, CLIENT) is None
    assert tracing(mesh(), "default", APP, CLIENT) is None
    assert tracing(mesh(default_providers=DefaultProviders(tracing=("otel",))), "default", APP, CLIENT) is not None


def test_metrics_overrides_merge_per_metric_and_side(make_meta: MakeMeta) -> None:
    remove = MetricTagOverride(tag="grpc_response_status", operation="REMOVE")
    upsert = MetricTagOverride(tag="destination_x", value="upstream_peer.labels['app'].value")
    root = telemetry(
        make_meta,
        "mesh",
        "istio-system",
        metrics=(TelemetryMetrics(overrides=(MetricsOverride(metric="REQUEST_COUNT", tag_overrides=(remove,)),)),),
    )
    workload = telemetry(
        make_meta,
        "w",
        selector=APP,
        metrics=(
            TelemetryMetrics(
                overrides=(
                    MetricsOverride(mode=CLIENT, tag_overrides=(upsert,)),
                    MetricsOverride(metric="REQUEST_SIZE", mode=SERVER, disabled=True),
                )
            ),
        ),
    )
    plan = metrics_plan(mesh(root, workload), "default", APP)
    assert dict(plan.client.metrics) == {
        "requests_total": (upsert, remove),
        "request_duration_milliseconds": (upsert,),
        "request_bytes": (upsert,),
        "response_bytes": (upsert,),
    }
    assert dict(plan.server.metrics) == {
        "requests_total": (remove,),
        "request_duration_milliseconds": (),
        "response_bytes": (),
    }
    assert metrics_plan(mesh(root), "other", MappingProxyType({})).server.metrics["requests_total"] == (remove,)
    assert metrics_plan(mesh(), "default", APP) is DEFAULT_METRICS_PLAN


def test_all_metrics_disabled_then_enabled_again(make_meta: MakeMeta) -> None:
    off = MetricsOverride(disabled=True)
    root = telemetry(make_meta, "mesh", "istio-system", metrics=(TelemetryMetrics(overrides=(off,)),))
    on = telemetry(make_meta, "ns", metrics=(TelemetryMetrics(overrides=(MetricsOverride(disabled=False),)),))
    assert metrics_plan(mesh(root), "default", APP).client.all_disabled
    plan = metrics_plan(mesh(root, on), "default", APP)
    assert not plan.client.all_disabled and not plan.server.all_disabled
    client_off = MetricsOverride(metric="REQUEST_COUNT", mode=CLIENT, disabled=True)
    only = telemetry(make_meta, "mesh", "istio-system", metrics=(TelemetryMetrics(overrides=(client_off,)),))
    plan = metrics_plan(mesh(only), "default", APP)
    assert "requests_total" not in plan.client.metrics and "requests_total" in plan.server.metrics


def test_tracing_entries_match_a_side(make_meta: MakeMeta) -> None:
    server_only = telemetry(
        make_meta,
        "mesh",
        "istio-system",
        tracing=(TelemetryTracing(mode=SERVER, providers=("otel",), random_sampling_percentage=50.0),),
    )
    snapshot = mesh(server_only)
    assert tracing(snapshot, "default", APP, CLIENT) is None
    chosen = tracing(snapshot, "default", APP, SERVER)
    assert chosen is not None and chosen.sampling == 50.0
