"""``pilot``: serve Istio traffic config from a directory to Envoy sidecars over ADS."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pilot.parse_ahead import ParseAhead, main_with_parse_ahead

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from meshplane.logs import add_logging_arguments
    from pilot.cli_arguments import add_mesh_arguments, duration_argument

    parser = argparse.ArgumentParser(prog="pilot", description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True, help="directory of Istio YAML, watched for changes")
    parser.add_argument("--xds-address", default="127.0.0.1:15010", help="ADS gRPC listen address (Istio: 15010)")
    parser.add_argument(
        "--monitor-address", default="127.0.0.1:15014", help="/ready /metrics /debug/* listen address (Istio: 15014)"
    )
    parser.add_argument(
        "--debounce", type=duration_argument, default=0.1, help="quiet period before a push (default 100ms)"
    )
    parser.add_argument(
        "--debounce-max", type=duration_argument, default=1.0, help="longest a push waits for quiet (1s)"
    )
    parser.add_argument(
        "--mesh-config",
        type=Path,
        default=None,
        help="Istio MeshConfig YAML (outboundTrafficPolicy, rootNamespace, trustDomain, enableAutoMtls); its "
        "rootNamespace and trustDomain win over the flags",
    )
    add_mesh_arguments(parser)
    add_logging_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return main_with_parse_ahead(argv, _run)


def _run(argv: Sequence[str] | None, parse_ahead: ParseAhead) -> int:
    # imported once the parse worker runs: these imports (grpc, the Envoy protos, Pilot) are what it overlaps
    from meshplane.logs import configure_logging_from_args
    from meshplane.serving import run_service
    from pilot.app import PilotOptions, run_pilot
    from pilot.config.mesh_config import MeshConfigError

    args = build_parser().parse_args(argv)
    configure_logging_from_args(args)
    options = PilotOptions(
        config_dir=args.config_dir,
        xds_address=args.xds_address,
        monitor_address=args.monitor_address,
        debounce=args.debounce,
        debounce_max=args.debounce_max,
        domain_suffix=args.domain_suffix,
        trust_domain=args.trust_domain,
        root_namespace=args.root_namespace,
        mesh_config=args.mesh_config,
    )
    return run_service(
        "pilot", lambda: run_pilot(options, parse_ahead=parse_ahead), errors=(FileNotFoundError, MeshConfigError)
    )


if __name__ == "__main__":
    sys.exit(main())
