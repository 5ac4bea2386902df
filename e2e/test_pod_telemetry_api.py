"""Istio's Telemetry API through real Envoy sidecars in pods, one scenario per behaviour, in one world of its own
(Citadel, Mixer, a MeshConfig with an OpenTelemetry tracing provider, and a real OTLP/gRPC trace receiver,
``e2e.otlp_collector``, in a network namespace outside the mesh: the user's tracing backend):

- access logs: Istio's docs' ``mesh-default`` (the built-in ``envoy`` provider: Istio's text format on the
  proxy's standard output) logs each request on both sidecars; a workload Telemetry disabling it for reviews
  silences reviews' sidecar only, while Mixer still counts every request (its access-log stream is not the user's
  access logs);
- metrics: Istio's docs' ``custom-tags`` (peer labels upserted per side) and a namespace Telemetry REMOVing
  ``request_protocol``, then the docs' ``remove-client`` (REQUEST_COUNT off for the client side), as Mixer's
  Prometheus exposition shows them;
- tracing: sampling 100% sends both sidecars' spans (client and server, with the Telemetry's custom tag) to the
  collector; sampling 0% sends none;
- gateways: a Telemetry selecting the ingress gateway (``e2e.pod_gateway``, Istio's "Ingress Gateways" task) logs
  its requests on its standard output and sends its spans to the collector.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from e2e.conftest import POD_WORLD_LOOP
from e2e.otlp_collector import read_spans
from e2e.pod_gateway import docs_config, gateway_get, run_gateway, wait_for
from e2e.pod_mesh import REVIEWS_URL, PodMesh, pod_mesh
from e2e.pods import why_pods_cannot_run
from e2e.telemetry import requests_where

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

DOCS = Path(__file__).parent / "istio_docs"
COLLECTOR_HOST = "otel-collector.observability.svc.cluster.local"
COLLECTOR_PORT = 4317
MESH_CONFIG = f"""\
extensionProviders:
- name: otel-tracing
  opentelemetry:
    service: {COLLECTOR_HOST}
    port: {COLLECTOR_PORT}
"""
SPANS_FILE = "spans.jsonl"
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
REQUESTS = 3
GATEWAY_HOST = "httpbin.example.com"  # Istio's "Ingress Gateways" task (e2e/istio_docs/ingress-control)


def collector_entry(address: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: otel-collector, namespace: observability}}
spec:
  hosts: [{COLLECTOR_HOST}]
  location: MESH_EXTERNAL
  ports: [{{number: {COLLECTOR_PORT}, name: grpc-otlp, protocol: GRPC}}]
  resolution: STATIC
  endpoints: [{{address: {address}}}]
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def telemetry_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PodMesh]:
    directory = tmp_path_factory.mktemp("pods-telemetry")
    async with pod_mesh(
        directory, citadel=True, mixer=True, mixer_direct=True, mesh_config=MESH_CONFIG, versions=("v1",)
    ) as world:
        await world.config.apply("01-collector", collector_entry(world.addresses["external"]))
        await world.config.wait_synced()
        world.initial_files = world.initial_files | {"01-collector.yaml"}
        collector = [sys.executable, "-m", "e2e.otlp_collector", "--port", str(COLLECTOR_PORT)]
        await world.run_plain("external", [*collector, "--out", str(directory / SPANS_FILE)], uid=None)
        yield world


@pytest_asyncio.fixture(loop_scope="module")
async def world(request: pytest.FixtureRequest, telemetry_world: PodMesh) -> AsyncIterator[PodMesh]:
    yield telemetry_world
    await telemetry_world.reset()
    spans = telemetry_world.workdir / SPANS_FILE
    if spans.exists():
        spans.write_text("")


async def apply(world: PodMesh, *named: tuple[str, str]) -> None:
    for name, text in named:
        await world.config.apply(name, text)
    await synced(world)


async def synced(world: PodMesh) -> None:
    """Until the mesh is synced, and one request went through: a request right after a listener change may ride a
    connection of the old filter chain (productpage's sidecar pools its connections to reviews'; Envoy drains the
    old chain, asking the client to reconnect on the response), so the scenario's requests come after it."""
    configz = await world.config.wait_synced()
    assert configz.get("rejected") in (None, []), configz
    await get(world, "/warm-up", 1)
    await asyncio.sleep(1.0)  # its reports reach Mixer (sidecars flush every 250 ms) before a scenario counts


T = TypeVar("T")


