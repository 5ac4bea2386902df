"""``mixer --otlp-endpoint``: the same instruments are pushed over OTLP/HTTP to a collector."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from mixer.metrics import MixerMetrics
from mixer.telemetry import IstioTelemetry
from tests.mixer_builders import REVIEWS_REPORT


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_metrics_are_pushed_to_the_otlp_endpoint() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        metrics = MixerMetrics(otlp_endpoint=f"http://127.0.0.1:{server.server_port}/v1/metrics", otlp_interval=60)
        metrics.check_answered("denied", 0.001)
        telemetry = IstioTelemetry()
        metrics.add_producer(telemetry.metrics)
        telemetry.record_all([REVIEWS_REPORT, REVIEWS_REPORT])
        metrics.shutdown()  # exports what is pending
    finally:
        server.shutdown()
        server.server_close()
    assert _Collector.received, "nothing reached the collector"
    path, body = _Collector.received[-1]
    assert path == "/v1/metrics"
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    exported = {m.name: m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"mixer_checks", "istio_requests", "istio_request_duration_milliseconds"} <= set(exported)
    assert {"istio_request_bytes", "istio_response_bytes"} <= set(exported)
    (requests,) = exported["istio_requests"].sum.data_points
    assert requests.as_int == 2
    assert exported["istio_requests"].sum.is_monotonic
    labels = {attribute.key: attribute.value.string_value for attribute in requests.attributes}
    assert labels["destination_workload"] == "reviews-v1"
    assert labels["response_code"] == "200"
    (duration,) = exported["istio_request_duration_milliseconds"].histogram.data_points
    assert duration.count == 2
    assert duration.sum == 2 * REVIEWS_REPORT.duration_ms
    assert len(duration.bucket_counts) == len(duration.explicit_bounds) + 1
