"""Shared pytest fixtures. One section per layer: append yours at the end, never rewrite another section."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator

import pytest
import structlog

from pilot.config.origin import Origin
from pilot.config.parse import ParsedFile, parse_config_text
from pilot.config.types import ConfigKey, ConfigMeta, Resource
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy

# ----------------------------------------------------------------------------------------------------------------
# config layer
# ----------------------------------------------------------------------------------------------------------------


class IstioDocs:
    """Builds one Istio document around a spec body and parses it as ``test.yaml``.

    The header is 6 lines (apiVersion, kind, metadata, name, namespace, ``spec:``), so line ``n`` of the body is
    line ``n + 6`` of the file: ``spec_line(n)``. Bodies are dedented and indented under ``spec:``.
    """

    FILE = "test.yaml"
    HEADER_LINES = 6

    def doc(self, kind: str, body: str, *, name: str = "r", namespace: str = "ns") -> str:
        spec = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        return (
            f"apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n"
            f"  namespace: {namespace}\nspec:\n{spec}\n"
        )

    def parse(self, kind: str, body: str, **names: str) -> ParsedFile:
        return parse_config_text(self.doc(kind, body, **names), self.FILE)

    def accepted(self, kind: str, body: str, **names: str) -> Resource:
        parsed = self.parse(kind, body, **names)
        errors = [str(e) for r in parsed.rejected for e in r.errors]
        assert not errors, errors
        assert len(parsed.resources) == 1, parsed
        return parsed.resources[0]

    def errors(self, kind: str, body: str, **names: str) -> list[str]:
        parsed = self.parse(kind, body, **names)
        assert not parsed.resources, f"expected a rejection, got {parsed.resources}"
        assert len(parsed.rejected) == 1, parsed
        return [str(e) for e in parsed.rejected[0].errors]

    def spec_line(self, body_line: int) -> int:
        return body_line + self.HEADER_LINES

    def assert_error(self, errors: list[str], kind: str, body_line: int, path: str, message: str) -> None:
        """One of ``errors`` is ``test.yaml:<line>: <kind> ns/r: <path>: ...<message>...``."""
        prefix = f"{self.FILE}:{self.spec_line(body_line)}: {kind} ns/r: {path}: "
        assert any(e.startswith(prefix) and message in e for e in errors), (
            f"no error starting {prefix!r} containing {message!r} in:\n" + "\n".join(errors)
        )


@pytest.fixture
def istio() -> IstioDocs:
    return IstioDocs()


# ----------------------------------------------------------------------------------------------------------------
# xDS layer (tests/test_xds_*.py, tests/test_monitor.py): fake generators, an in-process ADS server
# ----------------------------------------------------------------------------------------------------------------

from collections import Counter  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

import grpc  # noqa: E402

from pilot.xds import DiscoveryServer  # noqa: E402
from tests.xds_fakes import WAIT, bookinfo, fake_generators, wait_until  # noqa: E402


@pytest.fixture
def xds_calls() -> Counter[str]:
    """How many times each fake generator built a shared scope (cds, eds, rds)."""
    return Counter()


@pytest.fixture
async def xds_server(xds_calls: Counter[str]) -> AsyncIterator[DiscoveryServer]:
    """A started DiscoveryServer on 127.0.0.1 (random port) over the fake generators, serving ``bookinfo()``
    (snapshot version 1), with a 10ms debounce."""
    server = DiscoveryServer(generators=fake_generators(xds_calls), debounce=0.01, debounce_max=0.2)
    server.update_config(bookinfo(), 1)
    await server.start("127.0.0.1:0")
    try:
        await wait_until(lambda: server.ready, WAIT)
        yield server
    finally:
        await server.stop(grace=0)


@pytest.fixture
async def ads_channel(xds_server: DiscoveryServer) -> AsyncIterator[grpc.aio.Channel]:
    """A gRPC channel to ``xds_server``."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_server.port}") as channel:
        yield channel


# ----------------------------------------------------------------------------------------------------------------
# generate layer (tests/test_generate_{clusters,endpoints,listeners}.py): snapshots built from dataclasses directly
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture
def make_meta() -> Callable[..., ConfigMeta]:
    """``make_meta("ServiceEntry", "reviews", namespace="default")``: the metadata of a config resource."""

    def make(kind: str, name: str, namespace: str = "default") -> ConfigMeta:
        key = ConfigKey(kind=kind, namespace=namespace, name=name)
        return ConfigMeta(key=key, origin=Origin(file=f"{name}.yaml", line=1), content_hash=str(key))

    return make


