"""``envoy-bootstrap``: write a sidecar's or a gateway's Envoy bootstrap, or write it and exec Envoy on it.

    envoy-bootstrap sidecar --workload reviews-v1 --address 10.89.0.21 [--output FILE]
    envoy-bootstrap run sidecar --workload reviews-v1 --address 10.89.0.21 [--log-level info] [-- ENVOY ARGS]
    envoy-bootstrap run gateway --workload istio-ingressgateway --namespace istio-system --address 10.89.0.80 \
        --label istio=ingressgateway

A gateway (Istio's node type ``router``) takes the same flags, plus ``--label KEY=VALUE`` (repeatable): its labels,
which Gateways' ``selector`` matches when the registry has no workload of that name (node metadata ``LABELS``). It
captures nothing: Envoy listens on the real ports of the Gateways' servers, on every address of its host or
network namespace (ports below 1024 need root or ``CAP_NET_BIND_SERVICE``).

The sidecar is a pod's, whose traffic iptables captures (``meshplane pod run`` writes its bootstrap through the same
``build_sidecar_bootstrap``): ``--address`` is the pod IP, admin listens on the pod's 127.0.0.1.

``run`` first asks Pilot for the proxy's ProxyConfig (``envoy_bootstrap.proxy_config``: Envoy's concurrency, more
environment variables; ``--concurrency`` when it sets none), then replaces itself with Envoy (``os.execve``), so a
supervisor's signals reach Envoy directly.

With ``--citadel HOST:PORT --token-file FILE --root-cert FILE`` the sidecar gets its identity from Citadel over
SDS (mutual TLS). The token is read once, now, and embedded in the bootstrap: bootstrap files are written with
mode 0600, and the token is never printed in messages (it is in the JSON written to stdout, if you ask for that).

With ``--mixer HOST:PORT`` the sidecar gets the ``mixer`` cluster (policy checks and telemetry).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envoy_bootstrap.binary import EnvoyNotFoundError, find_envoy_binary
from envoy_bootstrap.bootstrap import (
    DEFAULT_ADMIN_ADDRESS,
    DEFAULT_PILOT_ADDRESS,
    XDS_MODES,
    BootstrapError,
    bootstrap_to_json,
    build_sidecar_bootstrap,
    parse_host_port,
    write_citadel_trust,
)
from envoy_bootstrap.proxy_config import DEFAULT_TIMEOUT, ProxyConfigError, fetch_launch_settings
from envoy_bootstrap.runner import sidecar_command
from meshplane.names import ADMIN_PORT

__all__ = ["build_parser", "main"]

ENVOY_LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")


def _add_sidecar_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", required=True, help="the WorkloadEntry name of this sidecar's workload")
    parser.add_argument("--namespace", default="default", help="the workload's namespace (default: %(default)s)")
    parser.add_argument("--address", default="127.0.0.1", help="the workload's pod IP (default: %(default)s)")
    parser.add_argument("--pilot", default=DEFAULT_PILOT_ADDRESS, help="Pilot's xDS address (default: %(default)s)")
    parser.add_argument("--xds-mode", choices=XDS_MODES, default="sotw", help="ADS flavour (default: %(default)s)")
    parser.add_argument("--domain-suffix", default="cluster.local", help="the mesh's DNS suffix (default: %(default)s)")
    parser.add_argument("--admin-port", type=int, default=ADMIN_PORT, help="Envoy admin port (default: %(default)s)")
    parser.add_argument(
        "--mixer",
        metavar="HOST:PORT",
        help="Mixer's gRPC address, e.g. 127.0.0.1:9091: policy checks (ext_authz) and telemetry (access logs)",
    )
    parser.add_argument(
        "--admin-address", default=DEFAULT_ADMIN_ADDRESS, help="Envoy admin's address (default: %(default)s)"
    )
    citadel = parser.add_argument_group(
        "identity from Citadel (mutual TLS)",
        "All three or none. The token ends up inside the bootstrap JSON (Envoy has to send it): treat the bootstrap "
        "as a secret; files are written with mode 0600.",
    )
    citadel.add_argument("--citadel", metavar="HOST:PORT", help="Citadel's SDS address, e.g. 127.0.0.1:15012")
    citadel.add_argument(
        "--token-file", metavar="FILE", help="the workload's token (from `citadel token`), read at bootstrap time"
    )
    citadel.add_argument(
        "--root-cert",
        metavar="FILE",
        help="PEM root certificate(s) that Citadel's serving certificate chains to (<ca-dir>/trust-bundle.pem; "
        "followed when it changes, via <bootstrap>.citadel-trust.json written beside the bootstrap)",
    )


def _add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    _add_sidecar_arguments(parser)
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label of the gateway (repeatable), e.g. istio=ingressgateway: what Gateways' selectors match",
    )


def _add_run_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--bootstrap-file", help="where to write the bootstrap (default: a per-workload file in the temp directory)"
    )
    parser.add_argument("--log-level", choices=ENVOY_LOG_LEVELS, default="info", help="(default: %(default)s)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help=f"Envoy worker threads unless the proxy's ProxyConfig sets them; {what} (default: %(default)s)",
    )
    parser.add_argument(
        "--proxy-config-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for Pilot's answer with the proxy's ProxyConfig before giving up (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envoy-bootstrap", description="Envoy bootstraps for meshplane sidecars (Envoy gets the rest from Pilot)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sidecar = commands.add_parser("sidecar", help="write a sidecar bootstrap as JSON")
    _add_sidecar_arguments(sidecar)
    sidecar.add_argument("--output", "-o", default="-", help="file to write, '-' for stdout (default)")
    gateway = commands.add_parser("gateway", help="write a gateway (node type router) bootstrap as JSON")
    _add_gateway_arguments(gateway)
    gateway.add_argument("--output", "-o", default="-", help="file to write, '-' for stdout (default)")

    run = commands.add_parser(
        "run", help="write a bootstrap and exec Envoy on it", epilog="Arguments after '--' are passed to Envoy."
    )
    run_kinds = run.add_subparsers(dest="kind", required=True, metavar="KIND")
    run_sidecar = run_kinds.add_parser("sidecar", help="run a sidecar Envoy", epilog=run.epilog)
    _add_sidecar_arguments(run_sidecar)
    _add_run_arguments(run_sidecar, "a sidecar needs one")
    run_gateway = run_kinds.add_parser("gateway", help="run a gateway Envoy (node type router)", epilog=run.epilog)
    _add_gateway_arguments(run_gateway)
    _add_run_arguments(run_gateway, "more for a busy gateway")
    return parser


def _split_envoy_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    args = list(argv)
    if "--" in args:
        cut = args.index("--")
        return args[:cut], args[cut + 1 :]
    return args, []


def _citadel_arguments(args: argparse.Namespace, bootstrap_path: Path) -> dict[str, Any]:
    """``citadel``, ``token`` (read from its file) and ``citadel_trust`` for the bootstrap; {} without Citadel.

    The trust document (``write_citadel_trust``) is written beside the bootstrap, as ``<name>.citadel-trust.json``:
    through it Envoy follows the bundle ``--root-cert`` when Citadel rotates its root."""
    given = {"--citadel": args.citadel, "--token-file": args.token_file, "--root-cert": args.root_cert}
    if not any(given.values()):
        return {}
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise BootstrapError(f"{', '.join(missing)}: --citadel, --token-file and --root-cert go together")
    try:
        token = Path(args.token_file).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BootstrapError(f"--token-file: cannot read {args.token_file}: {exc}") from None
    if not token:
        raise BootstrapError(f"--token-file: {args.token_file} is empty")
    trust = write_citadel_trust(
        bootstrap_path.with_name(f"{bootstrap_path.stem}.citadel-trust.json"), Path(args.root_cert)
    )
    return {"citadel": args.citadel, "token": token, "citadel_trust": trust}


def _bootstrap_path(args: argparse.Namespace) -> Path:
    """Where the bootstrap goes (for stdout: where its companion files go, the per-user default place)."""
    if args.command in ("sidecar", "gateway") and args.output != "-":
        return Path(args.output)
    if args.command == "run" and args.bootstrap_file:
        return Path(args.bootstrap_file)
    return _default_bootstrap_file(args)


def _mixer_address(args: argparse.Namespace) -> str | None:
    if args.mixer is not None:
        parse_host_port(args.mixer, argument="--mixer")  # the flag's name in the error
    return args.mixer  # type: ignore[no-any-return]


def _is_gateway(args: argparse.Namespace) -> bool:
    return bool(args.command == "gateway" or (args.command == "run" and args.kind == "gateway"))


def _labels(args: argparse.Namespace) -> dict[str, str] | None:
    """``--label KEY=VALUE`` flags (gateways only) as a label map; None when none are given."""
    labels: dict[str, str] = {}
    for item in getattr(args, "label", []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BootstrapError(f"--label: expected KEY=VALUE, got {item!r}")
        labels[key] = value
    return labels or None


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
            mixer=_mixer_address(args),
            admin_address=args.admin_address,
            labels=_labels(args),
            proxy_type="router" if _is_gateway(args) else "sidecar",
            **_citadel_arguments(args, _bootstrap_path(args)),
        )
    )


def _default_bootstrap_file(args: argparse.Namespace) -> Path:
    """One file per user and sidecar identity: rewritten on each run instead of piling up in /tmp."""
    directory = Path(tempfile.gettempdir()) / f"envoy-bootstrap-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    status = directory.lstat()  # a directory someone else made first (or a link) must not receive a token
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise BootstrapError(
            f"{directory} is not a private directory of this user (owner uid {status.st_uid}, mode "
            f"{stat.S_IMODE(status.st_mode):o}); remove it or pass --bootstrap-file / --output"
        )
    kind = "gateway-" if _is_gateway(args) else ""
    return directory / f"{kind}{args.workload}.{args.namespace}-{args.address}-{args.admin_port}.json"


def _write(path: Path, text: str) -> None:
    """Atomically, readable by the owner only: a bootstrap with Citadel holds the workload's token."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    temporary.replace(path)


