"""``mixer``: policy checks (Envoy ext_authz) and telemetry (Envoy gRPC access logs) for every sidecar.

Reads AccessList and RateLimit (``mixer.meshplane.io/v1``) and the registry (ServiceEntry, WorkloadEntry) from the
same config directory as Pilot; serves ``envoy.service.auth.v3.Authorization`` and
``envoy.service.accesslog.v3.AccessLogService`` on ``--grpc-address``, and ``/ready``, ``/metrics`` (Istio's
request metrics) and ``/graph`` on ``--monitor-address``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from meshplane.mixer_names import DEFAULT_GRPC_ADDRESS, DEFAULT_MONITOR_ADDRESS
from pilot.parse_ahead import ParseAhead, main_with_parse_ahead

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from meshplane.logs import add_logging_arguments
    from mixer.accesslog_service import DEFAULT_QUEUE_ENTRIES
    from pilot.cli_arguments import add_mesh_arguments, duration_argument

    parser = argparse.ArgumentParser(prog="mixer", description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True, help="the mesh's config directory (as Pilot's)")
    parser.add_argument(
        "--grpc-address", default=DEFAULT_GRPC_ADDRESS, help="ext_authz + access-log gRPC address (%(default)s)"
    )
    parser.add_argument(
        "--monitor-address", default=DEFAULT_MONITOR_ADDRESS, help="/ready /metrics /graph address (%(default)s)"
    )
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="also push the metrics over OTLP/HTTP, e.g. http://127.0.0.1:4318/v1/metrics",
    )
    parser.add_argument(
        "--graph-window", type=duration_argument, default=60.0, help="sliding window of /graph (default 60s)"
    )
    parser.add_argument(
        "--log-queue",
        type=int,
        default=DEFAULT_QUEUE_ENTRIES,
        metavar="ENTRIES",
        help="access-log entries held for processing; beyond that they are counted as dropped (%(default)s)",
    )
    add_mesh_arguments(parser)
    add_logging_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return main_with_parse_ahead(argv, _run)


def _run(argv: Sequence[str] | None, parse_ahead: ParseAhead) -> int:
    # imported once the parse worker runs: these imports (grpc, the Envoy protos, Mixer) are what it overlaps
    from meshplane.logs import configure_logging_from_args
    from meshplane.serving import run_service
    from mixer.app import MixerOptions, run_mixer

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_queue < 1:
        parser.error("--log-queue must be at least 1")
    configure_logging_from_args(args)
    options = MixerOptions(
        config_dir=args.config_dir,
        grpc_address=args.grpc_address,
        monitor_address=args.monitor_address,
        otlp_endpoint=args.otlp_endpoint,
        graph_window=args.graph_window,
        log_queue=args.log_queue,
        domain_suffix=args.domain_suffix,
        trust_domain=args.trust_domain,
        root_namespace=args.root_namespace,
    )
    # RuntimeError: the OTLP exporter cannot be imported (mixer.metrics says how to repair the install)
    return run_service(
        "mixer", lambda: run_mixer(options, parse_ahead=parse_ahead), errors=(FileNotFoundError, RuntimeError)
    )


if __name__ == "__main__":
    sys.exit(main())
