"""Citadel as a running server: the CA directory, one TLS gRPC server (SDS + CSR), root rotation, the monitor.

``CitadelServer`` loads (or creates) the CA in ``--ca-dir`` and the token key, issues its serving certificate,
and serves ``envoy.service.secret.v3.SecretDiscoveryService`` and ``meshplane.citadel.v1.CertificateService`` on
one ``grpc.aio`` server over TLS; ``RootRotation`` polls the directory. With Kubernetes access (``kube``), tokens
other than meshplane's are reviewed by the API server (``token_review.py``) and ``RootCertPublisher`` keeps
``istio-ca-root-cert`` in every namespace; with ``ca_secret`` the self-signed CA is kept in that Secret
(``ca_secret_store.py``: loaded at start, stored when new, updated after a root rotation). Gateway credentials
(``kubernetes://<credentialName>`` over SDS) come from ``credentials_dir`` or, with Kubernetes access, from the
Secrets of every namespace (``credential_store.py``). ``run_citadel`` adds
the monitor (``/ready``, ``/metrics``, ``/debug/sdsz``) and runs until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client, config

from citadel.authn import Authenticator
from citadel.authority import Authority, serial_hex
from citadel.ca import KeyType, certificate_fingerprint
from citadel.ca_dir import CAState, load_or_create_ca, load_or_create_token_key
from citadel.ca_secret import SecretRef
from citadel.ca_secret_store import CASecretStore, CASecretSync, load_or_create_ca_with_secret
from citadel.credential_dir import CredentialDir
from citadel.credential_secrets import KubeCredentials
from citadel.credential_store import CredentialStore
from citadel.csr import CsrService
from citadel.kube_tokens import DEFAULT_TOKEN_AUDIENCE
from citadel.metrics import CitadelMetrics
from citadel.monitor import CitadelMonitor, parse_address
from citadel.root_cert_publisher import RootCertPublisher
from citadel.rotation import RootRotation
from citadel.sds import SdsService
from citadel.serving import SERVING_CERT_TTL, ServingCredentials
from citadel.token_review import DEFAULT_REVIEW_CACHE_TTL, ReviewCache, TokenReviewer, kube_token_review
from meshplane.identity import DEFAULT_TRUST_DOMAIN
from meshplane.kube_api import KubeAccess, new_api_client
from meshplane.serving import stop_on_signals

__all__ = ["CitadelOptions", "CitadelServer", "run_citadel"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CitadelOptions:
    ca_dir: Path
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    sds_address: str = "127.0.0.1:15012"
    monitor_address: str = "127.0.0.1:15019"
    cert_ttl: timedelta = timedelta(hours=24)
    rotation_fraction: float = 0.5
    key_type: KeyType = "ecdsa"
    root_rotation_grace: float = 2.0  # seconds after every stream ACKed a phase
    root_rotation_ack_timeout: float = 30.0  # longest a phase waits for ACKs
    root_poll_interval: float = 1.0
    serving_cert_ttl: timedelta = SERVING_CERT_TTL
    kube: KubeAccess | None = None  # Kubernetes service-account tokens and the root-cert ConfigMaps
    token_audience: str = DEFAULT_TOKEN_AUDIENCE
    token_review_cache_ttl: timedelta = DEFAULT_REVIEW_CACHE_TTL
    root_cert_configmaps: bool = True  # with ``kube``: keep istio-ca-root-cert in every namespace
    namespace_selector: str = ""  # a label selector: only these namespaces get it ("": all)
    ca_secret: SecretRef | None = None  # with ``kube``: the self-signed CA kept in this Secret (istio-ca-secret)
    credentials_dir: Path | None = None  # gateway credentials from DIR/<namespace>/<name>/ (instead of Secrets)
    credential_secrets: bool = True  # with ``kube`` and no credentials_dir: gateway credentials from Secrets
    credentials_poll_interval: float = 1.0  # how often credentials_dir is read

    def __post_init__(self) -> None:
        if self.ca_secret is not None and self.kube is None:
            raise ValueError("ca_secret needs Kubernetes access (kube)")
        if self.credentials_poll_interval <= 0:
            raise ValueError(f"credentials_poll_interval must be positive, got {self.credentials_poll_interval}")
        if not self.token_audience:
            raise ValueError("token_audience must not be empty")
        if self.token_review_cache_ttl < timedelta(0):
            raise ValueError(f"token_review_cache_ttl must not be negative, got {self.token_review_cache_ttl}")
        if self.cert_ttl <= timedelta(0):
            raise ValueError(f"cert_ttl must be positive, got {self.cert_ttl}")
        if not 0.0 < self.rotation_fraction < 1.0:
            raise ValueError(f"rotation_fraction must be between 0 and 1 (exclusive), got {self.rotation_fraction}")
        parse_address(self.sds_address)
        parse_address(self.monitor_address)


class CitadelServer:
    """The gRPC server (SDS + CSR over TLS) and the root-rotation poller of one Citadel."""

    def __init__(self, options: CitadelOptions, *, metrics: CitadelMetrics | None = None) -> None:
        self.options = options
        self.metrics = metrics or CitadelMetrics()
        self.port: int | None = None
        self.authority: Authority | None = None
        self.sds: SdsService | None = None
        self.rotation: RootRotation | None = None
        self.serving: ServingCredentials | None = None
        self._server: grpc.aio.Server | None = None
        self._rotation_task: asyncio.Task[None] | None = None
        self._publisher_task: asyncio.Task[None] | None = None
        self._secret_task: asyncio.Task[None] | None = None
        self._credentials_task: asyncio.Task[None] | None = None
        self.credentials: CredentialStore | None = None
        self.ca_secret_sync: CASecretSync | None = None
        self._kube_api: client.ApiClient | None = None
        self._stopped = False

    @property
    def ready(self) -> bool:
        return self._server is not None and not self._stopped

    @property
    def host(self) -> str:
        return parse_address(self.options.sds_address)[0]

    async def start(self) -> None:
        """Load the CA, issue the serving certificate, listen (port 0 picks one: see ``self.port``)."""
        if self._server is not None or self._stopped:
            raise RuntimeError("CitadelServer already started (a stopped server cannot be restarted)")
        options = self.options
        await self._connect_kube()
        state = await asyncio.to_thread(self._load_ca)
        token_key = await asyncio.to_thread(load_or_create_token_key, options.ca_dir)
        # Restarted in the middle of a root rotation: sign with the previous root (every workload trusts it) while
        # both roots are in the bundle; RootRotation.run then moves to the new root in its ACK-gated phases.
        authority = Authority(
            signer=state.previous_signer or state.signer,
            trust_bundle=state.trust_bundle,
            cert_ttl=options.cert_ttl,
            key_type=options.key_type,
        )
        reviewer = self._token_reviewer()
        authenticator = Authenticator(token_key.public_key(), trust_domain=options.trust_domain, kubernetes=reviewer)
        gateway_credentials, credentials_source = self._credential_source()
        sds = SdsService(
            authority=authority,
            authenticator=authenticator,
            metrics=self.metrics,
            rotation_fraction=options.rotation_fraction,
            credentials=gateway_credentials,
        )
        csr = CsrService(authority=authority, authenticator=authenticator, metrics=self.metrics)
        serving = ServingCredentials(authority, host=self.host, ttl=options.serving_cert_ttl)
        credentials = await serving.start()
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((sds.handler(), csr.handler()))
        try:
            self.port = server.add_secure_port(options.sds_address, credentials)
        except RuntimeError as exc:
            serving.close()
            raise OSError(f"citadel: cannot listen on {options.sds_address!r}: {exc}") from exc
        if self.port == 0:
            serving.close()
            raise OSError(f"citadel: cannot listen on {options.sds_address!r}")
        await server.start()
        self.authority, self.sds, self.serving, self._server = authority, sds, serving, server
        self.metrics.observe_expiries(
            root=authority.root_expiry_seconds, oldest_workload=sds.oldest_workload_expiry_seconds
        )
        self.rotation = RootRotation(
            ca_dir=options.ca_dir,
            state=state,
            authority=authority,
            sds=sds,
            on_signer_changed=serving.renew,
            on_state=self._follow_in_secret(state, token_key),
            grace=options.root_rotation_grace,
            ack_timeout=options.root_rotation_ack_timeout,
            poll_interval=options.root_poll_interval,
        )
        self._rotation_task = asyncio.create_task(self.rotation.run(), name="root-rotation")
        self._rotation_task.add_done_callback(_log_rotation_end)
        if credentials_source is not None:
            self.credentials = gateway_credentials
            self._credentials_task = asyncio.create_task(credentials_source, name="gateway-credentials")
            self._credentials_task.add_done_callback(_log_credentials_end)
        if self._kube_api is not None and options.root_cert_configmaps:
            publisher = RootCertPublisher(
                client.CoreV1Api(self._kube_api),
                authority=authority,
                metrics=self.metrics,
                namespace_selector=options.namespace_selector,
            )
            self._publisher_task = asyncio.create_task(publisher.run(), name="root-cert-configmaps")
            self._publisher_task.add_done_callback(_log_publisher_end)
        log.info(
            "citadel serving SDS and CSR over TLS",
            address=options.sds_address,
            port=self.port,
            ca_mode=state.mode,
            root=certificate_fingerprint(state.root),
            trust_domain=options.trust_domain,
            cert_ttl=str(options.cert_ttl),
            key_type=options.key_type,
            kubernetes=options.kube.describe() if options.kube is not None else None,
            token_audience=options.token_audience if options.kube is not None else None,
            ca_secret=str(options.ca_secret) if options.ca_secret is not None and state.mode == "self-signed" else None,
            gateway_credentials=gateway_credentials.source if gateway_credentials is not None else None,
        )

    async def _connect_kube(self) -> None:
        kube = self.options.kube
        if kube is None:
            return
        try:
            self._kube_api = await asyncio.to_thread(new_api_client, kube)
        except config.ConfigException as exc:
            raise OSError(f"cannot use {kube.describe()}: {exc}") from exc

    def _load_ca(self) -> CAState:
        """The CA directory's CA; with ``ca_secret``, kept in (or loaded from) that Secret (ca_secret_store.py)."""
        options = self.options
        if options.ca_secret is None or self._kube_api is None:
            return load_or_create_ca(options.ca_dir, options.trust_domain)
        store = CASecretStore(self._kube_api, options.ca_secret)
        return load_or_create_ca_with_secret(options.ca_dir, options.trust_domain, store)

    def _follow_in_secret(self, state: CAState, token_key: ec.EllipticCurvePrivateKey) -> Callable[[CAState], None]:
        """What RootRotation calls with each new state: the Secret follows (nothing without ``ca_secret``)."""
        if self.options.ca_secret is None or self._kube_api is None:
            return lambda _state: None
        sync = CASecretSync(CASecretStore(self._kube_api, self.options.ca_secret), token_key, state)
        self.ca_secret_sync = sync
        self._secret_task = asyncio.create_task(sync.run(), name="ca-secret")
        self._secret_task.add_done_callback(_log_secret_end)
        return sync.follow

    def _credential_source(self) -> tuple[CredentialStore | None, Coroutine[Any, Any, None] | None]:
        """The gateway credentials' store and the task that fills it: the credentials directory, else with
        Kubernetes access the Secrets of every namespace, else none."""
        options = self.options
        if options.credentials_dir is not None:
            store = CredentialStore(source=f"directory {options.credentials_dir}")
            source = CredentialDir(options.credentials_dir, store, poll=options.credentials_poll_interval)
            source.read_once()  # served from the first stream on
            return store, source.run()
        if self._kube_api is not None and options.credential_secrets:
            store = CredentialStore(source="Kubernetes Secrets")
            return store, KubeCredentials(self._kube_api, store).run()
        return None, None

    def _token_reviewer(self) -> TokenReviewer | None:
        options = self.options
        if self._kube_api is None:
            return None
        return TokenReviewer(
            kube_token_review(self._kube_api),
            trust_domain=options.trust_domain,
            audience=options.token_audience,
            cache=ReviewCache(ttl=options.token_review_cache_ttl),
            metrics=self.metrics,
        )

    async def stop(self, grace: float) -> None:
        """Stop polling; give open streams ``grace`` seconds, then cancel them. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for task in (self._rotation_task, self._publisher_task, self._secret_task, self._credentials_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.serving is not None:
            self.serving.close()
        if self._server is not None:
            await self._server.stop(grace)
        self.metrics.shutdown()
        if self._kube_api is not None:
            self._kube_api.close()  # type: ignore[no-untyped-call]  # untyped upstream

    def sdsz(self) -> dict[str, Any]:
        """``/debug/sdsz``: the CA in use, the rotation phase, and every SDS stream."""
        if self.sds is None or self.authority is None:
            return {"streams": []}
        authority = self.authority
        serving = self.serving.current if self.serving is not None else None
        return {
            "ca": {
                "signer_root": certificate_fingerprint(authority.signer.root),
                "trust_bundle": [certificate_fingerprint(root) for root in authority.trust_bundle],
                "root_expires_at": authority.trust_bundle[0].not_valid_after_utc.isoformat(),
                "rotation_phase": self.rotation.phase if self.rotation is not None else "idle",
                "serving_serial": serial_hex(serving.leaf) if serving is not None else None,
                "serving_expires_at": serving.expires_at.isoformat() if serving is not None else None,
            },
            "now": datetime.now(UTC).isoformat(),
            **self.sds.sdsz(),
        }


def _log_rotation_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("root rotation poller stopped", error=repr(task.exception()))


def _log_secret_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("CA Secret writer stopped", error=repr(task.exception()))


def _log_credentials_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("gateway credentials source stopped", error=repr(task.exception()))


def _log_publisher_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("root-cert ConfigMap publisher stopped", error=repr(task.exception()))


async def run_citadel(options: CitadelOptions, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM arrives when no event is given)."""
    stop = stop or stop_on_signals()
    server = CitadelServer(options)
    await server.start()
    monitor = CitadelMonitor(options.monitor_address, server=server)
    try:
        await monitor.start()
        log.info("citadel ready", sds=options.sds_address, monitor=monitor.url, ca_dir=str(options.ca_dir))
        await stop.wait()
    finally:
        await monitor.stop()
        await server.stop(grace=1.0)
        log.info("citadel stopped")
