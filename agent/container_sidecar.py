"""``meshplane-agent sidecar``: a pod's sidecar as a container of its own (docker-compose), in the network namespace
of its app's container (``network_mode: "service:<app>"``), after an init container installed the capture
(``meshplane capture install --redirect-dns``, the only step with NET_ADMIN, as Istio's ``istio-init``).

Runs as the proxy's uid (1337), which the capture excludes: writes the bootstrap (``agent.sidecar_files``: Pilot,
Mixer and Citadel at their own addresses on the compose network, no relay), starts the DNS agent (``meshplane-agent
dns`` on 127.0.0.1:15053, names outside the mesh to ``--dns-upstream``, Docker's resolver 127.0.0.11 by default) and
Envoy (with the concurrency and environment of the ProxyConfig Pilot resolves for it, asked for first:
``envoy_bootstrap.proxy_config``), and keeps the sidecar's copy of the trust bundle in step with ``--root-cert``
(``follow_root_cert``) and the token Envoy sends Citadel in step with ``--token-file`` (``agent.token_follower``: a
refreshed projected token reaches Envoy without a restart), and serves the status port (``agent.status_server``,
15020: the app's probes the injector rewrote, from ``$ISTIO_KUBE_APP_PROBERS``, performed on the pod's ``--ip``;
``/healthz/ready``). When Envoy or the DNS agent exits, or on SIGTERM, it stops the rest and exits: Docker sees the
sidecar end.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import structlog

from agent.app_health import ProbeTarget
from agent.app_probers import AppProbersError
from agent.capture import DOCKER_RESOLVER
from agent.dns_upstream import read_resolv_conf
from agent.pod_cli import parse_labels
from agent.pod_dns import agent_command, resolv_conf
from agent.proxy_supervision import supervise_proxy
from agent.sidecar_files import SidecarFilesError, citadel_flags_problem, write_sidecar_bootstrap
from agent.status_server import StatusServer, add_status_arguments, probers_from_arguments
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import XDS_MODES, ProxyType, sidecar_node_id
from envoy_bootstrap.proxy_config import LaunchSettings, ProxyConfigError, fetch_launch_settings
from envoy_bootstrap.runner import sidecar_command
from meshplane.names import PROXY_UID
from meshplane.proxy_environment import PROXY_CONFIG_ANNOTATION_METADATA

__all__ = [
    "DEFAULT_WORK_DIR",
    "SidecarError",
    "add_proxy_arguments",
    "add_sidecar_arguments",
    "proxy_bootstrap",
    "proxy_launch_settings",
    "run_sidecar",
]

log = structlog.get_logger(__name__)

DEFAULT_WORK_DIR = Path("/var/lib/istio/proxy")


class SidecarError(RuntimeError):
    """A bad flag, a file the sidecar cannot read, or Envoy/the DNS agent exited; the message says which."""


def add_proxy_arguments(parser: argparse.ArgumentParser, *, work_dir: Path = DEFAULT_WORK_DIR) -> None:
    """The flags a container's sidecar and gateway share: who it is, the control plane, its identity files."""
    parser.add_argument("--workload", required=True, help="the WorkloadEntry's or pod's name (the node id's)")
    parser.add_argument("--namespace", default="default", help="the workload's namespace (%(default)s)")
    parser.add_argument("--ip", required=True, help="the workload's address (the WorkloadEntry's or pod's)")
    parser.add_argument("--service-account", default="default", help="the workload's service account")
    parser.add_argument("--labels", default="", help="the workload's labels, k=v,...")
    parser.add_argument("--pilot", required=True, metavar="HOST:PORT", help="Pilot's xDS address")
    parser.add_argument("--mixer", metavar="HOST:PORT", help="Mixer's gRPC address (ext_authz, access logs)")
    parser.add_argument("--citadel", metavar="HOST:PORT", help="Citadel's SDS address (with the next two)")
    parser.add_argument("--token-file", type=Path, help="the workload's token, followed when it is refreshed")
    parser.add_argument("--root-cert", type=Path, help="Citadel's trust bundle, followed when it changes")
    parser.add_argument("--domain-suffix", default="cluster.local", help="(%(default)s)")
    parser.add_argument("--xds-mode", choices=XDS_MODES, default="sotw", help="(%(default)s)")
    parser.add_argument("--work-dir", type=Path, default=work_dir, help="bootstrap and copies (%(default)s)")
    parser.add_argument("--envoy-log-level", default="info", help="(%(default)s)")
    parser.add_argument(
        "--proxy-config",
        metavar="JSON",
        help="the pod's proxy.istio.io/config concurrency and proxyMetadata (the injector's), sent to Pilot as node "
        "metadata: Pilot merges them into the proxy's ProxyConfig as Istio does",
    )


def add_sidecar_arguments(parser: argparse.ArgumentParser) -> None:
    add_proxy_arguments(parser)
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


async def proxy_launch_settings(pilot: str, bootstrap: Path, *, default_concurrency: int) -> LaunchSettings:
    """The proxy's ProxyConfig from Pilot, as Envoy's concurrency and environment (``SidecarError`` without it)."""
    try:
        launch = await fetch_launch_settings(pilot, bootstrap, default_concurrency=default_concurrency)
    except ProxyConfigError as exc:
        raise SidecarError(str(exc)) from None
    log.info("proxy_config", concurrency=launch.concurrency, environment=sorted(launch.environment))
    return launch


def _proxy_config_metadata(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SidecarError(f"--proxy-config: not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SidecarError(f"--proxy-config: expected a JSON object, got {text!r:.60}")
    return {PROXY_CONFIG_ANNOTATION_METADATA: text}


def proxy_bootstrap(args: argparse.Namespace, *, proxy_type: ProxyType = "sidecar") -> Path:
    """``<work dir>/bootstrap.json`` from the flags of ``add_proxy_arguments``; with ``--token-file`` the token in a
    document of its own, which ``supervise_proxy`` keeps in step with the file."""
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
            node_metadata=_proxy_config_metadata(args.proxy_config),
            citadel=args.citadel,
            token_file=args.token_file,
            root_cert=args.root_cert,
            follow_token=args.token_file is not None,
            proxy_type=proxy_type,
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


async def run_sidecar(args: argparse.Namespace) -> None:
    """Until SIGTERM (returns) or until Envoy or the DNS agent exits (raises ``SidecarError``)."""
    _check(args)
    status = _status_server(args)
    bootstrap = proxy_bootstrap(args)
    children = [] if args.no_dns else [("dns-agent", _dns_command(args))]
    launch = await proxy_launch_settings(args.pilot, bootstrap, default_concurrency=1)
    envoy = sidecar_command(
        find_envoy_binary(), bootstrap, concurrency=launch.concurrency, log_level=args.envoy_log_level
    )
    children.append(("envoy", envoy))
    exited = await supervise_proxy(
        bootstrap,
        children,
        status=status,
        root_cert=args.root_cert,
        token_file=args.token_file,
        environments={"envoy": launch.process_environment(os.environ)},
    )
    if exited:
        raise SidecarError("; ".join(exited))
