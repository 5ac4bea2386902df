"""``meshplane-agent sidecar``: a pod's sidecar as a container of its own (docker-compose), in the network namespace
of its app's container (``network_mode: "service:<app>"``), after an init container installed the capture
(``meshplane capture install --redirect-dns``, the only step with NET_ADMIN, as Istio's ``istio-init``).

Runs as the proxy's uid (1337), which the capture excludes: writes the bootstrap (``agent.sidecar_files``: Pilot,
Mixer and Citadel at their own addresses on the compose network, no relay), starts the DNS agent (``meshplane-agent
dns`` on 127.0.0.1:15053, names outside the mesh to ``--dns-upstream``, Docker's resolver 127.0.0.11 by default)
and Envoy, and keeps the sidecar's copy of the trust bundle in step with ``--root-cert`` (``follow_root_cert``) and
the token Envoy sends Citadel in step with ``--token-file`` (``agent.token_follower``: a refreshed projected token
reaches Envoy without a restart), and serves the status port (``agent.status_server``, 15020: the app's probes the
injector rewrote, from ``$ISTIO_KUBE_APP_PROBERS``, performed on the pod's ``--ip``; ``/healthz/ready``). When
Envoy or the DNS agent exits, or on SIGTERM, it stops the rest and exits: Docker sees the sidecar end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import structlog

from agent.app_health import ProbeTarget
from agent.app_probers import AppProbersError
from agent.capture import DOCKER_RESOLVER
from agent.dns_upstream import read_resolv_conf
from agent.pod import follow_root_cert
from agent.pod_cli import parse_labels
from agent.pod_dns import agent_command, resolv_conf
from agent.sidecar_files import ROOT_CERT_COPY, SidecarFilesError, citadel_flags_problem, write_sidecar_bootstrap
from agent.status_server import StatusServer, add_status_arguments, probers_from_arguments
from agent.token_follower import follow_token
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import XDS_MODES, sidecar_node_id
from envoy_bootstrap.processes import stop_process
from envoy_bootstrap.runner import sidecar_command
from meshplane.names import PROXY_UID
from meshplane.serving import stop_on_signals

__all__ = ["SidecarError", "add_sidecar_arguments", "run_sidecar"]

log = structlog.get_logger(__name__)

DEFAULT_WORK_DIR = Path("/var/lib/istio/proxy")


class SidecarError(RuntimeError):
    """A bad flag, a file the sidecar cannot read, or Envoy/the DNS agent exited; the message says which."""


def add_sidecar_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", required=True, help="the WorkloadEntry's name (the sidecar's node id)")
    parser.add_argument("--namespace", default="default", help="the workload's namespace (%(default)s)")
    parser.add_argument("--ip", required=True, help="the workload's address (the WorkloadEntry's)")
    parser.add_argument("--service-account", default="default", help="the workload's service account")
    parser.add_argument("--labels", default="", help="the workload's labels, k=v,...")
    parser.add_argument("--pilot", required=True, metavar="HOST:PORT", help="Pilot's xDS address")
    parser.add_argument("--mixer", metavar="HOST:PORT", help="Mixer's gRPC address (ext_authz, access logs)")
    parser.add_argument("--citadel", metavar="HOST:PORT", help="Citadel's SDS address (with the next two)")
    parser.add_argument("--token-file", type=Path, help="the workload's token (from `citadel token`)")
    parser.add_argument("--root-cert", type=Path, help="Citadel's trust bundle, followed when it changes")
    parser.add_argument("--domain-suffix", default="cluster.local", help="(%(default)s)")
    parser.add_argument("--xds-mode", choices=XDS_MODES, default="sotw", help="(%(default)s)")
    upstreams = parser.add_mutually_exclusive_group()
    upstreams.add_argument(
        "--dns-upstream", action="append", default=None, metavar="IP[:PORT]",
        help=f"a resolver for names outside the mesh (repeatable; default {DOCKER_RESOLVER}, Docker's)",
    )  # fmt: skip
    upstreams.add_argument(
        "--dns-upstreams-from", type=Path, metavar="RESOLV_CONF",
        help="the resolvers are the nameservers of this file, read at start (Kubernetes: the pod's own "
        "/etc/resolv.conf, the cluster DNS or what the kubelet gives without it; none: outside names SERVFAIL)",
    )  # fmt: skip
    parser.add_argument("--no-dns", action="store_true", help="no DNS agent (the capture was installed without DNS)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="bootstrap and copies (%(default)s)")
    parser.add_argument("--envoy-log-level", default="info", help="(%(default)s)")
    add_status_arguments(parser)


def _check(args: argparse.Namespace) -> None:
    if os.getuid() != PROXY_UID:
        raise SidecarError(f"runs as uid {PROXY_UID} (the capture lets only its traffic out), not {os.getuid()}")
    problem = citadel_flags_problem(args.citadel, args.token_file, args.root_cert)
    if problem is not None:
        raise SidecarError(problem)


def _status_server(args: argparse.Namespace) -> StatusServer | None:
    """The status port, or None with ``--status-port 0`` (and no probers)."""
    try:
        probers = probers_from_arguments(args)
    except AppProbersError as exc:
        raise SidecarError(str(exc)) from None
    if not args.status_port:
        return None
    return StatusServer(probers, ProbeTarget(address=args.ip), port=args.status_port)


def _bootstrap(args: argparse.Namespace) -> Path:
    try:
        return write_sidecar_bootstrap(
            args.work_dir,
            workload=args.workload,
            namespace=args.namespace,
            address=args.ip,
            domain_suffix=args.domain_suffix,
            pilot=args.pilot,
            mixer=args.mixer,
            xds_mode=args.xds_mode,
            service_account=args.service_account,
            labels=parse_labels(args.labels),
            citadel=args.citadel,
            token_file=args.token_file,
            root_cert=args.root_cert,
            follow_token=args.token_file is not None,
        )
    except SidecarFilesError as exc:
        raise SidecarError(str(exc)) from None


def _upstreams(args: argparse.Namespace) -> list[str]:
    """The DNS agent's resolvers. Its own queries are never captured (uid 1337) and it listens on 15053, so a
    loopback nameserver of the pod's resolv.conf cannot loop back to it."""
    if args.dns_upstreams_from is not None:
        return [str(server) for server in read_resolv_conf(args.dns_upstreams_from).nameservers]
    return args.dns_upstream or [str(DOCKER_RESOLVER)]


