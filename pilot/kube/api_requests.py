"""Raw REST requests to the API server through the official client's ``ApiClient`` (its configuration, auth, TLS
and connection pool), returning the JSON as the API sends it (``kubectl get -o json``): lists, streamed watches,
discovery. Every kind is read this way, core or custom, whatever version is served (the typed client has no class
for EndpointSlice ``v1beta1``, and the registry and the config layer read plain objects anyway).

Synchronous: call from a worker thread. ``ApiStatusError`` carries the HTTP status (404: not served; 410: gone).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import urllib3
from kubernetes import client

from meshplane.kube_api import KubeAccess, new_api_client
from pilot.kube.api_resources import ApiKind

__all__ = [
    "ApiStatusError",
    "get_json",
    "iter_lines",
    "open_stream",
    "served_resources",
    "watch_api_client",
]

Query = Sequence[tuple[str, str]]
_LIST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds of a plain request


class ApiStatusError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, path: str, body: bytes) -> None:
        message = _status_message(body)
        super().__init__(f"GET {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    return str(status.get("message", "")) if isinstance(status, dict) else str(status)[:200]


def watch_api_client(access: KubeAccess, connections: int) -> client.ApiClient:
    """An API client whose pool keeps ``connections`` connections: one per watch held open, plus lists."""
    configuration = copy.copy(new_api_client(access).configuration)
    configuration.connection_pool_maxsize = max(connections, configuration.connection_pool_maxsize)
    return client.ApiClient(configuration)


def _request(api: client.ApiClient, path: str, query: Query, timeout: tuple[float, float]) -> urllib3.BaseHTTPResponse:
    method, url, headers, _, _ = api.param_serialize(
        "GET",
        path,
        query_params=list(query),
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response: urllib3.BaseHTTPResponse = api.call_api(
        method, url, header_params=headers, _request_timeout=timeout
    ).response
    return response


def get_json(api: client.ApiClient, path: str, query: Query = ()) -> Mapping[str, Any]:
    """One GET, its JSON body; ``ApiStatusError`` on an error status."""
    response = _request(api, path, query, _LIST_TIMEOUT)
    try:
        body = response.data
    finally:
        response.release_conn()
    if response.status != 200:
        raise ApiStatusError(response.status, path, body)
    decoded: Mapping[str, Any] = json.loads(body)
    return decoded


def open_stream(api: client.ApiClient, path: str, query: Query, read_timeout: float) -> urllib3.BaseHTTPResponse:
    """A streamed GET (a watch), still open; ``ApiStatusError`` (and the response closed) on an error status."""
    response = _request(api, path, query, (10.0, read_timeout))
    if response.status != 200:
        try:
            body = response.read()
        finally:
            response.release_conn()
        raise ApiStatusError(response.status, path, body)
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
            if exc.status == 404:
                continue
            raise
        resources = listing.get("resources") or ()
        served[version] = frozenset(
            name for r in resources if isinstance(name := r.get("name"), str) and "/" not in name
        )
    return served
