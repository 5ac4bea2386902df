"""``envoy-bootstrap``: write a sidecar's Envoy bootstrap, or write it and exec Envoy on it.

    envoy-bootstrap sidecar --workload reviews-v1 --address 127.0.0.21 [--output FILE]
    envoy-bootstrap run sidecar --workload reviews-v1 --address 127.0.0.21 [--log-level info] [-- ENVOY ARGS]

``run`` replaces itself with Envoy (``os.execv``), so a supervisor's signals reach Envoy directly.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from envoy_bootstrap.binary import EnvoyNotFoundError, find_envoy_binary
from envoy_bootstrap.bootstrap import (
    DEFAULT_PILOT_ADDRESS,
    XDS_MODES,
    BootstrapError,
    bootstrap_to_json,
    build_sidecar_bootstrap,
)
from pilot.generate.names import ADMIN_PORT

__all__ = ["build_parser", "main"]

ENVOY_LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")


def _add_sidecar_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", required=True, help="the WorkloadEntry name of this sidecar's workload")
    parser.add_argument("--namespace", default="default", help="the workload's namespace (default: %(default)s)")
    parser.add_argument("--address", default="127.0.0.1", help="the workload's IP (default: %(default)s)")
    parser.add_argument("--pilot", default=DEFAULT_PILOT_ADDRESS, help="Pilot's xDS address (default: %(default)s)")
    parser.add_argument("--xds-mode", choices=XDS_MODES, default="sotw", help="ADS flavour (default: %(default)s)")
    parser.add_argument("--domain-suffix", default="cluster.local", help="the mesh's DNS suffix (default: %(default)s)")
    parser.add_argument("--admin-port", type=int, default=ADMIN_PORT, help="Envoy admin port (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envoy-bootstrap", description="Envoy bootstraps for meshplane sidecars (Envoy gets the rest from Pilot)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sidecar = commands.add_parser("sidecar", help="write a sidecar bootstrap as JSON")
    _add_sidecar_arguments(sidecar)
    sidecar.add_argument("--output", "-o", default="-", help="file to write, '-' for stdout (default)")

    run = commands.add_parser(
        "run", help="write a bootstrap and exec Envoy on it", epilog="Arguments after '--' are passed to Envoy."
    )
    run_kinds = run.add_subparsers(dest="kind", required=True, metavar="KIND")
    run_sidecar = run_kinds.add_parser("sidecar", help="run a sidecar Envoy", epilog=run.epilog)
    _add_sidecar_arguments(run_sidecar)
    run_sidecar.add_argument(
        "--bootstrap-file", help="where to write the bootstrap (default: a per-workload file in the temp directory)"
    )
    run_sidecar.add_argument("--log-level", choices=ENVOY_LOG_LEVELS, default="info", help="(default: %(default)s)")
    run_sidecar.add_argument(
        "--concurrency", type=int, default=1, help="Envoy worker threads; a sidecar needs one (default: %(default)s)"
    )
    return parser


def _split_envoy_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    args = list(argv)
    if "--" in args:
        cut = args.index("--")
        return args[:cut], args[cut + 1 :]
    return args, []


def _bootstrap_json(args: argparse.Namespace) -> str:
    return bootstrap_to_json(
        build_sidecar_bootstrap(
            workload=args.workload,
            namespace=args.namespace,
            address=args.address,
            pilot=args.pilot,
            xds_mode=args.xds_mode,
            domain_suffix=args.domain_suffix,
            admin_port=args.admin_port,
        )
    )


def _default_bootstrap_file(args: argparse.Namespace) -> Path:
    """One file per user and sidecar identity: rewritten on each run instead of piling up in /tmp."""
    directory = Path(tempfile.gettempdir()) / f"envoy-bootstrap-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / f"{args.workload}.{args.namespace}-{args.address}-{args.admin_port}.json"


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _exec_envoy(args: argparse.Namespace, text: str, envoy_args: Sequence[str]) -> None:
    if args.concurrency < 1:
        raise BootstrapError(f"--concurrency: must be >= 1, got {args.concurrency}")
    binary = find_envoy_binary()
    path = Path(args.bootstrap_file) if args.bootstrap_file else _default_bootstrap_file(args)
    _write(path, text)
    command = [
        str(binary),
        "-c",
        str(path),
        "--disable-hot-restart",
        "--concurrency",
        str(args.concurrency),
        "--log-level",
        args.log_level,
        *envoy_args,
    ]
    print(f"envoy-bootstrap: exec {' '.join(command)}", file=sys.stderr, flush=True)
    os.execv(binary, command)


def main(argv: Sequence[str] | None = None) -> int:
    own_args, envoy_args = _split_envoy_args(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own_args)
    if envoy_args and args.command != "run":
        parser.error("arguments after '--' are for Envoy and only valid with 'run'")
    try:
        text = _bootstrap_json(args)
        if args.command == "sidecar":
            if args.output == "-":
                sys.stdout.write(text)
            else:
                _write(Path(args.output), text)
            return 0
        _exec_envoy(args, text, envoy_args)
    except (BootstrapError, EnvoyNotFoundError, OSError) as exc:
        print(f"envoy-bootstrap: error: {exc}", file=sys.stderr)
        return 2
    return 0  # not reached: execv does not return


if __name__ == "__main__":
    sys.exit(main())
