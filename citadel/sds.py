"""Envoy's SecretDiscoveryService: ``StreamSecrets`` (state of the world), ``DeltaSecrets`` and ``FetchSecrets``.

Every call is authenticated by its workload token (``authn.py``); the identity it proves is the SPIFFE ID of the
``default`` certificate the stream gets, with a key Citadel makes (``--key-type``); gateway credentials
(``kubernetes://<name>``, ``credential_store.py``) are served from that identity's namespace only, pushed when they
change, and not sent at all while missing (Envoy's listener keeps warming). ``ROOTCA`` is the trust bundle,
one resource shared by every stream until the bundle changes. The service keeps the open streams, so that a root
rotation can push to all of them and wait for their ACKs (``notify_all``, ``caught_up``), and the monitor can show
them (``sdsz``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from citadel.authn import Authenticator, refuse
from citadel.authority import Authority
from citadel.credential_store import CredentialStore, NotServed
from citadel.errors import CitadelError
from citadel.metrics import CitadelMetrics
from citadel.sds_resources import CONTROL_PLANE_ID, SECRET_TYPE, root_ca_secret, workload_secret
from citadel.sds_streams import SdsStream
from meshplane.identity import SDS_ROOT_CA, SDS_WORKLOAD_CERT
from xdscore import (
    Mode,
    Nonces,
    Request,
    Resource,
    StreamSettings,
    first_request,
    pass_bytes,
    stream_methods,
    unary_payload,
)

__all__ = ["SDS_SERVICE", "SdsService"]

log = structlog.get_logger(__name__)

SDS_SERVICE = "envoy.service.secret.v3.SecretDiscoveryService"


class SdsService:
    """The SDS handlers, the open streams, and the ROOTCA resource they share."""

    def __init__(
        self,
        *,
        authority: Authority,
        authenticator: Authenticator,
        metrics: CitadelMetrics,
        rotation_fraction: float = 0.5,
        send_timeout: float = 20.0,
        credentials: CredentialStore | None = None,
    ) -> None:
        """``credentials``: the gateway credentials served (``kubernetes://<name>``); a change pushes to the
        streams of its namespace. None: no credential is served (their listeners keep warming)."""
        if not 0.0 < rotation_fraction < 1.0:
            raise ValueError(f"rotation_fraction must be between 0 and 1 (exclusive), got {rotation_fraction}")
        self.authority = authority
        self._authenticator = authenticator
        self._metrics = metrics
        self._rotation_fraction = rotation_fraction
        self.credentials = credentials
        if credentials is not None:
            credentials.subscribe(self.credentials_changed)
        self._streams: dict[SdsStream, None] = {}  # insertion-ordered set
        self._root_ca: tuple[int, Resource] | None = None
        self._nonces = Nonces()
        self._stream_settings = StreamSettings(
            nonce=self._nonces,
            control_plane=CONTROL_PLANE_ID,
            send_timeout=send_timeout,
            default_type_url=SECRET_TYPE,  # SDS is not aggregated: a request may leave its type implicit
        )

    # ------------------------------------------------------------------------------------------ public API

    def handler(self) -> grpc.GenericRpcHandler:
        handlers = stream_methods(sotw="StreamSecrets", delta="DeltaSecrets", serve=self._serve)
        handlers["FetchSecrets"] = grpc.unary_unary_rpc_method_handler(
            self._fetch, request_deserializer=DiscoveryRequest.FromString, response_serializer=pass_bytes
        )
        return grpc.method_handlers_generic_handler(SDS_SERVICE, handlers)

    @property
    def streams(self) -> tuple[SdsStream, ...]:
        return tuple(self._streams)

    def root_ca(self) -> Resource:
        """ROOTCA for the authority's current trust bundle (built once per bundle)."""
        generation = self.authority.bundle_generation
        if self._root_ca is None or self._root_ca[0] != generation:
            self._root_ca = (generation, root_ca_secret(self.authority.trust_bundle_pem))
        return self._root_ca[1]

    def notify_all(self) -> None:
        """The authority's bundle or signer changed: every stream pushes what differs for it."""
        for stream in self._streams:
            stream.notify()

    def credentials_changed(self, namespace: str) -> None:
        """A credential of ``namespace`` changed: that namespace's streams push what differs for them."""
        for stream in self._streams:
            if stream.identity.namespace == namespace:
                stream.notify()

    def lagging(self) -> list[SdsStream]:
        """Streams that have not yet pushed the authority's current state, or not had it ACKed."""
        bundle, signer = self.authority.bundle_generation, self.authority.signer_generation
        return [s for s in self._streams if not s.caught_up(bundle_generation=bundle, signer_generation=signer)]

    async def wait_caught_up(self, timeout: float, *, poll: float = 0.05) -> list[SdsStream]:
        """Wait until every stream has pushed the current state and had it ACKed, at most ``timeout`` seconds.
        Returns the streams still lagging (empty: all caught up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            lagging = self.lagging()
            if not lagging or loop.time() >= deadline:
                return lagging
            await asyncio.sleep(poll)

    def oldest_workload_expiry_seconds(self) -> float | None:
        """Seconds until the first expiry among the certificates the open streams were sent; None if none."""
        expiries = [s.sent_workload.expires_at for s in self._streams if s.sent_workload is not None]
        if not expiries:
            return None
        return (min(expiries) - datetime.now(UTC)).total_seconds()

    def sdsz(self) -> dict[str, Any]:
        """Every open stream: identity, the serial and expiry of the certificate sent, ACK state."""
        streams = sorted((s.status() for s in self._streams), key=lambda s: (s["identity"], s["connected_at"]))
        return {
            "bundle_generation": self.authority.bundle_generation,
            "signer_generation": self.authority.signer_generation,
            "streams": streams,
        }

    # ------------------------------------------------------------------------------------------ RPCs

    async def _serve(
        self, requests: AsyncIterator[Request], context: grpc.aio.ServicerContext[Any, bytes], mode: Mode
    ) -> None:
        rpc = "StreamSecrets" if mode == "sotw" else "DeltaSecrets"
        try:
            identity = await self._authenticator.identity(context.invocation_metadata())
        except CitadelError as exc:
            await refuse(context, exc, rpc=rpc, metrics=self._metrics)
        first = await first_request(requests)
        if first is None:
            return
        stream = SdsStream(
            identity=identity,
            peer=context.peer(),
            mode=mode,
            authority=self.authority,
            root_ca=self.root_ca,
            write=context.write,
            metrics=self._metrics,
            settings=self._stream_settings,
            rotation_fraction=self._rotation_fraction,
            credentials=self.credentials,
        )
        self._streams[stream] = None
        self._metrics.connection_opened()
        log.info("SDS stream opened", spiffe_id=identity.spiffe_id, mode=mode, peer=stream.peer)
        try:
            await stream.serve(first, requests)
        except CitadelError as exc:
            await refuse(context, exc, rpc=rpc, metrics=self._metrics)
        except Exception as exc:
            log.exception("SDS stream failed", spiffe_id=identity.spiffe_id, peer=stream.peer)
            await refuse(context, CitadelError(f"internal error: {type(exc).__name__}"), rpc=rpc, metrics=self._metrics)
        finally:
            del self._streams[stream]
            self._metrics.connection_closed()
            log.info("SDS stream closed", spiffe_id=identity.spiffe_id, mode=mode, peer=stream.peer)

    async def _fetch(self, request: DiscoveryRequest, context: grpc.aio.ServicerContext[Any, bytes]) -> bytes:
        """Unary SDS: the requested secrets now (a new ``default`` certificate on every call)."""
        try:
            identity = await self._authenticator.identity(context.invocation_metadata())
            if request.type_url not in ("", SECRET_TYPE):
                raise _unsupported_type(request.type_url)
            resources: list[Resource] = []
            for name in sorted(set(request.resource_names)):
                if name == SDS_WORKLOAD_CERT:
                    workload = await self.authority.issued_workload(identity.spiffe_id)
                    self._metrics.issued("sds")
                    log.info("workload certificate issued", spiffe_id=identity.spiffe_id, serial=workload.serial)
                    resources.append(workload_secret(workload.chain_pem, workload.key_pem))
                elif name == SDS_ROOT_CA:
                    resources.append(self.root_ca())
                elif self.credentials is not None:
                    found = self.credentials.resource(name, identity.namespace)
                    if isinstance(found, NotServed):
                        log.warning(
                            "secret not served", resource=name, spiffe_id=identity.spiffe_id, reason=found.reason
                        )
                    else:
                        resources.append(found)
        except CitadelError as exc:
            await refuse(context, exc, rpc="FetchSecrets", metrics=self._metrics)
        return unary_payload(resources, type_url=SECRET_TYPE, nonce=self._nonces(), control_plane=CONTROL_PLANE_ID)


class _UnsupportedTypeError(CitadelError):
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


def _unsupported_type(type_url: str) -> CitadelError:
    return _UnsupportedTypeError(f"SecretDiscoveryService serves {SECRET_TYPE} only, not {type_url[:200]!r}")
