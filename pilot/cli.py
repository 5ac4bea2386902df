"""``pilot``: serve Istio traffic config from a directory to Envoy sidecars over ADS."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pilot.app import PilotOptions, run_pilot
from pilot.config import parse_duration
from pilot.config.validate_names import dns1123_label_error
from pilot.logs import configure_logging
from pilot.model import DEFAULT_DOMAIN_SUFFIX, DEFAULT_ROOT_NAMESPACE, DEFAULT_TRUST_DOMAIN

__all__ = ["main"]

_TRUST_DOMAIN = re.compile(r"^[a-z0-9.\-_]+$")  # what citadel.identity accepts in a SPIFFE ID


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _trust_domain(text: str) -> str:
    if not _TRUST_DOMAIN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a trust domain (lowercase letters, digits, '.', '-', '_')")
    return text


def _namespace(text: str) -> str:
    message = dns1123_label_error(text, "namespace")
    if message is not None:
        raise argparse.ArgumentTypeError(message)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pilot", description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True, help="directory of Istio YAML, watched for changes")
    parser.add_argument("--xds-address", default="127.0.0.1:15010", help="ADS gRPC listen address (Istio: 15010)")
    parser.add_argument(
        "--monitor-address", default="127.0.0.1:15014", help="/ready /metrics /debug/* listen address (Istio: 15014)"
    )
    parser.add_argument("--debounce", type=_duration, default=0.1, help="quiet period before a push (default 100ms)")
    parser.add_argument("--debounce-max", type=_duration, default=1.0, help="longest a push waits for quiet (1s)")
    parser.add_argument("--domain-suffix", default=DEFAULT_DOMAIN_SUFFIX, help="cluster domain (cluster.local)")
    parser.add_argument(
        "--trust-domain",
        default=DEFAULT_TRUST_DOMAIN,
        type=_trust_domain,
        help="SPIFFE trust domain of workload identities, as Citadel's --trust-domain (default: %(default)s)",
    )
    parser.add_argument(
        "--root-namespace",
        default=DEFAULT_ROOT_NAMESPACE,
        type=_namespace,
        help="namespace whose PeerAuthentication without selector applies to the whole mesh (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", help="log JSON lines instead of key=value")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(level=args.log_level, json=args.log_json)
    options = PilotOptions(
        config_dir=args.config_dir,
        xds_address=args.xds_address,
        monitor_address=args.monitor_address,
        debounce=args.debounce,
        debounce_max=args.debounce_max,
        domain_suffix=args.domain_suffix,
        trust_domain=args.trust_domain,
        root_namespace=args.root_namespace,
    )
    try:
        asyncio.run(run_pilot(options))
    except FileNotFoundError as exc:
        print(f"pilot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
