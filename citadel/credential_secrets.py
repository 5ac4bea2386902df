"""Gateway credentials from the Kubernetes Secrets of every namespace (``citadel --kubeconfig/--in-cluster``).

One watch (``meshplane.kube_watch.Watcher``: list, watch from the last version seen, relist on ``410 Gone``) of
the Secrets that can hold credentials: as istiod's, it leaves out service-account tokens and Helm releases (a field
selector on ``type``). Each Secret's ``data`` (base64) is decoded into the store; a change is pushed by Citadel's SDS
to the gateways of that namespace (a rotated certificate reaches Envoy without a restart).

RBAC: ``get``, ``list``, ``watch`` on ``secrets`` at cluster scope, as istiod's ClusterRole.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from typing import Any

import structlog
from kubernetes import client

from citadel.credential_store import CredentialStore, SecretKey
from citadel.credentials import SecretData
from meshplane.kube_kinds import core_kind
from meshplane.kube_watch import Delivery, Listed, Unavailable, Watcher, WatchOptions, deliver_on_loop

__all__ = ["CREDENTIAL_SECRETS_SELECTOR", "SECRETS", "KubeCredentials", "secret_data"]

log = structlog.get_logger(__name__)

SECRETS = core_kind("Secret", "secrets")
CREDENTIAL_SECRETS_SELECTOR = "type!=kubernetes.io/service-account-token,type!=helm.sh/release.v1"


def secret_data(obj: Mapping[str, Any]) -> SecretData:
    """A Secret's ``data``, decoded (a value that is not base64 is left out, and logged)."""
    decoded: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            decoded[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            metadata = obj.get("metadata") or {}
            log.warning(
                "secret value is not base64", namespace=metadata.get("namespace"), name=metadata.get("name"), key=key
            )
    return decoded


def _key(obj: Mapping[str, Any]) -> SecretKey:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


class KubeCredentials:
    """Keeps ``store`` equal to the cluster's credential Secrets; ``run`` until cancelled."""

    def __init__(self, api: client.ApiClient, store: CredentialStore) -> None:
        self._api = api
        self._store = store

    def apply(self, delivery: Delivery) -> None:
        """One delivery of the watch (on the event loop)."""
        if isinstance(delivery, Unavailable):
            return
        if isinstance(delivery, Listed):
            self._store.replace({_key(obj): secret_data(obj) for obj in delivery.objects})
            log.info("gateway credentials listed", secrets=len(delivery.objects), relist=delivery.relist)
            return
        namespace, name = _key(delivery.event.object)
        if delivery.event.type == "DELETED":
            self._store.delete(namespace, name)
        else:
            self._store.put(namespace, name, secret_data(delivery.event.object))

    async def run(self) -> None:
        deliver = deliver_on_loop(asyncio.get_running_loop(), self.apply)
        watcher = Watcher(self._api, SECRETS, deliver, WatchOptions(field_selector=CREDENTIAL_SECRETS_SELECTOR))
        watcher.start()
        log.info("serving gateway credentials from Kubernetes Secrets", field_selector=CREDENTIAL_SECRETS_SELECTOR)
        try:
            await asyncio.Event().wait()
        finally:
            watcher.stop()
