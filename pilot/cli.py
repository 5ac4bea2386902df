"""``pilot``: serve Istio traffic config to Envoy sidecars over ADS, from a directory of Istio YAML
(``--config-dir``), from a Kubernetes cluster (``--kubeconfig FILE`` or ``--in-cluster``: Istio's CRDs and the
cluster's Services, EndpointSlices and Pods), or both."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pilot.parse_ahead import ParseAhead, main_with_parse_ahead

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from meshplane.kube_api import add_kube_arguments
    from meshplane.logs import add_logging_arguments
    from pilot.cli_arguments import add_mesh_arguments, duration_argument

    parser = argparse.ArgumentParser(prog="pilot", description=__doc__)
    parser.add_argument("--config-dir", type=Path, default=None, help="directory of Istio YAML, watched for changes")
    add_kube_arguments(parser, what="Istio's config (CRDs) and the service registry (Services, EndpointSlices, Pods)")
    parser.add_argument("--xds-address", default="127.0.0.1:15010", help="ADS gRPC listen address (Istio: 15010)")
    parser.add_argument(
        "--monitor-address", default="127.0.0.1:15014", help="/ready /metrics /debug/* listen address (Istio: 15014)"
    )
    parser.add_argument(
        "--debounce", type=duration_argument, default=0.1, help="quiet period before a push (default 100ms)"
    )
    parser.add_argument(
        "--debounce-max", type=duration_argument, default=1.0, help="longest a push waits for quiet (1s)"
    )
    parser.add_argument(
        "--mesh-config",
        type=Path,
        default=None,
        help="Istio MeshConfig YAML (outboundTrafficPolicy, rootNamespace, trustDomain, enableAutoMtls); its "
        "rootNamespace and trustDomain win over the flags",
    )
    parser.add_argument(
        "--status-lease-namespace",
        default=os.environ.get("POD_NAMESPACE") or "istio-system",
        metavar="NAMESPACE",
        help="with a cluster: the namespace of the Lease (meshplane-pilot-status) whose holder, one replica, writes "
        "each Istio resource's validation result to its status (default: $POD_NAMESPACE, else istio-system)",
    )
    parser.add_argument(
        "--workload-entry-grace-period",
        type=duration_argument,
        default=10.0,
        help="how long an auto-registered WorkloadEntry (WorkloadGroup) outlives its proxy's last connection "
        "(Istio's PILOT_WORKLOAD_ENTRY_GRACE_PERIOD; default 10s)",
    )
    parser.add_argument(
        "--send-timeout",
        type=duration_argument,
        default=20.0,
        help="how long a response's write holds its push-throttle slot; a slower proxy keeps its stream and is "
        "waited for outside the throttle (Istio's PILOT_XDS_SEND_TIMEOUT; default 20s)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=duration_argument,
        default=300.0,
        help="how long a proxy may take nothing of its stream before the stream is closed (default 5m)",
    )
    parser.add_argument(
        "--max-new-streams-per-second",
        type=_non_negative_float,
        default=100.0,
        help="how many new ADS streams are admitted a second; others wait their turn, none is refused "
        "(Istio's PILOT_MAX_REQUESTS_PER_SECOND; 0: no limit; default %(default)g)",
    )
    parser.add_argument(
        "--new-streams-burst",
        type=_positive_int,
        default=100,
        help="how many new ADS streams are admitted at once after a quiet spell (default %(default)s)",
    )
    parser.add_argument(
        "--vhds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve delta ADS streams' route tables over VHDS, one virtual host per resource, so that a VirtualService "
        "change sends one virtual host, not a whole table (default: on; SotW streams always get whole tables)",
    )
    parser.add_argument("--no-status-writes", action="store_true", help="with a cluster: never write resources' status")
    add_mesh_arguments(parser)
    add_logging_arguments(parser)
    return parser


_Number = TypeVar("_Number", int, float)


def _at_least(convert: Callable[[str], _Number], minimum: _Number) -> Callable[[str], _Number]:
    """An argparse type: ``text`` converted by ``convert`` (int or float), refused below ``minimum`` (and NaN)."""

    def parse(text: str) -> _Number:
        try:
            value = convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not value >= minimum:  # NaN too
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text!r}")
        return value

    return parse


_non_negative_float = _at_least(float, 0.0)
_positive_int = _at_least(int, 1)


def main(argv: Sequence[str] | None = None) -> int:
    return main_with_parse_ahead(argv, _run)


def _run(argv: Sequence[str] | None, parse_ahead: ParseAhead) -> int:
    # imported once the parse worker runs: these imports (grpc, the Envoy protos, Pilot) are what it overlaps
    from meshplane.kube_api import kube_access_from_arguments
    from meshplane.logs import configure_logging_from_args
    from meshplane.serving import run_service
    from pilot.app import PilotOptions, run_pilot
    from pilot.config.mesh_config import MeshConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    kube = kube_access_from_arguments(args)
    if args.config_dir is None and kube is None:
        parser.error("a config source is needed: --config-dir DIR, --kubeconfig FILE or --in-cluster (or both)")
    configure_logging_from_args(args)
    options = PilotOptions(
        config_dir=args.config_dir,
        kube=kube,
        xds_address=args.xds_address,
        monitor_address=args.monitor_address,
        debounce=args.debounce,
        debounce_max=args.debounce_max,
        domain_suffix=args.domain_suffix,
        trust_domain=args.trust_domain,
        root_namespace=args.root_namespace,
        mesh_config=args.mesh_config,
        status_lease_namespace=None if args.no_status_writes else args.status_lease_namespace,
        workload_entry_grace_period=args.workload_entry_grace_period,
        send_timeout=args.send_timeout,
        stall_timeout=args.stall_timeout,
        new_streams_per_second=args.max_new_streams_per_second,
        new_streams_burst=args.new_streams_burst,
        vhds=args.vhds,
    )
    return run_service(
        "pilot", lambda: run_pilot(options, parse_ahead=parse_ahead), errors=(FileNotFoundError, MeshConfigError)
    )


if __name__ == "__main__":
    sys.exit(main())