def _exec_envoy(args: argparse.Namespace, text: str, envoy_args: Sequence[str]) -> None:
    if args.concurrency < 1:
        raise BootstrapError(f"--concurrency: must be >= 1, got {args.concurrency}")
    binary = find_envoy_binary()
    path = _bootstrap_path(args)
    _write(path, text)
    launch = asyncio.run(
        fetch_launch_settings(args.pilot, path, default_concurrency=args.concurrency, timeout=args.proxy_config_timeout)
    )
    command = sidecar_command(binary, path, concurrency=launch.concurrency, log_level=args.log_level, extra=envoy_args)
    added = f" (ProxyConfig environment: {', '.join(launch.environment)})" if launch.environment else ""
    print(f"envoy-bootstrap: exec {' '.join(command)}{added}", file=sys.stderr, flush=True)
    os.execve(binary, command, launch.process_environment(os.environ))


def main(argv: Sequence[str] | None = None) -> int:
    own_args, envoy_args = _split_envoy_args(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own_args)
    if envoy_args and args.command != "run":
        parser.error("arguments after '--' are for Envoy and only valid with 'run'")
    try:
        text = _bootstrap_json(args)
        if args.command in ("sidecar", "gateway"):
            if args.output == "-":
                sys.stdout.write(text)
            else:
                _write(Path(args.output), text)
            return 0
        _exec_envoy(args, text, envoy_args)
    except (BootstrapError, EnvoyNotFoundError, OSError, ProxyConfigError) as exc:
        print(f"envoy-bootstrap: error: {exc}", file=sys.stderr)
        return 2
    return 0  # not reached: execv does not return


if __name__ == "__main__":
    sys.exit(main())
