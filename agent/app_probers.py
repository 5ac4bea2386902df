"""Istio's ``ISTIO_KUBE_APP_PROBERS``: the app's original Kubernetes probes, which the injector rewrote to the agent's
status port, as the JSON the injector puts in the sidecar's environment and the agent serves.

The JSON is Istio's (``pilot/cmd/pilot-agent/status``, ``KubeAppProbers``): a map from the status port's path
(``/app-health/<container>/readyz|livez|startupz``, and Istio's ``/app-lifecycle/<container>/prestopz|poststartz``)
to a prober ``{"httpGet": {...}} | {"tcpSocket": {...}} | {"grpc": {...}}`` with its ``timeoutSeconds``; ports are
numbers (the injector resolved named ports against the container's ``ports``), as Istio's agent requires.

``parse_app_probers`` checks every entry, as Istio's agent does at start, and reports every problem at once."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "APP_PROBERS_ENV",
    "PROBE_PATHS",
    "READY_PATH",
    "STATUS_PORT",
    "AppProber",
    "AppProbersError",
    "parse_app_probers",
    "prober_path",
]

STATUS_PORT = 15020  # Istio's pilot-agent status port: /app-health/..., /healthz/ready (never captured inbound)
READY_PATH = "/healthz/ready"  # on the status port: the istio-proxy container's readiness (Envoy's)
APP_PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS"
# Kubernetes' probe field -> the last segment of its path on the status port (Istio's FormatProberURL)
PROBE_PATHS = {"readinessProbe": "readyz", "livenessProbe": "livez", "startupProbe": "startupz"}
DEFAULT_TIMEOUT_SECONDS = 1  # Kubernetes' default timeoutSeconds
_PATH = re.compile(r"^/(app-health|app-lifecycle)/[^/]+/(livez|readyz|startupz|prestopz|poststartz)$")
_ACTIONS = ("httpGet", "tcpSocket", "grpc")

Action = Literal["httpGet", "tcpSocket", "grpc"]


class AppProbersError(ValueError):
    """The probers JSON is not what the injector writes; the message names every bad entry."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppProber:
    """One original probe, performed by the agent against the app when its path is asked."""

    action: Action
    port: int
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    path: str = "/"  # httpGet
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"  # httpGet
    host_header: str | None = None  # httpGet: a ``Host`` among httpHeaders
    headers: tuple[tuple[str, str], ...] = ()  # httpGet: httpHeaders (but Host)
    service: str = ""  # grpc: the health service name ("" is the server's overall health)


def prober_path(container: str, probe_field: str) -> str:
    """``/app-health/reviews/readyz`` for ``readinessProbe`` of container ``reviews``."""
    return f"/app-health/{container}/{PROBE_PATHS[probe_field]}"


def _port(value: Any, where: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        problems.append(f"{where}.port: a port number 1-65535, got {value!r}")
        return 0
    return value


def _headers(value: Any, where: str, problems: list[str]) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value", ""), str) for h in value
    ):
        problems.append(f"{where}.httpHeaders: a list of {{name, value}}, got {value!r:.80}")
        return []
    return [(h["name"], h.get("value", "")) for h in value]


def _http_get(action: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    scheme = str(action.get("scheme") or "HTTP").upper()
    if scheme not in ("HTTP", "HTTPS"):
        problems.append(f"{where}.scheme: HTTP or HTTPS, got {action.get('scheme')!r}")
    path = action.get("path") or "/"
    if not isinstance(path, str):
        problems.append(f"{where}.path: a string, got {path!r}")
        path = "/"
    headers = _headers(action.get("httpHeaders"), where, problems)
    host = [value for name, value in headers if name.lower() == "host"]
    return {
        "path": path if path.startswith("/") else f"/{path}",
        "scheme": scheme if scheme == "HTTPS" else "HTTP",
        "host_header": host[-1] if host else None,
        "headers": tuple((name, value) for name, value in headers if name.lower() != "host"),
    }


def _prober(path: str, entry: Any, problems: list[str]) -> AppProber | None:
    where = f"{APP_PROBERS_ENV}[{path!r}]"
    if _PATH.match(path) is None:
        problems.append(f"{where}: the path must match {_PATH.pattern}")
    if not isinstance(entry, dict):
        problems.append(f"{where}: a prober object, got {entry!r:.80}")
        return None
    actions = [name for name in _ACTIONS if entry.get(name) is not None]
    if len(actions) != 1 or not isinstance(entry[actions[0]], dict):
        problems.append(f"{where}: exactly one of httpGet, tcpSocket or grpc, got {sorted(entry)}")
        return None
    action: Action = actions[0]  # type: ignore[assignment]
    spec: Mapping[str, Any] = entry[action]
    timeout = entry.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        problems.append(f"{where}.timeoutSeconds: a number of seconds, got {timeout!r}")
        timeout = DEFAULT_TIMEOUT_SECONDS
    fields: dict[str, Any] = {"port": _port(spec.get("port"), f"{where}.{action}", problems)}
    if action == "httpGet":
        fields |= _http_get(spec, f"{where}.httpGet", problems)
    elif action == "grpc":
        fields["service"] = str(spec.get("service") or "")
    return AppProber(action=action, timeout_seconds=timeout, **fields)


def parse_app_probers(text: str) -> dict[str, AppProber]:
    """The probers of ``text`` by path ("" or unset: none); ``AppProbersError`` with every problem."""
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AppProbersError(f"{APP_PROBERS_ENV}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise AppProbersError(f"{APP_PROBERS_ENV}: a JSON object of probers by path, got {text[:80]!r}")
    problems: list[str] = []
    probers = {path: _prober(path, entry, problems) for path, entry in document.items()}
    if problems:
        raise AppProbersError("; ".join(problems))
    return {path: prober for path, prober in probers.items() if prober is not None}