@pytest.fixture
def mesh_snapshot() -> Callable[..., MeshSnapshot]:
    """``mesh_snapshot(*resources)``: a snapshot of exactly these resources."""

    def build(*resources: Resource) -> MeshSnapshot:
        return build_snapshot({resource.meta.key: resource for resource in resources}, version=1)

    return build


@pytest.fixture
def sidecar_proxy() -> Callable[..., Proxy]:
    """``sidecar_proxy(snapshot, "reviews-v1", ip="127.0.0.21")``: that sidecar, resolved against the snapshot."""

    def resolve(snapshot: MeshSnapshot, workload: str, namespace: str = "default", ip: str = "127.0.0.1") -> Proxy:
        node = parse_node_id(f"sidecar~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local")
        return resolve_proxy(node, snapshot)

    return resolve


# ----------------------------------------------------------------------------------------------------------------
# Citadel servers (tests/test_citadel_{sds,csr,rotation,server}.py): an in-process Citadel serving TLS on 127.0.0.1
# (random port), tokens for it, TLS channels to it. The SDS stream client is tests/citadel_sds_client.py.
# ----------------------------------------------------------------------------------------------------------------

from collections.abc import Awaitable  # noqa: E402
from dataclasses import dataclass as _dataclass  # noqa: E402
from datetime import UTC as _UTC  # noqa: E402
from datetime import datetime as _datetime  # noqa: E402
from datetime import timedelta as _timedelta  # noqa: E402
from pathlib import Path as _Path  # noqa: E402
from typing import Any as _Any  # noqa: E402

from cryptography.hazmat.primitives.asymmetric import ec as _ec  # noqa: E402

from citadel.ca_dir import load_or_create_token_key as _load_or_create_token_key  # noqa: E402
from citadel.server import CitadelOptions as _CitadelOptions  # noqa: E402
from citadel.server import CitadelServer as _CitadelServer  # noqa: E402
from citadel.tokens import issue_token as _issue_token  # noqa: E402
from meshplane.identity import CITADEL_SERVER_NAME as _CITADEL_SERVER_NAME  # noqa: E402


