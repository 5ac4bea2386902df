"""Plain JSON requests to a Kubernetes API server through the official client's ``ApiClient`` (its configuration,
auth, TLS and connection pool), skipping the client's generated models: the JSON as the API sends it
(``kubectl get -o json``).

- ``kube_request``: any method, for writers (leader election in ``kube_leader``, status writes, Citadel's CA
  Secret): a Lease's ``renewTime`` must keep its microseconds, a merge patch its ``null``s, a 409 must be a value to
  branch on, not an exception. It returns the HTTP status and the decoded body (``KubeResponse``), whatever the
  status; only a request that never got an answer (connection refused, TLS, timeout) raises ``KubeUnavailable``.
- ``get_json``, ``open_stream``, ``iter_lines``, ``served_resources``: for readers (``kube_watch``): a GET's JSON
  (``ApiStatusError`` on an error status: 404 not served, 410 gone), a streamed watch and its lines, discovery.
  Every kind is read this way, core or custom, whatever version is served (the typed client has no class for
  EndpointSlice ``v1beta1``, and the registry and the config layer read plain objects anyway).

Synchronous, as the client is: call it in a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client

from meshplane.kube_kinds import ApiKind

__all__ = [
    "CONFLICT",
    "JSON",
    "MERGE_PATCH",
    "NOT_FOUND",
    "ApiStatusError",
    "KubeResponse",
    "KubeUnavailable",
    "get_json",
    "iter_lines",
    "kube_request",
    "open_stream",
    "served_resources",
]

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"  # RFC 7386: what the body names is replaced, a null removes a field
NOT_FOUND = 404
CONFLICT = 409  # a write's resourceVersion is not the object's any more (or a create found the name taken)
DEFAULT_TIMEOUT_SECONDS = 10.0
_LIST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds of a plain GET

Query = Sequence[tuple[str, str]]
Timeout = float | tuple[float, float]  # total, or (connect, read), seconds


class KubeUnavailable(ConnectionError):
    """A request to the API server got no HTTP answer (refused, reset, TLS failure, timeout)."""


class ApiStatusError(Exception):
    """The API server answered a GET with an error status."""

    def __init__(self, status: int, path: str, body: bytes) -> None:
        message = _status_message(body)
        super().__init__(f"GET {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message


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
    query: Query = (),
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> KubeResponse:
    """``method`` ``path`` (``/apis/coordination.k8s.io/v1/namespaces/ns/leases/name``) with a JSON ``body``."""
    headers = {"Accept": JSON}
    if body is not None:
        headers["Content-Type"] = content_type
    try:
        status, data = _read_whole(_send(api, method, path, query=query, headers=headers, body=body, timeout=timeout))
    except (urllib3.exceptions.HTTPError, client.ApiException, OSError) as error:  # ApiException: TLS (status 0)
        raise KubeUnavailable(f"{method} {path}: {error}") from error
    return KubeResponse(status=status, body=_decoded(data))


def get_json(api: client.ApiClient, path: str, query: Query = ()) -> Mapping[str, Any]:
    """One GET, its JSON body; ``ApiStatusError`` on an error status."""
    status, data = _read_whole(_send(api, "GET", path, query=query, headers={"Accept": JSON}, timeout=_LIST_TIMEOUT))
    if status != 200:
        raise ApiStatusError(status, path, data)
    decoded: Mapping[str, Any] = json.loads(data)
    return decoded


def open_stream(api: client.ApiClient, path: str, query: Query, read_timeout: float) -> urllib3.BaseHTTPResponse:
    """A streamed GET (a watch), still open; ``ApiStatusError`` (and the response closed) on an error status."""
    response = _send(api, "GET", path, query=query, headers={"Accept": JSON}, timeout=(10.0, read_timeout))
    if response.status != 200:
        try:
            data = response.read()
        finally:
            response.release_conn()
        raise ApiStatusError(response.status, path, data)
    return response


def iter_lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The lines of a streamed response as they arrive (a watch sends one JSON event per line)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def served_resources(api: client.ApiClient, kind: ApiKind) -> dict[str, frozenset[str]]:
    """For each of the kind's versions that its group serves: the plurals that version serves (discovery)."""
    served: dict[str, frozenset[str]] = {}
    for version in kind.versions:
        try:
            listing = get_json(api, kind.discovery_path(version))
        except ApiStatusError as exc:
            if exc.status == NOT_FOUND:
                continue
            raise
        resources = listing.get("resources") or ()
        served[version] = frozenset(
            name for r in resources if isinstance(name := r.get("name"), str) and "/" not in name
        )
    return served


def _send(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Query,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None = None,
    timeout: Timeout,
) -> urllib3.BaseHTTPResponse:
    """The request sent, its response not read yet (``_read_whole`` reads it, or a watch streams it)."""
    method, url, headers, _, _ = api.param_serialize(
        method, path, query_params=list(query), header_params=dict(headers), auth_settings=["BearerToken"]
    )
    response: urllib3.BaseHTTPResponse = api.call_api(
        method, url, header_params=headers, body=body, _request_timeout=timeout
    ).response
    return response


def _read_whole(response: urllib3.BaseHTTPResponse) -> tuple[int, bytes]:
    """A sent request's whole response, its connection released: (status, body)."""
    try:
        return int(response.status), response.data
    finally:
        response.release_conn()


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    return str(status.get("message", "")) if isinstance(status, dict) else str(status)[:200]


def _decoded(data: bytes) -> Mapping[str, Any]:
    try:
        decoded = json.loads(data) if data else {}
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
