"""A tiny real OTLP/gRPC trace receiver for the tracing e2e scenario: the user's tracing backend, not a meshplane
component. It serves ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` (opentelemetry-proto's gRPC
service, as an OpenTelemetry Collector's OTLP receiver does) and appends every span it receives to a JSON-lines file:
``{"trace_id", "span_id", "name", "kind", "service", "attributes": {key: string value}}``.

    python -m e2e.otlp_collector --port 4317 --out spans.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["read_spans", "serve"]


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _attributes(attributes: Sequence[KeyValue]) -> dict[str, str]:
    return {attribute.key: _value(attribute.value) for attribute in attributes}


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out: Path) -> None:
        self.out = out

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        lines: list[str] = []
        for resource_spans in request.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    record = {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "name": span.name,
                        "kind": int(span.kind),
                        "service": service,
                        "attributes": _attributes(span.attributes),
                    }
                    lines.append(json.dumps(record, sort_keys=True))
        with self.out.open("a", encoding="utf-8") as file:
            file.writelines(line + "\n" for line in lines)
        return trace_service_pb2.ExportTraceServiceResponse()


async def serve(port: int, out: Path) -> None:
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Receiver(out), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"0.0.0.0:{port}")
    await server.start()
    await server.wait_for_termination()


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans received so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4317)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.out))


if __name__ == "__main__":
    main()
