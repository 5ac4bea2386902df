"""``meshplane-agent gateway``: a gateway's proxy as a container (Istio's ``istio-proxy`` of
``istio-ingressgateway``/``istio-egressgateway``, a Deployment of its own; a docker-compose service), node type
``router``: Pilot gives it the listeners and routes of the Gateways whose ``selector`` matches its ``--labels``.

What the sidecar agent does (``agent.container_sidecar``), without what a sidecar needs only: no capture, no DNS
agent. It writes the bootstrap (``router~<ip>~<pod>.<namespace>~<namespace>.svc.<suffix>``, Istio's gateway node
id; admin on 127.0.0.1), follows ``--root-cert`` and ``--token-file`` (the projected token the kubelet refreshes
reaches Envoy through its file-based SDS document, ``agent.token_follower``: a gateway running longer than the
token's lifetime still gets its workload certificate and its ``credentialName`` certificates from Citadel), runs
Envoy, and serves Istio's gateway status port (15021): ``/healthz/ready`` answers 200 once Envoy's admin ``/ready``
does (Envoy initialized with its first listeners and clusters), the Deployment's readiness probe.

Runs as any user that can write ``--work-dir`` (Kubernetes: uid 1337, unprivileged; Envoy then binds the
Gateways' ports through the gateway Service's ``targetPort`` mapping, 80 -> 8080, as Istio's gateways).
"""

from __future__ import annotations

import argparse
import os

from agent.app_health import ProbeTarget
from agent.container_sidecar import SidecarError, add_proxy_arguments, proxy_bootstrap, proxy_launch_settings
from agent.proxy_supervision import supervise_proxy
from agent.sidecar_files import citadel_flags_problem
from agent.status_server import StatusServer
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.runner import sidecar_command

__all__ = ["GATEWAY_STATUS_PORT", "add_gateway_arguments", "run_gateway"]

GATEWAY_STATUS_PORT = 15021  # Istio's gateway health port (the gateway Service's status-port)


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    add_proxy_arguments(parser)
    parser.add_argument(
        "--status-port",
        type=int,
        default=GATEWAY_STATUS_PORT,
        help="/healthz/ready, 200 once Envoy is ready (%(default)s; 0 turns it off)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="Envoy worker threads unless its ProxyConfig sets them (%(default)s)"
    )


async def run_gateway(args: argparse.Namespace) -> None:
    """Until SIGTERM (returns) or until Envoy exits (raises ``SidecarError``)."""
    problem = citadel_flags_problem(args.citadel, args.token_file, args.root_cert)
    if problem is not None:
        raise SidecarError(problem)
    if args.concurrency < 1:
        raise SidecarError(f"--concurrency: must be >= 1, got {args.concurrency}")
    status = StatusServer({}, ProbeTarget(address=args.ip), port=args.status_port) if args.status_port else None
    bootstrap = proxy_bootstrap(args, proxy_type="router")
    launch = await proxy_launch_settings(args.pilot, bootstrap, default_concurrency=args.concurrency)
    envoy = sidecar_command(
        find_envoy_binary(), bootstrap, concurrency=launch.concurrency, log_level=args.envoy_log_level
    )
    exited = await supervise_proxy(
        bootstrap,
        [("envoy", envoy)],
        status=status,
        root_cert=args.root_cert,
        token_file=args.token_file,
        environments={"envoy": launch.process_environment(os.environ)},
    )
    if exited:
        raise SidecarError("; ".join(exited))
