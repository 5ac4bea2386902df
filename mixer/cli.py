"""``mixer``: policy checks (Envoy ext_authz) and telemetry (Envoy gRPC access logs) for every sidecar.

Reads AccessList and RateLimit (``mixer.meshplane.io/v1``) and the registry (ServiceEntry, WorkloadEntry) from the
same config directory as Pilot, from the cluster (``--kubeconfig FILE`` or ``--in-cluster``: the CRDs, and the
pods of the Kubernetes service registry), or both; serves ``envoy.service.auth.v3.Authorization`` and
``envoy.service.accesslog.v3.AccessLogService`` on ``--grpc-address``, and ``/ready``, ``/metrics`` (Istio's
request metrics) and ``/graph`` on ``--monitor-address``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from meshplane.mixer_names import DEFAULT_GRPC_ADDRESS, DEFAULT_MONITOR_ADDRESS
from pilot.parse_ahead import ParseAhead, main_with_parse_ahead

if TYPE_CHECKING:
    from pilot.config.mesh_config import MeshNames

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from meshplane.kube_api import add_kube_arguments
    from meshplane.logs import add_logging_arguments
    from mixer.accesslog_service import DEFAULT_QUEUE_ENTRIES
    from pilot.cli_arguments import add_mesh_arguments, duration_argument

    parser = argparse.ArgumentParser(prog="mixer", description=__doc__)
    parser.add_argument("--config-dir", type=Path, default=None, help="the mesh's config directory (as Pilot's)")
    add_kube_arguments(parser, what="AccessLists, RateLimits, Istio's config and the pods (as Pilot)")
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
    parser.add_argument(
        "--quota-store",
        metavar="URL",
        help="keep RateLimit counters in this Redis, shared by every Mixer given the same store (several Mixers on "
        "one port or behind one Service count each limit once): redis://host[:port][/db]; default: in memory",
    )
    parser.add_argument(
        "--mesh-config",
        type=Path,
        default=None,
        help="Pilot's --mesh-config file: its rootNamespace and trustDomain win over the flags (read at start)",
    )
    add_mesh_arguments(parser)
    add_logging_arguments(parser)
    return parser


def _mesh_names(args: argparse.Namespace) -> MeshNames:
    """The names from the flags, overridden by the mesh config file's, as Pilot does."""
    from pilot.config.mesh_config import MeshNames, load_mesh_config

    flags = MeshNames(trust_domain=args.trust_domain, root_namespace=args.root_namespace)
    return load_mesh_config(args.mesh_config, defaults=flags).names if args.mesh_config is not None else flags


def main(argv: Sequence[str] | None = None) -> int:
    return main_with_parse_ahead(argv, _run)


def _run(argv: Sequence[str] | None, parse_ahead: ParseAhead) -> int:
    # imported once the parse worker runs: these imports (grpc, the Envoy protos, Mixer) are what it overlaps
    from meshplane.kube_api import kube_access_from_arguments
    from meshplane.logs import configure_logging_from_args
    from meshplane.serving import run_service
    from mixer.app import MixerOptions, run_mixer
    from pilot.config.mesh_config import MeshConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_queue < 1:
        parser.error("--log-queue must be at least 1")
    quota_store = None
    if args.quota_store is not None:
        from mixer.redis_client import parse_redis_url

        try:
            quota_store = parse_redis_url(args.quota_store)
        except ValueError as exc:
            parser.error(f"--quota-store: {exc}")
    kube = kube_access_from_arguments(args)
    if args.config_dir is None and kube is None:
        parser.error("a config source is needed: --config-dir DIR, --kubeconfig FILE or --in-cluster (or both)")
    configure_logging_from_args(args)
    try:
        names = _mesh_names(args)
    except MeshConfigError as exc:
        print(f"mixer: {exc}", file=sys.stderr)
        return 2
    options = MixerOptions(
        config_dir=args.config_dir,
        kube=kube,
        grpc_address=args.grpc_address,
        monitor_address=args.monitor_address,
        otlp_endpoint=args.otlp_endpoint,
        graph_window=args.graph_window,
        log_queue=args.log_queue,
        quota_store=quota_store,
        domain_suffix=args.domain_suffix,
        trust_domain=names.trust_domain,
        root_namespace=names.root_namespace,
    )
    # RuntimeError: the OTLP exporter cannot be imported (mixer.metrics says how to repair the install)
    return run_service(
        "mixer", lambda: run_mixer(options, parse_ahead=parse_ahead), errors=(FileNotFoundError, RuntimeError)
    )


if __name__ == "__main__":
    sys.exit(main())
