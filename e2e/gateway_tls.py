"""An Envoy serving HTTPS with a gateway credential from Citadel's SDS, and an HTTPS client that reports the
certificate it was served.

``credential_listener_bootstrap`` is a sidecar bootstrap (the same ``sds-grpc`` cluster to Citadel, with the
workload's token and Citadel's trust) without Pilot, plus one static listener: a DownstreamTlsContext whose
certificate is the SDS secret ``kubernetes://<credential>`` (``-cacert`` as its validation context when
``mutual``), each an ``SdsSecretConfig`` exactly as Pilot's gateway listeners write it, and a direct response.
It is what a gateway's HTTPS server with ``credentialName`` is, without the gateway config around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from citadel.ca_dir import TRUST_BUNDLE, load_or_create_token_key
from citadel.tokens import issue_token
from e2e.control_plane import CitadelProcess
from envoy_bootstrap.bootstrap import build_sidecar_bootstrap, write_citadel_trust
from envoy_bootstrap.runner import EnvoyProcess
from meshplane.credential_names import credential_sds_name
from meshplane.identity import DEFAULT_TRUST_DOMAIN
from pilot.generate._tls import sds_secret_config

__all__ = [
    "GATEWAY_BODY",
    "CredentialGateway",
    "credential_gateway",
    "credential_listener_bootstrap",
    "free_port",
    "served_certificate",
    "wait_served",
]

GATEWAY_BODY = "served by the gateway credential listener"


def credential_listener_bootstrap(
    *,
    workdir: Path,
    citadel: str,
    citadel_bundle: Path,
    token: str,
    namespace: str,
    port: int,
    admin_port: int,
    credential: str = "mycred",
    mutual: bool = False,
) -> bootstrap_pb2.Bootstrap:
    """The bootstrap (see the module doc) of a gateway proxy of ``namespace`` listening on 127.0.0.1:``port``."""
    trust = write_citadel_trust(workdir / "citadel-trust.json", citadel_bundle)
    bootstrap = build_sidecar_bootstrap(
        workload="istio-ingressgateway",
        namespace=namespace,
        address="127.0.0.1",
        citadel=citadel,
        token=token,
        citadel_trust=trust,
        admin_port=admin_port,
    )
    bootstrap.ClearField("dynamic_resources")  # no Pilot: the listener is static
    bootstrap.static_resources.listeners.append(_https_listener(port, credential, mutual=mutual))
    return bootstrap


def _https_listener(port: int, credential: str, *, mutual: bool) -> listener_pb2.Listener:
    common = tls_pb2.CommonTlsContext(
        tls_certificate_sds_secret_configs=[sds_secret_config(credential_sds_name(credential))],
        alpn_protocols=["h2", "http/1.1"],
    )
    if mutual:
        common.validation_context_sds_secret_config.CopyFrom(
            sds_secret_config(credential_sds_name(credential, ca=True))
        )
    tls = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    tls.require_client_certificate.value = mutual
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        direct_response=route_components_pb2.DirectResponseAction(status=200),
    )
    route.direct_response.body.inline_string = GATEWAY_BODY
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="gateway_credential",
        route_config=route_pb2.RouteConfiguration(
            name="https", virtual_hosts=[route_components_pb2.VirtualHost(name="any", domains=["*"], routes=[route])]
        ),
    )
    manager.http_filters.add(name="envoy.filters.http.router").typed_config.Pack(router_pb2.Router())
    chain = listener_components_pb2.FilterChain()
    chain.filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(manager)
    chain.transport_socket.name = "envoy.transport_sockets.tls"
    chain.transport_socket.typed_config.Pack(tls)
    return listener_pb2.Listener(
        name=f"0.0.0.0_{port}",
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)),
        filter_chains=[chain],
    )


async def served_certificate(
    port: int,
    *,
    server_name: str,
    ca_pem: bytes,
    client_cert: tuple[Path, Path] | None = None,
    timeout: float = 5.0,
) -> tuple[x509.Certificate, str]:
    """GET / over HTTPS from 127.0.0.1:``port`` verifying ``server_name`` against ``ca_pem``: the leaf served and
    the response's status line and body. ``client_cert``: (certificate chain file, key file) to present."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_name)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True)
            writer.write(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            response = (await reader.read()).decode(errors="replace")
        finally:
            writer.close()
    status, _, rest = response.partition("\r\n")
    return x509.load_der_x509_certificate(der), f"{status} {rest.rpartition(chr(10))[2]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class CredentialGateway:
    citadel: CitadelProcess
    envoy: EnvoyProcess
    port: int  # the HTTPS listener's


@contextlib.asynccontextmanager
async def credential_gateway(
    workdir: Path,
    *,
    envoy_binary: Path,
    namespace: str,
    citadel_arguments: Sequence[str],
    credential: str = "mycred",
    mutual: bool = False,
) -> AsyncIterator[CredentialGateway]:
    """Citadel (``citadel_arguments``: where credentials come from) and the Envoy of ``credential_listener_bootstrap``
    for a proxy of ``namespace`` with a genuine Citadel token of that namespace; both stopped at the end."""
    citadel = CitadelProcess(
        ca_dir=workdir / "ca",
        workdir=workdir,
        sds_address=f"127.0.0.1:{free_port()}",
        monitor_address=f"127.0.0.1:{free_port()}",
        extra_arguments=tuple(citadel_arguments),
    )
    await citadel.start()
    try:
        token = issue_token(
            load_or_create_token_key(citadel.ca_dir),
            trust_domain=DEFAULT_TRUST_DOMAIN,
            namespace=namespace,
            service_account="istio-ingressgateway-service-account",
            ttl=timedelta(hours=1),
        )
        port = free_port()
        bootstrap = credential_listener_bootstrap(
            workdir=workdir,
            citadel=citadel.sds_address,
            citadel_bundle=citadel.ca_dir / TRUST_BUNDLE,
            token=token,
            namespace=namespace,
            port=port,
            admin_port=free_port(),
            credential=credential,
            mutual=mutual,
        )
        envoy = EnvoyProcess(name="gateway", bootstrap=bootstrap, workdir=workdir, envoy_binary=envoy_binary)
        async with envoy:
            await envoy.wait_admin()
            yield CredentialGateway(citadel=citadel, envoy=envoy, port=port)
    finally:
        await citadel.stop()


async def wait_served(
    port: int, *, server_name: str, ca_pem: bytes, serial: int, timeout: float = 20.0, **kwargs: object
) -> tuple[x509.Certificate, str]:
    """Until 127.0.0.1:``port`` serves the certificate with ``serial`` (a listener warms, a rotation arrives)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = "nothing yet"
    while True:
        try:
            leaf, response = await served_certificate(port, server_name=server_name, ca_pem=ca_pem, **kwargs)  # type: ignore[arg-type]
            if leaf.serial_number == serial:
                return leaf, response
            last = f"serial {leaf.serial_number:x}"
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if loop.time() >= deadline:
            raise AssertionError(f"port {port} did not serve certificate {serial:x} in {timeout:g}s (last: {last})")
        await asyncio.sleep(0.2)
