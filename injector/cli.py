"""``sidecar-injector``: the mutating admission webhook that adds meshplane's sidecar to pods (Istio's
``istio-sidecar-injector``; in istiod it is a part of Pilot, here a command of its own because it signs its serving
certificate with the mesh's CA, which Pilot never holds: run it beside Citadel, with Citadel's CA directory).

sidecar-injector --ca-dir DIR [--image IMAGE] (--kubeconfig FILE | --in-cluster)
                 [--address 0.0.0.0:15017] [--service istio-sidecar-injector.istio-system]
                 [--webhook-config istio-sidecar-injector] [--pilot-service istio-pilot.istio-system:15010]
                 [--citadel-service istio-citadel.istio-system:15012]
                 [--mixer-service istio-telemetry.istio-system:9091]
                 [--image-pull-policy IfNotPresent] [--domain-suffix cluster.local]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog
from kubernetes.client.exceptions import ApiException

from citadel.errors import CAError
from injector.cluster import ClusterFacts, own_image, parse_service_address
from injector.server import InjectorServer
from injector.serving import ServingIdentity, service_dns_names
from injector.settings import InjectorSettings
from injector.webhook_config import WEBHOOK_CONFIGURATION, sync_ca_bundle
from meshplane.kube_api import add_kube_arguments, kube_access_from_arguments, new_api_client
from meshplane.logs import add_logging_arguments, configure_logging_from_args
from meshplane.serving import run_service, stop_on_signals

__all__ = ["build_parser", "main"]

log = structlog.get_logger(__name__)

PROG = "sidecar-injector"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", default="0.0.0.0:15017", help="HTTPS listen address (istiod's: %(default)s)")
    parser.add_argument("--ca-dir", type=Path, required=True, help="Citadel's CA directory, read only")
    parser.add_argument("--service", default="istio-sidecar-injector.istio-system", metavar="NAME.NAMESPACE",
                        help="the injector's Service, named in the serving certificate (%(default)s)")  # fmt: skip
    parser.add_argument("--webhook-config", default=WEBHOOK_CONFIGURATION, metavar="NAME",
                        help="the MutatingWebhookConfiguration whose caBundle is kept ('' for none)")  # fmt: skip
    own = "the injector's own, read from its pod (POD_NAME, POD_NAMESPACE), so that an overlay's `images:` covers it"
    parser.add_argument("--image", default="", help=f"the meshplane image of the injected containers (default: {own})")
    parser.add_argument("--image-pull-policy", choices=PULL_POLICIES, default="IfNotPresent")
    parser.add_argument("--pilot-service", default="istio-pilot.istio-system:15010", metavar="NAME.NS:PORT")
    parser.add_argument("--citadel-service", default="istio-citadel.istio-system:15012", metavar="NAME.NS:PORT")
    parser.add_argument("--mixer-service", default="istio-telemetry.istio-system:9091", metavar="NAME.NS:PORT",
                        help="Mixer's Service (%(default)s; '' for none)")  # fmt: skip
    parser.add_argument("--domain-suffix", default="cluster.local")
    parser.add_argument("--ca-poll-interval", type=float, default=5.0, help="seconds between CA directory reads")
    add_kube_arguments(parser, what="namespaces and Services")
    add_logging_arguments(parser)
    return parser


def _listen(address: str) -> tuple[str, int, tuple[str, ...]]:
    """(host, port, the IP SAN the certificate needs: a specific listen IP, for a ``url:`` clientConfig)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit():
        raise ValueError(f"--address: expected HOST:PORT, got {address!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host, int(port), ()
    return host, int(port), () if ip.is_unspecified else (str(ip),)


async def _sync_bundle(api: object, name: str, bundle: bytes) -> None:
    try:
        await asyncio.to_thread(sync_ca_bundle, api, name, bundle)  # type: ignore[arg-type]
    except ApiException as exc:
        log.warning("cannot update the webhook's caBundle; retrying", name=name, status=exc.status, reason=exc.reason)


async def _first_certificate(identity: ServingIdentity, stop: asyncio.Event, retry: float = 1.0) -> bool:
    """The first serving certificate, once Citadel's CA directory holds a CA (beside Citadel in its pod, the two
    start together and Citadel writes the CA first); False when stopped before."""
    waited = False
    while not stop.is_set():
        try:
            await asyncio.to_thread(identity.refresh)
            return True
        except CAError as exc:
            if not waited:
                log.info("waiting for Citadel's CA", reason=str(exc))
                waited = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry)
    return False


async def _serve(args: argparse.Namespace) -> None:
    access = kube_access_from_arguments(args)
    if access is None:
        raise ValueError("--kubeconfig FILE or --in-cluster: the injector reads namespaces and Services")
    host, port, ips = _listen(args.address)
    service = parse_service_address(f"{args.service}:443", option="--service")
    identity = ServingIdentity(
        args.ca_dir, dns_names=service_dns_names(service.name, service.namespace, args.domain_suffix), ip_addresses=ips
    )
    stop = stop_on_signals()
    if not await _first_certificate(identity, stop):
        return
    identity.apply()
    api = new_api_client(access)
    image = args.image or await asyncio.to_thread(own_image, api)
    settings = InjectorSettings(image=image, image_pull_policy=args.image_pull_policy, domain_suffix=args.domain_suffix)
    facts = ClusterFacts(
        api,
        pilot=parse_service_address(args.pilot_service, option="--pilot-service"),
        citadel=parse_service_address(args.citadel_service, option="--citadel-service"),
        mixer=parse_service_address(args.mixer_service, option="--mixer-service") if args.mixer_service else None,
        domain_suffix=args.domain_suffix,
    )
    server = InjectorServer(settings, facts)
    await server.start(host, port, identity.ssl_context)
    log.info("sidecar injector serving", address=f"{host}:{server.port}", webhook_config=args.webhook_config)

    async def on_bundle(bundle: bytes) -> None:
        if args.webhook_config:
            await _sync_bundle(api, args.webhook_config, bundle)

    fresh = asyncio.create_task(identity.keep_fresh(on_bundle, poll_interval=args.ca_poll_interval))
    try:
        await stop.wait()
    finally:
        fresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fresh
        await server.stop()
        api.close()  # type: ignore[no-untyped-call]  # untyped upstream


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging_from_args(args)
    return run_service(PROG, lambda: _serve(args), errors=(CAError, OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
