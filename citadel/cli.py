"""``citadel``: the mesh's CA. Serves workload certificates over SDS and a CSR API; mints tokens; rotates the root.

citadel --ca-dir DIR [--trust-domain cluster.local] [--sds-address 127.0.0.1:15012]
        [--monitor-address 127.0.0.1:15019] [--cert-ttl 24h] [--rotation-fraction 0.5] [--key-type ecdsa|rsa]
        [--kubeconfig FILE | --in-cluster] [--token-audience istio-ca] [--token-review-cache-ttl 1m]
        [--no-root-cert-configmaps | --namespace-selector LABELS] [--ca-secret NAMESPACE/NAME | --no-ca-secret]
        [--credentials-dir DIR | --no-credential-secrets]
citadel token --ca-dir DIR --namespace NS --service-account SA [--ttl 24h]
citadel rotate-root --ca-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeAlias

from citadel.ca_secret import DEFAULT_CA_SECRET_NAME, SecretRef, default_ca_secret
from citadel.commands import add_rotate_root_arguments, add_token_arguments, run_rotate_root, run_token
from citadel.errors import CitadelError
from citadel.kube_tokens import DEFAULT_TOKEN_AUDIENCE
from citadel.profiling import profiled
from citadel.server import CitadelOptions, run_citadel
from meshplane.durations import parse_duration
from meshplane.identity import DEFAULT_TRUST_DOMAIN
from meshplane.kube_api import add_kube_arguments, kube_access_from_arguments
from meshplane.logs import add_logging_arguments, configure_logging, configure_logging_from_args
from meshplane.serving import run_service

__all__ = ["build_parser", "main"]

_AddArguments: TypeAlias = Callable[[argparse.ArgumentParser], None]
_Run: TypeAlias = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
_COMMANDS: dict[str, tuple[_AddArguments, _Run, str]] = {
    "token": (add_token_arguments, run_token, "print a workload token for a namespace and service account"),
    "rotate-root": (add_rotate_root_arguments, run_rotate_root, "start a root rotation (the running Citadel ends it)"),
}


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must not be negative")
    return seconds


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be positive")
    return seconds


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1 (exclusive)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citadel",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands: " + "; ".join(f"citadel {name} -h: {help_}" for name, (_, _, help_) in _COMMANDS.items()),
    )
    parser.add_argument("--ca-dir", type=Path, required=True, help="CA directory (a root is created there if empty)")
    parser.add_argument("--trust-domain", default=DEFAULT_TRUST_DOMAIN, help=f"({DEFAULT_TRUST_DOMAIN})")
    parser.add_argument("--sds-address", default="127.0.0.1:15012", help="SDS + CSR gRPC (TLS) listen address")
    parser.add_argument("--monitor-address", default="127.0.0.1:15019", help="/ready /metrics /debug/sdsz address")
    parser.add_argument("--cert-ttl", type=_positive_duration, default=24 * 3600.0, help="workload cert TTL (24h)")
    parser.add_argument(
        "--rotation-fraction", type=_fraction, default=0.5, help="re-issue after this part of the lifetime (0.5)"
    )
    parser.add_argument("--key-type", choices=("ecdsa", "rsa"), default="ecdsa", help="workload key: P-256 or RSA 2048")
    parser.add_argument(
        "--root-rotation-grace", type=_duration, default=2.0, help="wait after each root-rotation phase is ACKed (2s)"
    )
    parser.add_argument(
        "--root-rotation-timeout", type=_positive_duration, default=30.0, help="longest a phase waits for ACKs (30s)"
    )
    parser.add_argument(
        "--root-poll-interval", type=_positive_duration, default=1.0, help="how often the CA directory is read (1s)"
    )
    add_kube_arguments(parser, what="service-account tokens (TokenReview) and namespaces (istio-ca-root-cert)")
    parser.add_argument(
        "--token-audience",
        default=DEFAULT_TOKEN_AUDIENCE,
        help=f"the audience Kubernetes tokens must have, as Istio's TOKEN_AUDIENCES ({DEFAULT_TOKEN_AUDIENCE})",
    )
    parser.add_argument(
        "--token-review-cache-ttl",
        type=_duration,
        default=60.0,
        help="reuse a successful TokenReview this long, never past the token's exp (1m; 0: review every call)",
    )
    parser.add_argument(
        "--no-root-cert-configmaps",
        dest="root_cert_configmaps",
        action="store_false",
        help="with Kubernetes access, do not keep the istio-ca-root-cert ConfigMap in every namespace",
    )
    parser.add_argument(
        "--namespace-selector",
        default="",
        metavar="LABELS",
        help="a label selector (app=x,env!=dev): only these namespaces get istio-ca-root-cert (default: all)",
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument(
        "--ca-secret",
        type=_secret_ref,
        default=None,
        metavar="NAMESPACE/NAME",
        help="with Kubernetes access, keep the self-signed CA in this Secret, as istiod keeps istio-ca-secret: "
        f"loaded at start, created when absent, updated after rotate-root (--in-cluster: <pod namespace>/"
        f"{DEFAULT_CA_SECRET_NAME}; a plugged-in CA in --ca-dir wins)",
    )
    secret.add_argument(
        "--no-ca-secret", action="store_true", help="--in-cluster: keep the CA in --ca-dir only (lost with the pod)"
    )
    credentials = parser.add_mutually_exclusive_group()
    credentials.add_argument(
        "--credentials-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="gateway credentials (Gateway tls.credentialName over SDS) from DIR/<namespace>/<name>/{tls.crt,tls.key,"
        "ca.crt}, followed as it changes (default with Kubernetes access: the Secrets of every namespace)",
    )
    credentials.add_argument(
        "--no-credential-secrets",
        dest="credential_secrets",
        action="store_false",
        help="with Kubernetes access, do not read gateway credentials from Secrets (gateways get none)",
    )
    add_logging_arguments(parser)
    return parser


def _secret_ref(text: str) -> SecretRef:
    try:
        return SecretRef.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _ca_secret(args: argparse.Namespace) -> SecretRef | None:
    """The Secret the CA is kept in: ``--ca-secret``, or in a pod its namespace's istio-ca-secret."""
    if args.no_ca_secret:
        return None
    if args.ca_secret is not None:
        ref: SecretRef = args.ca_secret
        return ref
    return default_ca_secret() if args.in_cluster else None


