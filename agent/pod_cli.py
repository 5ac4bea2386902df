"""The agent's subcommands of ``meshplane``, registered in ``e2e.cli`` (``meshplane-agent``, in ``agent.cli``, runs
what lives in a pod beside Envoy):

meshplane capture install [-p 15001] [-z 15006] [-u 1337] [-g 1337] [-m REDIRECT] [-i '*'] [-x CIDRS]
                          [-b '*'] [-d 15090,15021,15020] [-o PORTS] [-q PORTS] [--redirect-dns] [--dry-run]
meshplane capture remove
meshplane pod run NAME --namespace NS --ip POD_IP [--service-account SA] [--labels k=v,...] [--pilot HOST:PORT]
                  [--citadel HOST:PORT --token-file FILE --root-cert FILE] [--mixer HOST:PORT [--mixer-direct]]
                  [--app-uid UID]
                  [--dns-upstream IP[:PORT] ...] [--no-dns] [--pod-cidr 10.89.0.0/16] [--bridge mpbr0]
                  [--state-dir /run/meshplane/pods] [--xds-mode sotw|delta] [--node-metadata KEY=VALUE ...] -- APP...
meshplane pod exec NAME [--namespace NS] [--state-dir /run/meshplane/pods] -- COMMAND...
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.capture import (
    DEFAULT_EXCLUDE_INBOUND_PORTS,
    CaptureError,
    CaptureOptions,
    capture_rules,
    parse_cidrs,
    parse_ports,
)
from agent.iptables import IptablesError, install_capture, remove_capture
from agent.pod import PodSpec, exec_in_pod, run_pod
from agent.pod_network import DEFAULT_BRIDGE, DEFAULT_POD_CIDR, DEFAULT_PODS_DIR, PodNetwork, PodNetworkError
from envoy_bootstrap.bootstrap import XDS_MODES
from envoy_bootstrap.proxy_config import ProxyConfigError

__all__ = [
    "capture_arguments",
    "parse_labels",
    "parse_node_metadata",
    "pod_arguments",
    "run_capture",
    "run_pod_command",
]


def capture_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = actions.add_parser("install", help="install Istio's capture rules in this network namespace")
    install.add_argument("-p", dest="proxy_port", type=int, default=15001, help="outbound capture port")
    install.add_argument("-z", dest="inbound_port", type=int, default=15006, help="inbound capture port")
    install.add_argument("-u", dest="uids", default="1337", help="proxy uids (comma-separated)")
    install.add_argument("-g", dest="gids", default="1337", help="proxy gids (comma-separated)")
    install.add_argument("-m", dest="mode", default="REDIRECT", help="interception mode (REDIRECT)")
    install.add_argument("-i", dest="include_cidrs", default="*", help="outbound CIDRs to capture, '*' for all")
    install.add_argument("-x", dest="exclude_cidrs", default="", help="outbound CIDRs never captured")
    install.add_argument("-b", dest="include_inbound", default="*", help="inbound ports to capture, '*' for all")
    default_excludes = ",".join(map(str, DEFAULT_EXCLUDE_INBOUND_PORTS))
    install.add_argument("-d", dest="exclude_inbound", default=default_excludes, help="inbound ports never captured")
    install.add_argument("-o", dest="exclude_outbound", default="", help="outbound ports never captured")
    install.add_argument("-q", dest="include_outbound", default="", help="outbound ports always captured")
    install.add_argument("--redirect-dns", action="store_true", help="UDP/TCP 53 of the app to the agent (15053)")
    install.add_argument("--dry-run", action="store_true", help="print the iptables-restore input, change nothing")
    actions.add_parser("remove", help="remove meshplane's capture chains and jumps from this network namespace")


def _options(args: argparse.Namespace) -> CaptureOptions:
    if args.mode != "REDIRECT":
        raise CaptureError(f"-m: {args.mode} is not supported by meshplane yet (REDIRECT only)")
    return CaptureOptions(
        proxy_port=args.proxy_port,
        inbound_port=args.inbound_port,
        proxy_uids=parse_ports(args.uids, option="-u"),  # type: ignore[arg-type]
        proxy_gids=parse_ports(args.gids, option="-g"),  # type: ignore[arg-type]
        include_outbound_cidrs=parse_cidrs(args.include_cidrs, option="-i", wildcard=True),
        exclude_outbound_cidrs=parse_cidrs(args.exclude_cidrs, option="-x"),  # type: ignore[arg-type]
        include_inbound_ports=parse_ports(args.include_inbound, option="-b", wildcard=True),
        exclude_inbound_ports=parse_ports(args.exclude_inbound, option="-d"),  # type: ignore[arg-type]
        exclude_outbound_ports=parse_ports(args.exclude_outbound, option="-o"),  # type: ignore[arg-type]
        include_outbound_ports=parse_ports(args.include_outbound, option="-q"),  # type: ignore[arg-type]
        redirect_dns=args.redirect_dns,
    )


async def run_capture(args: argparse.Namespace) -> int:
    try:
        if args.action == "remove":
            print("removed" if remove_capture() else "nothing to remove")
            return 0
        options = _options(args)
        sys.stdout.write(capture_rules(options) if args.dry_run else install_capture(options))
    except (CaptureError, IptablesError) as exc:
        print(f"meshplane capture: {exc}", file=sys.stderr)
        return 2
    return 0


def pod_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run a pod in the foreground: netns, capture, sidecar, app")
    run.add_argument("name")
    run.add_argument("--namespace", default="default")
    run.add_argument("--ip", required=True, help="the pod IP (in --pod-cidr)")
    run.add_argument("--pilot", default="127.0.0.1:15010", help="Pilot's host-side xDS address")
    run.add_argument("--mixer", help="Mixer's host-side gRPC address (relayed into the pod, as --pilot)")
    run.add_argument(
        "--mixer-direct",
        action="store_true",
        help="the sidecar connects to --mixer itself, not through the relay: an address the pod routes to, e.g. the "
        "pod network's gateway (10.89.0.1 with the default --pod-cidr) where Mixer listens (mixer --grpc-address "
        "10.89.0.1:9091); one Python hop less each way for every check",
    )
    run.add_argument("--xds-mode", choices=XDS_MODES, default="sotw", help="the sidecar's ADS flavour (%(default)s)")
    run.add_argument("--service-account", default="default", help="the workload's service account (node metadata)")
    run.add_argument("--labels", default="", help="k=v,... (node metadata LABELS; Pilot uses the WorkloadEntry's)")
    run.add_argument(
        "--node-metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more sidecar node metadata, as Istio's ISTIO_META_<KEY> (repeatable; e.g. AUTO_REGISTER_GROUP=GROUP "
        "for WorkloadGroup auto-registration)",
    )
    citadel = run.add_argument_group("identity", "All three or none, as for `envoy-bootstrap run sidecar`.")
    citadel.add_argument("--citadel", metavar="HOST:PORT", help="Citadel's host-side SDS address")
    citadel.add_argument("--token-file", type=Path, help="the workload's token (from `citadel token`)")
    citadel.add_argument("--root-cert", type=Path, help="the PEM bundle Citadel's certificate chains to")
    run.add_argument(
        "--dns-upstream",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="resolver for names outside the mesh (repeatable; none by default: the host's resolver is not "
        "reachable from the pod network, so only mesh names resolve)",
    )
    run.add_argument("--no-dns", action="store_true", help="no DNS agent, no DNS capture, no resolv.conf")
    run.add_argument("--app-uid", type=int, default=int(os.environ.get("SUDO_UID", os.getuid())))
    run.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR)
    run.add_argument("--bridge", default=DEFAULT_BRIDGE)
    _state_dir_argument(run)
    run.add_argument("app", nargs="+", help="the app's command (after --)")
    exec_ = actions.add_parser("exec", help="run a command inside a running pod as its app")
    exec_.add_argument("name")
    exec_.add_argument("--namespace", default="default")
    _state_dir_argument(exec_)
    exec_.add_argument("command", nargs="+")


def _state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_PODS_DIR,
        help="where pods keep their state; the names of their network namespaces and veths derive from it, so "
        "runs with state directories of their own never clash (pod exec needs the pod run's)",
    )


def parse_node_metadata(items: Sequence[str]) -> dict[str, str]:
    """``["AUTO_REGISTER_GROUP=reviews"]`` -> {"AUTO_REGISTER_GROUP": "reviews"}."""
    metadata: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PodNetworkError(f"--node-metadata: expected KEY=VALUE, got {item!r}")
        metadata[key.strip()] = value
    return metadata


def parse_labels(text: str) -> dict[str, str]:
    """``"app=reviews,version=v1"`` -> {"app": "reviews", "version": "v1"}."""
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PodNetworkError(f"--labels: expected k=v, got {item!r}")
        labels[key.strip()] = value.strip()
    return labels


async def run_pod_command(args: argparse.Namespace) -> int:
    try:
        if args.action == "exec":
            exec_in_pod(args.namespace, args.name, args.command, args.state_dir.absolute())
        spec = PodSpec(
            name=args.name,
            namespace=args.namespace,
            ip=args.ip,
            app=tuple(args.app),
            app_uid=args.app_uid,
            pilot=args.pilot,
            xds_mode=args.xds_mode,
            mixer=args.mixer,
            mixer_direct=args.mixer_direct,
            citadel=args.citadel,
            token_file=args.token_file,
            root_cert=args.root_cert,
            service_account=args.service_account,
            labels=parse_labels(args.labels),
            node_metadata=parse_node_metadata(args.node_metadata),
            dns=not args.no_dns,
            dns_upstreams=tuple(args.dns_upstream),
            network=PodNetwork(bridge=args.bridge, cidr=args.pod_cidr),
            state_dir=args.state_dir.absolute(),
        )
        return await run_pod(spec)
    except (PodNetworkError, CaptureError, IptablesError, ProxyConfigError) as exc:
        print(f"meshplane pod: {exc}", file=sys.stderr)
        return 2