@_dataclass(slots=True, kw_only=True)
class CitadelUnderTest:
    """A started in-process Citadel, and tokens and TLS channels for it."""

    server: _CitadelServer
    ca_dir: _Path
    token_key: _ec.EllipticCurvePrivateKey
    trust_domain: str = "cluster.local"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def trust_bundle_pem(self) -> bytes:
        assert self.server.authority is not None
        return self.server.authority.trust_bundle_pem

    def token(
        self,
        namespace: str = "default",
        service_account: str = "reviews",
        *,
        ttl: _timedelta = _timedelta(hours=1),
        now: _datetime | None = None,
        trust_domain: str | None = None,
        key: _ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        """A token for ``namespace``/``service_account`` (signed by Citadel's token key unless ``key`` is given)."""
        return _issue_token(
            key or self.token_key,
            trust_domain=trust_domain or self.trust_domain,
            namespace=namespace,
            service_account=service_account,
            ttl=ttl,
            now=now or _datetime.now(_UTC),
        )

    def channel(
        self, roots: bytes | None = None, *, server_name: str | None = _CITADEL_SERVER_NAME
    ) -> grpc.aio.Channel:
        """A TLS channel trusting ``roots`` (default: the current trust bundle) that verifies ``server_name``
        (default: Citadel's DNS name, as sidecars do; None: the IP address)."""
        credentials = grpc.ssl_channel_credentials(root_certificates=roots or self.trust_bundle_pem)
        options = (("grpc.ssl_target_name_override", server_name),) if server_name else ()
        return grpc.aio.secure_channel(self.address, credentials, options=options)


StartCitadel = Callable[..., Awaitable[CitadelUnderTest]]  # the ``start_citadel`` fixture


@pytest.fixture
async def start_citadel(tmp_path: _Path) -> AsyncIterator[StartCitadel]:
    """``await start_citadel(cert_ttl=timedelta(seconds=2), ...)`` -> CitadelUnderTest: a started Citadel over
    ``tmp_path/"ca"`` (any CitadelOptions field can be overridden), polling its CA directory every 0.1 s with a
    0.1 s root-rotation grace. Every Citadel started is stopped at the end of the test."""
    started: list[_CitadelServer] = []

    async def start(**overrides: _Any) -> CitadelUnderTest:
        settings: dict[str, _Any] = {
            "ca_dir": tmp_path / "ca",
            "sds_address": "127.0.0.1:0",
            "monitor_address": "127.0.0.1:0",
            "root_poll_interval": 0.1,
            "root_rotation_grace": 0.1,
            "root_rotation_ack_timeout": 5.0,
            **overrides,
        }
        server = _CitadelServer(_CitadelOptions(**settings))
        await server.start()
        started.append(server)
        token_key = _load_or_create_token_key(settings["ca_dir"])
        return CitadelUnderTest(server=server, ca_dir=settings["ca_dir"], token_key=token_key)

    try:
        yield start
    finally:
        for server in started:
            await server.stop(grace=0)


@pytest.fixture
async def citadel(start_citadel: StartCitadel) -> CitadelUnderTest:
    """A Citadel with the default settings (24h certificates, ECDSA keys)."""
    return await start_citadel()


@pytest.fixture
async def citadel_channel(citadel: CitadelUnderTest) -> AsyncIterator[grpc.aio.Channel]:
    """A TLS channel to ``citadel``, verifying its serving certificate by the name sidecars use."""
    async with citadel.channel() as channel:
        yield channel


# ----------------------------------------------------------------------------------------------------------------
# isolation: CLIs under test (pilot, citadel, meshplane main()) configure structlog process-wide; undo that
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    config = structlog.get_config()
    yield
    structlog.configure(**config)


# ----------------------------------------------------------------------------------------------------------------
# policy config (tests/test_config_authorization_policy.py, tests/test_config_mixer_policy.py): IstioDocs for the
# security.istio.io and mixer.meshplane.io API groups
# ----------------------------------------------------------------------------------------------------------------


class ApiGroupDocs(IstioDocs):
    """IstioDocs whose documents carry ``api_version`` instead of ``networking.istio.io/v1`` (same 6-line header)."""

    def __init__(self, api_version: str) -> None:
        self.api_version = api_version

    def doc(self, kind: str, body: str, *, name: str = "r", namespace: str = "ns") -> str:
        text = super().doc(kind, body, name=name, namespace=namespace)
        return text.replace("apiVersion: networking.istio.io/v1\n", f"apiVersion: {self.api_version}\n", 1)


@pytest.fixture
def security_docs() -> ApiGroupDocs:
    """Documents of ``security.istio.io/v1`` (AuthorizationPolicy, PeerAuthentication)."""
    return ApiGroupDocs("security.istio.io/v1")


@pytest.fixture
def mixer_docs() -> ApiGroupDocs:
    """Documents of ``mixer.meshplane.io/v1`` (AccessList, RateLimit)."""
    return ApiGroupDocs("mixer.meshplane.io/v1")


# ----------------------------------------------------------------------------------------------------------------
# Mixer checks (tests/test_mixer_{attributes,checks,authz_service}.py): a small mesh with Mixer policies, and
# ext_authz CheckRequests as Envoy's inbound sidecar filter sends them
# ----------------------------------------------------------------------------------------------------------------

from types import MappingProxyType as _MappingProxyType  # noqa: E402

from envoy.config.core.v3.address_pb2 import Address as _Address  # noqa: E402
from envoy.config.core.v3.address_pb2 import SocketAddress as _SocketAddress  # noqa: E402
from envoy.service.auth.v3.attribute_context_pb2 import AttributeContext as _AttributeContext  # noqa: E402
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest as _CheckRequest  # noqa: E402

from pilot.config.types import Protocol as _Protocol  # noqa: E402
from pilot.config.types import Resolution as _Resolution  # noqa: E402
from pilot.config.types import ServiceEntry as _ServiceEntry  # noqa: E402
from pilot.config.types import ServicePort as _ServicePort  # noqa: E402
from pilot.config.types import WorkloadEntry as _WorkloadEntry  # noqa: E402

MIXER_REVIEWS_IP = "127.0.0.21"  # reviews-v1 (default/reviews, sa reviews, labels app=reviews version=v1)
MIXER_RATINGS_IP = "127.0.0.41"  # ratings-v1 (default/ratings, sa ratings, labels app=ratings)
MIXER_PRODUCTPAGE_IP = "127.0.0.11"  # productpage-v1 (default, sa bookinfo-productpage, no service)
MIXER_PRODUCTPAGE_SPIFFE = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"


@pytest.fixture
def mixer_mesh(make_meta: Callable[..., ConfigMeta]) -> Callable[..., MeshSnapshot]:
    """``mixer_mesh(*policies, version=1)``: reviews (HTTP 9080) on reviews-v1, ratings (HTTP 9080) on ratings-v1,
    a productpage workload without a service, all in ``default``, plus ``policies``."""

    def workload(name: str, address: str, account: str, **labels: str) -> _WorkloadEntry:
        return _WorkloadEntry(
            meta=make_meta("WorkloadEntry", name),
            address=address,
            ports=_MappingProxyType({"http": 19080}),
            labels=_MappingProxyType(labels),
            service_account=account,
        )

    def service(name: str) -> _ServiceEntry:
        return _ServiceEntry(
            meta=make_meta("ServiceEntry", name),
            hosts=(f"{name}.default.svc.cluster.local",),
            ports=(_ServicePort(number=9080, name="http", protocol=_Protocol.HTTP),),
            location="MESH_INTERNAL",
            resolution=_Resolution.STATIC,
            workload_selector=_MappingProxyType({"app": name}),
        )

    def build(*policies: Resource, version: int = 1) -> MeshSnapshot:
        resources: tuple[Resource, ...] = (
            service("reviews"),
            service("ratings"),
            workload("reviews-v1", MIXER_REVIEWS_IP, "reviews", app="reviews", version="v1"),
            workload("ratings-v1", MIXER_RATINGS_IP, "ratings", app="ratings"),
            workload("productpage-v1", MIXER_PRODUCTPAGE_IP, "bookinfo-productpage", app="productpage"),
            *policies,
        )
        return build_snapshot({r.meta.key: r for r in resources}, version=version)

    return build


@pytest.fixture
def make_check_request() -> Callable[..., _CheckRequest]:
    """``make_check_request(path="/x", headers={...}, source_ip=..., principal=..., destination_ip=...)``: the
    CheckRequest of an inbound HTTP request to ``destination_ip:9080`` (default reviews-v1) from productpage over
    mutual TLS (``principal=""``: plaintext)."""

    def make(
        *,
        method: str = "GET",
        path: str = "/reviews/1",
        headers: dict[str, str] | None = None,
        source_ip: str = MIXER_PRODUCTPAGE_IP,
        source_port: int = 43210,
        principal: str = MIXER_PRODUCTPAGE_SPIFFE,
        destination_ip: str = MIXER_REVIEWS_IP,
        destination_port: int = 9080,
        sni: str = "",
    ) -> _CheckRequest:
        host = "reviews:9080"
        sent = {":authority": host, ":method": method, ":path": path, "user-agent": "curl/8.5.0", **(headers or {})}
        return _CheckRequest(
            attributes=_AttributeContext(
                source=_AttributeContext.Peer(
                    address=_Address(socket_address=_SocketAddress(address=source_ip, port_value=source_port)),
                    principal=principal,
                ),
                destination=_AttributeContext.Peer(
                    address=_Address(
                        socket_address=_SocketAddress(address=destination_ip, port_value=destination_port)
                    ),
                    principal="spiffe://cluster.local/ns/default/sa/reviews" if principal else "",
                ),
                request=_AttributeContext.Request(
                    http=_AttributeContext.HttpRequest(
                        id="0b5a4b3c-1",
                        method=method,
                        path=path,
                        host=host,
                        scheme="http",
                        protocol="HTTP/1.1",
                        headers=sent,
                    )
                ),
                tls_session=_AttributeContext.TLSSession(sni=sni),
            )
        )

    return make


# ----------------------------------------------------------------------------------------------------------------
# policy config rejections (tests/test_config_{authorization_policy,mixer_policy}.py)
# ----------------------------------------------------------------------------------------------------------------


def assert_rejected_with(docs: IstioDocs, kind: str, body: str, expected: list[tuple[int, str, str]]) -> None:
    """The document is rejected with exactly the ``expected`` (body line, field path, message part) errors."""
    errors = docs.errors(kind, body)
    for line, path, message in expected:
        docs.assert_error(errors, kind, line, path, message)
    assert len(errors) == len(expected), errors
