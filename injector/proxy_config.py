"""``proxy.istio.io/config``: Istio's ProxyConfig for one pod (YAML), translated where meshplane's sidecar honours the
field and refused, naming it, where it does not: a pod is never injected with a setting silently dropped.

Honoured: ``holdApplicationUntilProxyStarts`` (the sidecar starts first and the app waits for Envoy's ``/ready``),
``interceptionMode: REDIRECT``, and ``concurrency`` (>= 0) and ``proxyMetadata`` (variables added to Envoy's
environment; Istio agent variables such as ``ISTIO_META_*`` refused: ``meshplane.proxy_environment``), which the
sidecar passes to Pilot as node metadata (``--proxy-config``): Pilot merges them into the proxy's effective
ProxyConfig under a selecting ProxyConfig resource and over the namespace's and the mesh's, as Istio does
(``pilot.model.proxy_config``). Every other ProxyConfig field is ``not supported by meshplane yet``; a key
ProxyConfig does not have is an unknown field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from injector.names import PROXY_CONFIG_ANNOTATION
from meshplane.proxy_environment import PROXY_CONFIG_FIELDS, agent_variable_problem, environment_name_error

__all__ = ["ProxyConfigOptions", "parse_proxy_config"]

_HONOURED = "concurrency, holdApplicationUntilProxyStarts, interceptionMode (REDIRECT), proxyMetadata"
_LAUNCH_FIELDS = ("concurrency", "proxyMetadata")  # what the sidecar sends Pilot


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfigOptions:
    hold_application: bool = False
    # the annotation's concurrency and proxyMetadata as JSON (``--proxy-config`` of the sidecar); None: neither set
    launch_config: str | None = None


def _metadata_problems(where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return [f"{where}: expected a mapping of strings, got {value!r:.60}"]
    found = ((name, environment_name_error(name) or agent_variable_problem(name)) for name in value)
    return [f"{where}.{name}: {problem}" for name, problem in found if problem is not None]


def _field_problem(key: str, value: Any) -> str | None:
    where = f"{PROXY_CONFIG_ANNOTATION}: {key}"
    match key:
        case "holdApplicationUntilProxyStarts":
            return None if isinstance(value, bool) else f"{where}: expected true or false, got {value!r}"
        case "concurrency":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{where}: expected an integer, got {value!r}"
            return f"{where}: must be at least 0, got {value}" if value < 0 else None
        case "interceptionMode":
            if value != "REDIRECT":
                return f"{where}: {value} is not supported by meshplane yet (REDIRECT only)"
            return None
        case "proxyMetadata":
            return "; ".join(_metadata_problems(where, value)) or None
    if key in PROXY_CONFIG_FIELDS:
        return f"{where}: not supported by meshplane yet (honoured: {_HONOURED})"
    return f"{where}: unknown field (not a field of Istio's ProxyConfig)"


def parse_proxy_config(text: str) -> tuple[ProxyConfigOptions, list[str]]:
    """The options ``text`` asks for, and every problem with it (empty: all of it is honoured)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return ProxyConfigOptions(), [f"{PROXY_CONFIG_ANNOTATION}: not valid YAML{where}"]
    if document is None:
        return ProxyConfigOptions(), []
    if not isinstance(document, Mapping):
        return ProxyConfigOptions(), [
            f"{PROXY_CONFIG_ANNOTATION}: expected a ProxyConfig mapping, got {document!r:.60}"
        ]
    problems = [p for key, value in document.items() if (p := _field_problem(str(key), value)) is not None]
    launch = {key: document[key] for key in _LAUNCH_FIELDS if document.get(key) not in (None, {})}
    return (
        ProxyConfigOptions(
            hold_application=document.get("holdApplicationUntilProxyStarts") is True,
            launch_config=json.dumps(launch, sort_keys=True, separators=(",", ":")) if launch else None,
        ),
        problems,
    )
