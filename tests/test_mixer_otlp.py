"""``mixer --otlp-endpoint``: the same instruments are pushed over OTLP/HTTP to a collector."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from mixer.metrics import MixerMetrics


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
        metrics.shutdown()  # exports what is pending
    finally:
        server.shutdown()
        server.server_close()
    assert _Collector.received, "nothing reached the collector"
    path, body = _Collector.received[-1]
    assert path == "/v1/metrics"
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    names = {m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "mixer_checks" in names