async def eventually(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    """``read()`` once ``done`` says so (or the last read when ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.25)


def access_lines(world: PodMesh, pod: str, path: str) -> list[str]:
    """The lines of ``pod``'s Envoy output (its standard output: the ``envoy`` provider's /dev/stdout) for ``path``."""
    log = world.pod(pod).directory / "envoy.log"
    return [line for line in log.read_text(errors="replace").splitlines() if f'"GET {path} HTTP/1.1" 200' in line]


async def get(world: PodMesh, path: str, count: int = REQUESTS) -> None:
    responses = await world.responses(REVIEWS_URL.rstrip("/") + path, count)
    assert [r.status for r in responses] == [200] * count, [r.text for r in responses]


async def metrics_text(world: PodMesh) -> str:
    assert world.mixer is not None
    return await world.mixer.metrics_text()


async def counted(world: PodMesh, at_least: int, labels: dict[str, str], timeout: float = 10.0) -> int:
    """``istio_requests_total`` of the series with ``labels`` once it reaches ``at_least``, and again a little later
    (sidecars flush their access logs to Mixer every 250 ms), so that an overcount would show too."""
    deadline = time.monotonic() + timeout
    while requests_where(await metrics_text(world), **labels) < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    await asyncio.sleep(0.6)
    return requests_where(await metrics_text(world), **labels)


def telemetry(name: str, spec: str, namespace: str = "default") -> str:
    return (
        f"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n{spec}"
    )


# ------------------------------------------------------------------------------------------------ access logs


async def test_access_logs_follow_the_telemetry_of_each_workload_and_mixer_still_counts(world: PodMesh) -> None:
    disable_reviews = telemetry(
        "disable-reviews-logging",
        "  selector:\n    matchLabels:\n      app: reviews\n  accessLogging:\n  - providers:\n    - name: envoy\n"
        "    disabled: true\n",
    )
    mesh_default = (DOCS / "access-log" / "mesh-default.yaml").read_text()
    await apply(world, ("mesh-default", mesh_default), ("disable-reviews-logging", disable_reviews))
    served = {"reporter": "destination", "destination_app": "reviews"}
    before = requests_where(await metrics_text(world), **served)
    quiet = f"/quiet-{uuid.uuid4().hex}"
    await get(world, quiet)
    logged = await eventually(lambda: access_lines(world, "productpage", quiet), lambda x: len(x) >= REQUESTS)
    assert len(logged) == REQUESTS and all("outbound|9080|" in line for line in logged), logged
    assert await counted(world, before + REQUESTS, served) == before + REQUESTS  # Mixer's stream is still there
    assert access_lines(world, "reviews-v1", quiet) == []

    await world.config.remove("disable-reviews-logging")
    await synced(world)
    loud = f"/loud-{uuid.uuid4().hex}"
    await get(world, loud)
    inbound = await eventually(lambda: access_lines(world, "reviews-v1", loud), lambda x: len(x) >= REQUESTS)
    assert len(inbound) == REQUESTS and all("inbound|9080||" in line for line in inbound), inbound
    outbound = await eventually(lambda: access_lines(world, "productpage", loud), lambda x: len(x) >= REQUESTS)
    assert len(outbound) == REQUESTS, outbound


# ------------------------------------------------------------------------------------------------ metrics


async def test_metrics_overrides_upsert_remove_and_disable_in_mixer_s_exposition(world: PodMesh) -> None:
    remove_protocol = telemetry(
        "remove-protocol",
        "  metrics:\n  - providers:\n    - name: prometheus\n    overrides:\n"
        "    - match:\n        metric: REQUEST_COUNT\n      tagOverrides:\n"
        "        request_protocol:\n          operation: REMOVE\n",
    )
    custom_tags = (DOCS / "metrics-telemetry-api" / "custom-tags.yaml").read_text()
    await apply(world, ("custom-tags", custom_tags), ("remove-protocol", remove_protocol))
    client = {"reporter": "source", "destination_x": "reviews", "request_protocol": ""}
    server = {"reporter": "destination", "source_x": "productpage", "request_protocol": ""}
    text = await metrics_text(world)
    before = {"client": requests_where(text, **client), "server": requests_where(text, **server)}
    assert before == {"client": 1, "server": 1}  # the warm-up request, already with the overrides
    await get(world, "/metrics-tags")
    assert await counted(world, 1 + REQUESTS, client) == 1 + REQUESTS
    assert await counted(world, 1 + REQUESTS, server) == 1 + REQUESTS
    text = await metrics_text(world)
    assert 'destination_x="reviews"' in text and 'source_x="productpage"' in text
    assert 'request_protocol="http"' in text  # the requests before the overrides kept theirs

    await world.config.remove("custom-tags")
    await world.config.remove("remove-protocol")
    await apply(world, ("remove-client", (DOCS / "metrics-telemetry-api" / "remove-client.yaml").read_text()))
    sources = requests_where(await metrics_text(world), reporter="source")
    destinations = requests_where(await metrics_text(world), reporter="destination")
    await get(world, "/metrics-disabled")
    assert await counted(world, destinations + REQUESTS, {"reporter": "destination"}) == destinations + REQUESTS
    assert requests_where(await metrics_text(world), reporter="source") == sources  # REQUEST_COUNT off for CLIENT


# ------------------------------------------------------------------------------------------------ tracing


def spans_for(world: PodMesh, path: str) -> list[dict[str, Any]]:
    return [s for s in read_spans(world.workdir / SPANS_FILE) if path in s["attributes"].get("http.url", "")]


async def test_tracing_sampling_100_reports_both_sidecars_spans_and_0_reports_none(world: PodMesh) -> None:
    tracing = (
        "  tracing:\n  - providers:\n    - name: otel-tracing\n    randomSamplingPercentage: {sampling}\n"
        "    customTags:\n      team:\n        literal:\n          value: mesh\n"
    )
    await apply(world, ("mesh-tracing", telemetry("mesh-default", tracing.format(sampling=100), "istio-system")))
    traced = f"/traced-{uuid.uuid4().hex}"
    await get(world, traced)
    spans = await eventually(lambda: spans_for(world, traced), lambda x: len(x) >= 2 * REQUESTS, timeout=20)
    assert sorted(s["kind"] for s in spans) == [SPAN_KIND_SERVER] * REQUESTS + [SPAN_KIND_CLIENT] * REQUESTS, spans
    assert {s["service"] for s in spans} == {"productpage.default", "reviews.default"}
    assert all(s["attributes"].get("team") == "mesh" for s in spans), spans
    assert len({s["trace_id"] for s in spans}) == REQUESTS  # each request's client and server span: one trace

    await apply(world, ("mesh-tracing", telemetry("mesh-default", tracing.format(sampling=0), "istio-system")))
    untraced = f"/untraced-{uuid.uuid4().hex}"
    await get(world, untraced)
    marker = f"/traced-again-{uuid.uuid4().hex}"
    await apply(world, ("mesh-tracing", telemetry("mesh-default", tracing.format(sampling=100), "istio-system")))
    await get(world, marker, 1)  # flushed after the untraced ones: once it is in, they would have been too
    assert len(await eventually(lambda: spans_for(world, marker), lambda x: len(x) >= 2, timeout=20)) == 2
    assert spans_for(world, untraced) == []


# ------------------------------------------------------------------------------------------------ gateways


async def test_a_gateway_telemetry_logs_and_traces_the_gateway_s_requests(world: PodMesh) -> None:
    gateway_telemetry = telemetry(
        "ingressgateway",
        "  selector:\n    matchLabels:\n      istio: ingressgateway\n  accessLogging:\n  - providers:\n"
        "    - name: envoy\n  tracing:\n  - providers:\n    - name: otel-tracing\n    randomSamplingPercentage: 100\n",
        "istio-system",
    )
    await apply(world, ("ingress", docs_config("ingress-control")), ("gateway-telemetry", gateway_telemetry))
    async with run_gateway(world):
        url = f"http://{world.addresses['ingressgateway']}"
        await wait_for(
            lambda: gateway_get(world, f"{url}/status/200", GATEWAY_HOST)[0], lambda s: s == 200, world, "gateway"
        )
        path = f"/status/200?id={uuid.uuid4().hex}"
        status, body, _ = gateway_get(world, url + path, GATEWAY_HOST)
        assert status == 200, body
        log = world.workdir / "plain-ingressgateway.log"
        lines = await eventually(
            lambda: [x for x in log.read_text(errors="replace").splitlines() if f'"GET {path} HTTP/1.1" 200' in x],
            lambda x: len(x) >= 1,
        )
        assert len(lines) == 1 and f'"{GATEWAY_HOST}"' in lines[0], lines
        spans = await eventually(lambda: spans_for(world, path), lambda x: len(x) >= 2, timeout=20)
        by_service = {s["service"]: s["kind"] for s in spans}
        # the gateway's span, and the reviews sidecar's (no Telemetry traces the sidecars here: the gateway's
        # sampled trace context is honoured by the next hop, as Envoy does)
        assert by_service.get("istio-ingressgateway.istio-system") == SPAN_KIND_CLIENT, spans
