"""The administrator's subcommands: ``citadel token`` (mint a workload token) and ``citadel rotate-root``.

``citadel/cli.py`` adds these arguments to its subparsers and awaits ``run_token`` / ``run_rotate_root``; each
returns the process exit code: 0 done, 1 refused (the reason on stderr). ``citadel token`` writes the token, and
nothing else, to stdout, so that ``citadel token ... > token-file`` works; nothing else ever prints a key or token.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from citadel.ca import certificate_fingerprint
from citadel.ca_dir import PREVIOUS_ROOT_CERT, ROOT_CERT, TRUST_BUNDLE, load_or_create_token_key, rotate_root
from citadel.errors import CitadelError
from citadel.tokens import issue_token
from meshplane.durations import parse_duration
from meshplane.identity import DEFAULT_TRUST_DOMAIN

__all__ = ["add_rotate_root_arguments", "add_token_arguments", "run_rotate_root", "run_token"]

DEFAULT_TOKEN_TTL = "24h"


def _positive_duration(text: str) -> timedelta:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"duration {text!r} is too short: it must be at least 1s")
    return timedelta(seconds=seconds)


def _add_ca_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-dir", type=Path, required=True, help="Citadel's CA directory (the one it serves from)")
    parser.add_argument(
        "--trust-domain", default=DEFAULT_TRUST_DOMAIN, help=f"the mesh's trust domain ({DEFAULT_TRUST_DOMAIN})"
    )


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    """``citadel token --ca-dir DIR --namespace NS --service-account SA [--ttl 24h] [--trust-domain TD]``."""
    _add_ca_arguments(parser)
    parser.add_argument("--namespace", required=True, help="the workload's namespace")
    parser.add_argument("--service-account", required=True, help="the workload's service account")
    parser.add_argument(
        "--ttl",
        type=_positive_duration,
        default=_positive_duration(DEFAULT_TOKEN_TTL),
        help=f"how long the token is valid, a Go duration like 1h or 30m (default {DEFAULT_TOKEN_TTL})",
    )


async def run_token(args: argparse.Namespace) -> int:
    """Print a token for ``args.namespace``/``args.service_account``, signed with the CA directory's token key
    (created when absent, as Citadel would)."""
    try:
        key = load_or_create_token_key(args.ca_dir)
        token = issue_token(
            key,
            trust_domain=args.trust_domain,
            namespace=args.namespace,
            service_account=args.service_account,
            ttl=args.ttl,
        )
    except CitadelError as exc:
        print(f"citadel token: {exc.reason}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"citadel token: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def add_rotate_root_arguments(parser: argparse.ArgumentParser) -> None:
    """``citadel rotate-root --ca-dir DIR [--trust-domain TD]``."""
    _add_ca_arguments(parser)


async def run_rotate_root(args: argparse.Namespace) -> int:
    """Start a root rotation in ``args.ca_dir`` and say what happens next."""
    ca_dir: Path = args.ca_dir
    try:
        state = rotate_root(ca_dir, args.trust_domain)
    except CitadelError as exc:
        print(f"citadel rotate-root: {exc.reason}", file=sys.stderr)
        return 1
    lines = [
        f"new root {certificate_fingerprint(state.root)} in {ca_dir / ROOT_CERT}, valid until "
        f"{state.root.not_valid_after_utc:%Y-%m-%d}",
    ]
    if state.previous_root is not None:
        previous = certificate_fingerprint(state.previous_root)
        lines.append(f"previous root {previous} kept in {ca_dir / PREVIOUS_ROOT_CERT}")
    lines += [
        f"{ca_dir / TRUST_BUNDLE} now holds both roots",
        "the running Citadel will now put both roots in the trust bundle (ROOTCA), re-issue every workload "
        "certificate under the new root, then retire the previous root",
    ]
    print("\n".join(lines))
    return 0
