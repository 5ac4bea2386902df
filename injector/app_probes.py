"""Istio's probe rewrite (``pkg/kube/inject/app_probe.go``), pure: a kubelet probe to the app's port reaches the pod
through the inbound capture, i.e. through the sidecar, which under STRICT mutual TLS refuses the kubelet's
plaintext (and answers every TCP connection, so a ``tcpSocket`` probe would test the sidecar, not the app). So each
app container's ``httpGet``, ``tcpSocket`` and ``grpc`` readiness, liveness and startup probe becomes an ``httpGet``
of the agent's status port (15020, never captured) at ``/app-health/<container>/readyz|livez|startupz``, and the
original goes, as Istio's JSON, in the sidecar's ``ISTIO_KUBE_APP_PROBERS``, where the agent performs it
(``agent.status_server``). The rest of each probe (periods, thresholds, ``timeoutSeconds``) is kept.

As Istio's: a named port is resolved against the container's own ``ports`` (a name that is none of them is left
alone, as the kubelet would fail it too); a probe of a port the capture does not redirect inbound
(``traffic.sidecar.istio.io/excludeInboundPorts``, a port outside ``includeInboundPorts``) needs no rewrite and
keeps its own, which also leaves an already rewritten probe (port 15020) as it is; HTTPS becomes HTTP to the agent,
which speaks HTTPS to the app. Unlike Istio's, a probe with its own ``host`` is left alone: the kubelet sends it to
that host, not through this pod's capture (rewritten, it would go to that host's 15020). Exec probes are untouched,
and so is the sidecar's own container."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent.app_probers import APP_PROBERS_ENV, PROBE_PATHS, STATUS_PORT, prober_path
from agent.capture import CaptureOptions
from injector.names import PROXY_CONTAINER

__all__ = ["APP_PROBERS_ENV", "ProbeRewrite", "rewrite_app_probes"]

Obj = dict[str, Any]
ProbeRewrite = tuple[list[tuple[int, str, Obj]], str | None]  # ((container index, probe field, new probe)...), env


def _resolve_port(port: Any, container: Mapping[str, Any]) -> int | None:
    """The probe's port as a number: a named port of the container, a number, or None (unresolvable)."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if not isinstance(port, str):
        return None
    for declared in container.get("ports") or ():
        if declared.get("name") == port and isinstance(declared.get("containerPort"), int):
            return int(declared["containerPort"])
    return int(port) if port.isdigit() else None


def _captured(port: int, capture: CaptureOptions) -> bool:
    """Whether the inbound capture redirects ``port`` to the sidecar."""
    if capture.include_inbound_ports == "*":
        return port not in capture.exclude_inbound_ports
    return port in capture.include_inbound_ports


def _http_get(action: Mapping[str, Any], port: int) -> Obj:
    """Istio's HTTPGetAction JSON (its field order, empty fields omitted), the port a number."""
    fields = {"path": action.get("path"), "port": port, "host": action.get("host"), "scheme": action.get("scheme")}
    fields["httpHeaders"] = action.get("httpHeaders")
    return {name: value for name, value in fields.items() if value not in (None, "", [])}


def _original(probe: Mapping[str, Any], container: Mapping[str, Any], capture: CaptureOptions) -> Obj | None:
    """Istio's prober JSON for ``probe``, or None when it is not to be rewritten."""
    for name in ("httpGet", "tcpSocket"):
        action = probe.get(name)
        if isinstance(action, Mapping):
            port = _resolve_port(action.get("port"), container)
            if port is None or action.get("host") or not _captured(port, capture):
                return None
            prober: Obj = {name: _http_get(action, port) if name == "httpGet" else {"port": port}}
            break
    else:
        action = probe.get("grpc")
        if not isinstance(action, Mapping) or not isinstance(action.get("port"), int):
            return None
        if not _captured(int(action["port"]), capture):
            return None
        prober = {"grpc": dict(action)}
    if probe.get("timeoutSeconds"):
        prober["timeoutSeconds"] = probe["timeoutSeconds"]
    return prober


def _rewritten(probe: Mapping[str, Any], path: str) -> Obj:
    """``probe`` as an HTTP GET of the agent's ``path``; for an httpGet, its headers kept (the kubelet sends them
    to the agent, which passes them on), as Istio's."""
    new = copy.deepcopy(dict(probe))
    action = new.pop("httpGet", None) or {}
    for other in ("tcpSocket", "grpc"):
        new.pop(other, None)
    new["httpGet"] = {**action, "path": path, "port": STATUS_PORT, "scheme": "HTTP"}
    return new


def rewrite_app_probes(containers: Sequence[Mapping[str, Any]], capture: CaptureOptions) -> ProbeRewrite:
    """The probes to replace, by container index and field, and the sidecar's ``ISTIO_KUBE_APP_PROBERS`` (None:
    no probe is rewritten)."""
    replaced: list[tuple[int, str, Obj]] = []
    probers: dict[str, Obj] = {}
    for index, container in enumerate(containers):
        name = str(container.get("name", ""))
        if name == PROXY_CONTAINER:
            continue
        for field in PROBE_PATHS:
            probe = container.get(field)
            original = _original(probe, container, capture) if isinstance(probe, Mapping) else None
            if original is None:
                continue
            path = prober_path(name, field)
            probers[path] = original
            replaced.append((index, field, _rewritten(probe, path)))  # type: ignore[arg-type]
    if not probers:
        return [], None
    return replaced, json.dumps(dict(sorted(probers.items())), separators=(",", ":"))  # Go's: map keys sorted