def _dns_command(args: argparse.Namespace) -> list[str]:
    upstreams = _upstreams(args)
    agent_resolv = args.work_dir / "agent-resolv.conf"  # the search list and the real upstreams only
    agent_resolv.write_text(resolv_conf(args.namespace, args.domain_suffix, upstreams, loopback_fallback=False))
    node_id = sidecar_node_id(
        workload=args.workload, namespace=args.namespace, address=args.ip, domain_suffix=args.domain_suffix
    )
    return agent_command(pilot=args.pilot, node_id=node_id, resolv=agent_resolv, upstreams=upstreams)


async def _start(name: str, argv: list[str]) -> tuple[str, asyncio.subprocess.Process]:
    """A child with the container's stdout and stderr (``docker logs``), in a session of its own."""
    process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
    log.info("sidecar_process_started", process=name, pid=process.pid)
    return name, process


async def run_sidecar(args: argparse.Namespace) -> None:
    """Until SIGTERM (returns) or until Envoy or the DNS agent exits (raises ``SidecarError``)."""
    _check(args)
    status = _status_server(args)
    stop = stop_on_signals()
    bootstrap = _bootstrap(args)
    children: list[tuple[str, asyncio.subprocess.Process]] = []
    followers: list[asyncio.Task[None]] = []
    if args.root_cert is not None:
        followers.append(asyncio.create_task(follow_root_cert(args.root_cert, bootstrap.parent / ROOT_CERT_COPY)))
    if args.token_file is not None:
        followers.append(asyncio.create_task(follow_token(args.token_file, bootstrap.parent)))
    try:
        if status is not None:
            await status.start()
        if not args.no_dns:
            children.append(await _start("dns-agent", _dns_command(args)))
        envoy = sidecar_command(find_envoy_binary(), bootstrap, concurrency=1, log_level=args.envoy_log_level)
        children.append(await _start("envoy", envoy))
        waits = {asyncio.ensure_future(process.wait()): name for name, process in children}
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([*waits, stopped], return_when=asyncio.FIRST_COMPLETED)
        for wait in [*waits, stopped]:
            wait.cancel()
        exited = [f"{waits[wait]} exited with code {wait.result()}" for wait in done if wait in waits]
        if exited and not stop.is_set():
            raise SidecarError("; ".join(exited))
    finally:
        for follower in followers:
            follower.cancel()
        for name, process in reversed(children):
            await stop_process(process, name=name)
        if status is not None:
            await status.stop()
