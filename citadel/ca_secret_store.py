"""Citadel's self-signed CA kept in a Kubernetes Secret (``--ca-secret``, ``ca_secret.py`` says what is in it), as
istiod keeps ``istio-ca-secret``, so that a restarted Citadel, or a second replica, is the same CA.

At start (``load_or_create_ca_with_secret``, blocking: run it in a thread), in this order:

1. a plugged-in CA in the CA directory (Istio's ``cacerts``, copied there by the manifests' init container) wins,
   as in Istio: the Secret is neither read nor written;
2. the Secret exists: its CA is checked, then written into the CA directory (the working copy that
   ``citadel rotate-root`` and ``RootRotation`` use) and loaded from there;
3. it does not: the CA directory's CA (created there as without Kubernetes when it holds none) is stored in a new
   Secret. A ``409 Conflict`` means another replica created it first: its CA is loaded instead (2).

After start, ``CASecretSync`` keeps the Secret equal to the CA directory whenever ``RootRotation`` sees it change:
the new root and the previous one while a rotation is in progress, the new root alone once it is retired. Writes
carry the ``resourceVersion`` read; a conflict re-reads. A failed write is retried with a backoff (1 s doubling to
30 s) and never stops the rotation.

Every request goes through ``meshplane.kube_rest`` (JSON as it is, a 409 a value); an unreachable API server or a
5xx is retried a few times, then the start fails with the reason (Kubernetes restarts the pod). Nothing here logs
the Secret's data. RBAC: ``get`` and ``update`` on ``secrets`` named ``istio-ca-secret`` and ``create`` on
``secrets`` (RBAC cannot limit ``create`` to a name), in Citadel's namespace only (a Role).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from citadel.ca import certificate_fingerprint
from citadel.ca_dir import (
    CA_KEY,
    PREVIOUS_ROOT_CERT,
    TOKEN_KEY,
    CAState,
    load_or_create_ca,
    load_or_create_token_key,
    replace_ca_files,
)
from citadel.ca_secret import CA_SECRET_TYPE, SecretRef, ca_files_from_secret, secret_data, state_from_secret
from citadel.errors import CAError, KubeApiError
from meshplane.kube_rest import CONFLICT, NOT_FOUND, KubeResponse, KubeUnavailable, kube_request

__all__ = ["CASecretStore", "CASecretSync", "CASecrets", "StoredSecret", "load_or_create_ca_with_secret"]

log = structlog.get_logger(__name__)

_START_ATTEMPTS = 5  # create/replace races lost in a row before giving up
_UNAVAILABLE_RETRIES = (0.5, 1.0, 2.0, 4.0)  # seconds between tries of one request
_FIRST_RETRY = 1.0
_MAX_RETRY = 30.0


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """The Secret as read: its ``data`` (base64 values) and the ``resourceVersion`` an update must carry."""

    data: Mapping[str, Any]
    resource_version: str


class CASecrets(Protocol):
    """Where the CA is kept: the API server (``CASecretStore``) or, in tests, memory."""

    @property
    def ref(self) -> SecretRef: ...

    def read(self) -> StoredSecret | None: ...

    def create(self, data: Mapping[str, str]) -> bool: ...

    def replace(self, data: Mapping[str, str], resource_version: str) -> bool: ...


class CASecretStore:
    """The one Secret on the API server (blocking calls: run them in a thread). ``create``/``replace`` answer False
    on a conflict; any other refusal raises KubeApiError with the API's message (never the data)."""

    def __init__(
        self,
        api: client.ApiClient,
        ref: SecretRef,
        *,
        retries: tuple[float, ...] = _UNAVAILABLE_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = api
        self._ref = ref
        self._retries = retries
        self._sleep = sleep

    @property
    def ref(self) -> SecretRef:
        return self._ref

    @property
    def _collection(self) -> str:
        return f"/api/v1/namespaces/{self._ref.namespace}/secrets"

    def read(self) -> StoredSecret | None:
        response = self._request("GET", f"{self._collection}/{self._ref.name}")
        if response.status == NOT_FOUND:
            return None
        self._check(response, "read")
        metadata = response.body.get("metadata") or {}
        data = response.body.get("data") or {}
        return StoredSecret(data=data, resource_version=str(metadata.get("resourceVersion", "")))

    def create(self, data: Mapping[str, str]) -> bool:
        response = self._request("POST", self._collection, body=self._secret(data, resource_version=None))
        if response.status == CONFLICT:
            return False
        self._check(response, "create")
        return True

    def replace(self, data: Mapping[str, str], resource_version: str) -> bool:
        body = self._secret(data, resource_version=resource_version)
        response = self._request("PUT", f"{self._collection}/{self._ref.name}", body=body)
        if response.status in (CONFLICT, NOT_FOUND):  # changed or deleted since read: read again
            return False
        self._check(response, "update")
        return True

    def _secret(self, data: Mapping[str, str], *, resource_version: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self._ref.name,
            "namespace": self._ref.namespace,
            "labels": {"app.kubernetes.io/part-of": "meshplane", "app.kubernetes.io/managed-by": "citadel"},
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": CA_SECRET_TYPE, "data": dict(data)}

    def _request(self, method: str, path: str, *, body: Mapping[str, Any] | None = None) -> KubeResponse:
        for delay in (*self._retries, None):
            try:
                response = kube_request(self._api, method, path, body=body)
            except KubeUnavailable as exc:
                if delay is None:
                    raise KubeApiError(f"Secret {self._ref}: the API server did not answer: {exc}") from None
                log.warning("ca_secret_api_unavailable", secret=str(self._ref), method=method, retry_in=delay)
            else:
                if (response.status < 500 and response.status != 429) or delay is None:
                    return response
                log.warning("ca_secret_api_error", secret=str(self._ref), status=response.status, retry_in=delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, response: KubeResponse, verb: str) -> None:
        if response.ok:
            return
        hint = ""
        if response.status == 403:
            hint = (
                f" (Citadel's Role in {self._ref.namespace} must grant get, update on secrets named "
                f"{self._ref.name} and create on secrets)"
            )
        raise KubeApiError(f"cannot {verb} Secret {self._ref}: {response.reason()}{hint}")


def _describe(state: CAState) -> dict[str, Any]:
    return {
        "root": certificate_fingerprint(state.root),
        "rotating": state.previous_root is not None,
        "not_after": state.root.not_valid_after_utc.isoformat(),
    }


def _load_from_secret(ca_dir: Path, trust_domain: str, secrets: CASecrets, stored: StoredSecret) -> CAState | None:
    """The Secret's CA, written into ``ca_dir`` and loaded from there; None when the Secret lacked meshplane's token
    key and changed while it was added (read it again)."""
    state_from_secret(secrets.ref, stored.data)  # checked before anything is written
    files = ca_files_from_secret(secrets.ref, stored.data)
    replace_ca_files(ca_dir, files)
    state = load_or_create_ca(ca_dir, trust_domain)
    if TOKEN_KEY not in files:  # a Secret istiod wrote: add the key of meshplane's workload tokens
        token_key = load_or_create_token_key(ca_dir)
        if not secrets.replace(secret_data(state, token_key), stored.resource_version):
            return None
        log.info("ca_secret_token_key_added", secret=str(secrets.ref))
    log.info("ca_loaded_from_secret", secret=str(secrets.ref), ca_dir=str(ca_dir), **_describe(state))
    return state


def load_or_create_ca_with_secret(ca_dir: Path, trust_domain: str, secrets: CASecrets) -> CAState:
    """The CA Citadel serves (see the module docstring for the order). CAError or KubeApiError when it cannot."""
    if (ca_dir / CA_KEY).exists():
        state = load_or_create_ca(ca_dir, trust_domain)
        log.info(
            "ca_secret_not_used",
            secret=str(secrets.ref),
            reason="a plugged-in CA (cacerts) is in the CA directory: it wins over the self-signed CA's Secret",
        )
        return state
    for _ in range(_START_ATTEMPTS):
        stored = secrets.read()
        if stored is not None:
            loaded = _load_from_secret(ca_dir, trust_domain, secrets, stored)
            if loaded is not None:
                return loaded
            continue
        state = load_or_create_ca(ca_dir, trust_domain)
        token_key = load_or_create_token_key(ca_dir)
        if secrets.create(secret_data(state, token_key)):
            log.info("ca_secret_created", secret=str(secrets.ref), **_describe(state))
            return state
        log.info("ca_secret_created_by_another_replica", secret=str(secrets.ref))  # 409: load theirs
    raise CAError(f"Secret {secrets.ref} kept changing while Citadel loaded it ({_START_ATTEMPTS} tries)")


class CASecretSync:
    """Keeps the Secret equal to the CA directory's self-signed CA: ``follow(state)`` whenever it changes (root
    rotation), ``run`` writes it (until cancelled)."""

    def __init__(self, secrets: CASecrets, token_key: ec.EllipticCurvePrivateKey, initial: CAState) -> None:
        self._secrets = secrets
        self._token_key = token_key
        self._written = self._data(initial)
        self._wanted = self._written
        self._wake = asyncio.Event()
        self.writes = 0

    def _data(self, state: CAState) -> dict[str, str] | None:
        return secret_data(state, self._token_key) if state.mode == "self-signed" else None

    @property
    def in_step(self) -> bool:
        return self._wanted == self._written

    def follow(self, state: CAState) -> None:
        """Ask for the Secret to hold ``state`` (a plugged-in state is never stored)."""
        wanted = self._data(state)
        if wanted is None:
            return
        self._wanted = wanted
        if not self.in_step:
            self._wake.set()

    async def run(self) -> None:
        delay = _FIRST_RETRY
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted = self._wanted
            if wanted is None or wanted == self._written:
                continue
            try:
                await asyncio.to_thread(self._write, wanted)
            except (KubeApiError, CAError) as exc:
                log.warning("ca_secret_update_failed", secret=str(self._secrets.ref), reason=exc.reason, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY)
                self._wake.set()
                continue
            delay = _FIRST_RETRY
            self._written = wanted
            self.writes += 1
            log.info("ca_secret_updated", secret=str(self._secrets.ref), roots=2 if PREVIOUS_ROOT_CERT in wanted else 1)

    def _write(self, wanted: Mapping[str, str]) -> None:
        for _ in range(_START_ATTEMPTS):
            stored = self._secrets.read()
            if stored is None:
                if self._secrets.create(wanted):
                    return
            elif dict(stored.data) == dict(wanted) or self._secrets.replace(wanted, stored.resource_version):
                return
        raise CAError(f"Secret {self._secrets.ref} kept changing while Citadel wrote it ({_START_ATTEMPTS} tries)")