def _run_command(name: str, argv: Sequence[str]) -> int:
    add_arguments, run, help_ = _COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"citadel {name}", description=help_)
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(level="warning")  # stdout is the command's output (a token): logs go to stderr
    return asyncio.run(run(args))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in _COMMANDS:
        return _run_command(arguments[0], arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.ca_secret is not None and args.kubeconfig is None and not args.in_cluster:
        parser.error("--ca-secret needs Kubernetes access: --kubeconfig FILE or --in-cluster")
    configure_logging_from_args(args)

    async def serve() -> None:
        options = CitadelOptions(
            ca_dir=args.ca_dir,
            trust_domain=args.trust_domain,
            sds_address=args.sds_address,
            monitor_address=args.monitor_address,
            cert_ttl=timedelta(seconds=args.cert_ttl),
            rotation_fraction=args.rotation_fraction,
            key_type=args.key_type,
            root_rotation_grace=args.root_rotation_grace,
            root_rotation_ack_timeout=args.root_rotation_timeout,
            root_poll_interval=args.root_poll_interval,
            kube=kube_access_from_arguments(args),
            token_audience=args.token_audience,
            token_review_cache_ttl=timedelta(seconds=args.token_review_cache_ttl),
            root_cert_configmaps=args.root_cert_configmaps,
            namespace_selector=args.namespace_selector,
            ca_secret=_ca_secret(args),
            credentials_dir=args.credentials_dir,
            credential_secrets=args.credential_secrets,
        )
        await run_citadel(options)

    with profiled():  # CITADEL_PROFILE=FILE: a cProfile of the event loop, written at exit
        return run_service("citadel", serve, errors=(CitadelError, OSError, ValueError))  # CitadelError: its reason


if __name__ == "__main__":
    sys.exit(main())
