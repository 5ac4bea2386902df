"""The MutatingWebhookConfiguration that sends pods to the injector (Istio's ``istio-sidecar-injector``: two
webhooks, one per way a pod is selected, so the API server calls the injector only for pods that may be injected),
and keeping its ``caBundle`` equal to the mesh's current trust bundle.

- ``namespace.sidecar-injector.istio.io``: namespaces labelled ``istio-injection=enabled``, pods not labelled
  ``sidecar.istio.io/inject=false``;
- ``object.sidecar-injector.istio.io``: namespaces without an ``istio-injection`` label, pods labelled
  ``sidecar.istio.io/inject=true``.

Neither selects ``istio.io/rev`` (revisions are another injector's). The selectors see labels only: an annotation
``sidecar.istio.io/inject: "false"`` is honoured by the injector itself (``injector.policy``)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from injector.names import INJECT_KEY, INJECTION_NAMESPACE_LABEL, REVISION_LABEL

__all__ = ["WEBHOOK_CONFIGURATION", "sync_ca_bundle", "webhook_configuration"]

log = structlog.get_logger(__name__)

WEBHOOK_CONFIGURATION = "istio-sidecar-injector"
Obj = dict[str, Any]


def _expression(key: str, operator: str, *values: str) -> Obj:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


def _webhook(name: str, client_config: Obj, namespace: list[Obj], pod: list[Obj], failure_policy: str) -> Obj:
    return {
        "name": name,
        "admissionReviewVersions": ["v1", "v1beta1"],
        "clientConfig": client_config,
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "namespaceSelector": {"matchExpressions": namespace},
        "objectSelector": {"matchExpressions": pod},
        "reinvocationPolicy": "Never",
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        "sideEffects": "None",
        "timeoutSeconds": 10,
    }


def webhook_configuration(
    client_config: Mapping[str, Any],
    *,
    name: str = WEBHOOK_CONFIGURATION,
    ca_bundle: bytes = b"",
    failure_policy: str = "Fail",
    namespace_scope: Mapping[str, str] | None = None,
) -> Obj:
    """The configuration's body. ``client_config``: ``{"service": {...}}`` or ``{"url": ...}`` (its caBundle is
    set from ``ca_bundle``, PEM). ``namespace_scope``: labels every selected namespace must also carry (a test's
    own namespaces). ``failure_policy`` ``Fail`` (Istio's): while the injector is unreachable, pods it would
    select are not created; ``Ignore``: they are created without a sidecar."""
    config = {**client_config, "caBundle": base64.b64encode(ca_bundle).decode()}
    scope = [_expression(key, "In", value) for key, value in (namespace_scope or {}).items()]
    no_revision = _expression(REVISION_LABEL, "DoesNotExist")
    namespace_hook = _webhook(
        "namespace.sidecar-injector.istio.io",
        config,
        [_expression(INJECTION_NAMESPACE_LABEL, "In", "enabled"), no_revision, *scope],
        [_expression(INJECT_KEY, "NotIn", "false"), no_revision],
        failure_policy,
    )
    object_hook = _webhook(
        "object.sidecar-injector.istio.io",
        config,
        [_expression(INJECTION_NAMESPACE_LABEL, "DoesNotExist"), no_revision, *scope],
        [_expression(INJECT_KEY, "In", "true"), no_revision],
        failure_policy,
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app": "sidecar-injector", "istio": "sidecar-injector"}},
        "webhooks": [namespace_hook, object_hook],
    }


def sync_ca_bundle(api: client.ApiClient, name: str, bundle_pem: bytes) -> bool:
    """Set every webhook's ``caBundle`` in the MutatingWebhookConfiguration ``name`` to ``bundle_pem``; True when
    it changed something. A JSON Patch guarded by a ``test`` of the resourceVersion read (a concurrent change makes
    it fail: the caller retries on its next round). Blocking: run it in a thread."""
    admission = client.AdmissionregistrationV1Api(api)
    current = admission.read_mutating_webhook_configuration(name)
    wanted = base64.b64encode(bundle_pem).decode()
    version = current.metadata.resource_version if current.metadata is not None else None
    ops: list[Obj] = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
    for index, webhook in enumerate(current.webhooks or ()):
        if webhook.client_config.ca_bundle != wanted:
            ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": wanted})
    if len(ops) == 1:
        return False
    try:
        admission.patch_mutating_webhook_configuration(name, ops)
    except ApiException as exc:
        if exc.status in (409, 422):  # changed since it was read (the test op failed): next round
            log.info("webhook configuration changed while updating its caBundle; retrying", name=name)
            return False
        raise
    log.info("webhook caBundle updated", name=name, webhooks=len(ops) - 1)
    return True
