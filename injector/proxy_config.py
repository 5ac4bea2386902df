"""``proxy.istio.io/config``: Istio's ProxyConfig for one pod (YAML), translated where meshplane's sidecar honours the
field and refused, naming it, where it does not: a pod is never injected with a setting silently dropped.

Honoured: ``holdApplicationUntilProxyStarts`` (the sidecar starts first and the app waits for Envoy's ``/ready``),
``concurrency: 1`` (the sidecar runs Envoy with one worker), ``interceptionMode: REDIRECT``, an empty
``proxyMetadata``. Every other ProxyConfig field is ``not supported by meshplane yet``; a key ProxyConfig does not
have is an unknown field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from injector.names import PROXY_CONFIG_ANNOTATION

__all__ = ["ProxyConfigOptions", "parse_proxy_config"]

# ProxyConfig's fields (istio.io/api mesh/v1alpha1/proxy.proto), as YAML spells them
_PROXY_CONFIG_FIELDS = frozenset(
    {
        "configPath", "binaryPath", "serviceCluster", "drainDuration", "parentShutdownDuration", "discoveryAddress",
        "discoveryRefreshDelay", "zipkinAddress", "statsdUdpAddress", "envoyMetricsServiceAddress", "proxyAdminPort",
        "availabilityZone", "controlPlaneAuthPolicy", "customConfigFile", "statNameLength", "concurrency",
        "proxyBootstrapTemplatePath", "interceptionMode", "tracing", "sds", "envoyAccessLogService",
        "envoyMetricsService", "proxyMetadata", "runtimeValues", "statusPort", "extraStatTags", "gatewayTopology",
        "terminationDrainDuration", "meshId", "readinessProbe", "proxyStatsMatcher", "holdApplicationUntilProxyStarts",
        "caCertificatesPem", "image", "privateKeyProvider", "proxyHeaders", "fileFlushInterval", "fileFlushMinSizeKb",
        "startupProbe",
    }
)  # fmt: skip
_HONOURED = "concurrency (1), holdApplicationUntilProxyStarts, interceptionMode (REDIRECT), proxyMetadata (empty)"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfigOptions:
    hold_application: bool = False


def _field_problem(key: str, value: Any) -> str | None:
    where = f"{PROXY_CONFIG_ANNOTATION}: {key}"
    match key:
        case "holdApplicationUntilProxyStarts":
            return None if isinstance(value, bool) else f"{where}: expected true or false, got {value!r}"
        case "concurrency":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{where}: expected an integer, got {value!r}"
            if value != 1:
                return f"{where}: {value} is not supported by meshplane yet (its sidecar runs Envoy with one worker)"
            return None
        case "interceptionMode":
            if value != "REDIRECT":
                return f"{where}: {value} is not supported by meshplane yet (REDIRECT only)"
            return None
        case "proxyMetadata":
            if value in (None, {}):
                return None
            return f"{where}: not supported by meshplane yet (its sidecar reads no ISTIO_META_* variables)"
    if key in _PROXY_CONFIG_FIELDS:
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
    return ProxyConfigOptions(hold_application=document.get("holdApplicationUntilProxyStarts") is True), problems
