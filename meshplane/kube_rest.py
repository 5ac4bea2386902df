"""Plain JSON requests to a Kubernetes API server through the official client's connection pool and credentials.

Leader election (``kube_leader``) and status writes send and read the API's JSON as it is (a Lease's
``renewTime`` must keep its microseconds, a merge patch its ``null``s, a 409 must be a value to branch on, not an
exception), so they skip the client's generated models: ``kube_request`` returns the HTTP status and the decoded
body, whatever the status. Only a request that never got an answer (connection refused, TLS, timeout) raises
``KubeUnavailable``.

Synchronous, as the client is: call it in a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client

__all__ = [
    "CONFLICT",
    "JSON",
    "MERGE_PATCH",
    "NOT_FOUND",
    "KubeResponse",
    "KubeUnavailable",
    "kube_request",
]

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"  # RFC 7386: what the body names is replaced, a null removes a field
NOT_FOUND = 404
CONFLICT = 409  # a write's resourceVersion is not the object's any more (or a create found the name taken)
DEFAULT_TIMEOUT_SECONDS = 10.0


class KubeUnavailable(ConnectionError):
    """A request to the API server got no HTTP answer (refused, reset, TLS failure, timeout)."""


@dataclass(frozen=True, slots=True)
class KubeResponse:
    """An API server's answer: its HTTP status and its JSON body (``{}`` when it had none or it was not JSON)."""

    status: int
    body: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def reason(self) -> str:
        """The API's ``Status`` message for an error (``leases "x" not found``), or the bare HTTP status."""
        message = self.body.get("message")
        return f"{self.status}: {message}" if isinstance(message, str) and message else f"HTTP {self.status}"


def kube_request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    content_type: str = JSON,
    query: Sequence[tuple[str, str]] = (),
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> KubeResponse:
    """``method`` ``path`` (``/apis/coordination.k8s.io/v1/namespaces/ns/leases/name``) with a JSON ``body``."""
    headers = {"Accept": JSON}
    if body is not None:
        headers["Content-Type"] = content_type
    try:
        method, url, headers, _, _ = api.param_serialize(
            method, path, query_params=list(query), header_params=headers, auth_settings=["BearerToken"]
        )
        response = api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
        try:
            data: bytes = response.response.data
        finally:
            response.response.release_conn()
    except (urllib3.exceptions.HTTPError, client.ApiException, OSError) as error:  # ApiException: TLS (status 0)
        raise KubeUnavailable(f"{method} {path}: {error}") from error
    return KubeResponse(status=int(response.status), body=_decoded(data))


def _decoded(data: bytes) -> Mapping[str, Any]:
    try:
        decoded = json.loads(data) if data else {}
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
