"""``meshplane-agent``: the commands that run in a pod beside the sidecar's Envoy (a small dispatcher).

meshplane-agent dns --pilot HOST:PORT --node-id ID [--listen 127.0.0.1:15053] [--upstream IP:PORT ...]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from agent import dns_agent
from meshplane.logs import add_logging_arguments, configure_logging_from_args
from meshplane.serving import run_service

__all__ = ["build_parser", "main"]

PROG = "meshplane-agent"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The sidecar agent of a meshplane pod.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dns = commands.add_parser("dns", help="the DNS proxy: mesh names from Pilot's name table, the rest upstream")
    dns_agent.add_dns_arguments(dns)
    add_logging_arguments(dns)
    dns.set_defaults(run=dns_agent.run_dns)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging_from_args(args)
    return run_service(PROG, lambda: args.run(args), errors=(dns_agent.AgentError, OSError))
