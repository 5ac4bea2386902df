"""``meshplane-agent``: the commands that run in a pod beside the sidecar's Envoy (a small dispatcher).

meshplane-agent dns --pilot HOST:PORT --node-id ID [--listen 127.0.0.1:15053] [--upstream IP:PORT ...]
meshplane-agent sidecar --workload NAME --ip IP --pilot HOST:PORT [--mixer HOST:PORT]
                        [--citadel HOST:PORT --token-file FILE --root-cert FILE] ...   (a container's sidecar)
meshplane-agent gateway --workload POD --namespace NS --ip IP --labels istio=ingressgateway --pilot HOST:PORT ...
                                                                             (a gateway's proxy, status on 15021)
meshplane-agent status --ip POD_IP [--status-port 15020] [--app-probers JSON]   (the status port alone)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from agent import container_gateway, container_sidecar, dns_agent, status_server
from agent.app_probers import AppProbersError
from meshplane.logs import add_logging_arguments, configure_logging_from_args
from meshplane.names import ADMIN_PORT
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
    sidecar = commands.add_parser("sidecar", help="a container's sidecar: bootstrap, DNS agent and Envoy (uid 1337)")
    container_sidecar.add_sidecar_arguments(sidecar)
    add_logging_arguments(sidecar)
    sidecar.set_defaults(run=container_sidecar.run_sidecar)
    gateway = commands.add_parser(
        "gateway", help="a gateway's proxy (node type router): bootstrap and Envoy, status 15021"
    )
    container_gateway.add_gateway_arguments(gateway)
    add_logging_arguments(gateway)
    gateway.set_defaults(run=container_gateway.run_gateway)
    status = commands.add_parser("status", help="the status port alone: the app's rewritten probes, /healthz/ready")
    status.add_argument("--ip", required=True, help="the pod's address (the app's probes are performed on it)")
    status.add_argument("--admin-port", type=int, default=ADMIN_PORT, help="Envoy's admin port (%(default)s)")
    status_server.add_status_arguments(status)
    add_logging_arguments(status)
    status.set_defaults(run=status_server.run_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging_from_args(args)
    errors = (dns_agent.AgentError, container_sidecar.SidecarError, AppProbersError, OSError)
    return run_service(PROG, lambda: args.run(args), errors=errors)
