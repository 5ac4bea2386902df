"""A pod's Istio annotations as the options of its injected containers, every problem collected at once.

Supported (the rest of Istio's ``sidecar.istio.io/*``, ``traffic.sidecar.istio.io/*``, ``proxy.istio.io/*`` and
``[readiness.]status.sidecar.istio.io/*`` are refused, listing these, rather than ignored: Istio ignores an
annotation it does not know, which hides typos and settings that silently do nothing):

- ``traffic.sidecar.istio.io/{include,exclude}OutboundIPRanges``, ``{include,exclude}InboundPorts``,
  ``{include,exclude}OutboundPorts``: the capture flags (``agent.annotations``, as Istio's injector maps them);
- ``sidecar.istio.io/interceptionMode``: ``REDIRECT`` (Pilot and the capture implement no other);
- ``sidecar.istio.io/proxyCPU``, ``proxyMemory``, ``proxyCPULimit``, ``proxyMemoryLimit``: the sidecar's resources;
- ``sidecar.istio.io/logLevel``: Envoy's log level; ``sidecar.istio.io/proxyImage``: the image of both containers;
- ``sidecar.istio.io/rewriteAppHTTPProbers``: the app's probes are rewritten to the agent's status port
  (``injector.app_probes``) unless it is false (Go's ``strconv.ParseBool`` spellings, as Istio reads it);
- ``sidecar.istio.io/inject`` (``injector.policy``) and ``proxy.istio.io/config`` (``injector.proxy_config``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.annotations import ANNOTATION_PREFIX as TRAFFIC_PREFIX
from agent.annotations import capture_options_from_annotations
from agent.capture import CaptureError, CaptureOptions
from injector.names import INJECT_KEY, PROXY_CONFIG_ANNOTATION, STATUS_ANNOTATION
from injector.proxy_config import parse_proxy_config
from injector.settings import InjectorSettings
from meshplane.names import INTERCEPTION_MODES, INTERCEPTION_REDIRECT

__all__ = ["SUPPORTED_ANNOTATIONS", "InjectionRefused", "SidecarOptions", "sidecar_options"]

SIDECAR_PREFIX = "sidecar.istio.io/"
_TRAFFIC_KEYS = (
    "includeOutboundIPRanges", "excludeOutboundIPRanges", "includeInboundPorts", "excludeInboundPorts",
    "includeOutboundPorts", "excludeOutboundPorts",
)  # fmt: skip
_RESOURCES = {  # annotation -> (requests or limits, resource)
    "sidecar.istio.io/proxyCPU": ("requests", "cpu"),
    "sidecar.istio.io/proxyMemory": ("requests", "memory"),
    "sidecar.istio.io/proxyCPULimit": ("limits", "cpu"),
    "sidecar.istio.io/proxyMemoryLimit": ("limits", "memory"),
}
INTERCEPTION_ANNOTATION = "sidecar.istio.io/interceptionMode"
LOG_LEVEL_ANNOTATION = "sidecar.istio.io/logLevel"
PROXY_IMAGE_ANNOTATION = "sidecar.istio.io/proxyImage"
REWRITE_PROBERS_ANNOTATION = "sidecar.istio.io/rewriteAppHTTPProbers"
SUPPORTED_ANNOTATIONS = (
    INJECT_KEY, STATUS_ANNOTATION, INTERCEPTION_ANNOTATION, *_RESOURCES, LOG_LEVEL_ANNOTATION, PROXY_IMAGE_ANNOTATION,
    REWRITE_PROBERS_ANNOTATION, *(TRAFFIC_PREFIX + key for key in _TRAFFIC_KEYS), PROXY_CONFIG_ANNOTATION,
)  # fmt: skip
_ISTIO_PREFIXES = (SIDECAR_PREFIX, TRAFFIC_PREFIX, "proxy.istio.io/", "status.sidecar.istio.io/",
                   "readiness.status.sidecar.istio.io/")  # fmt: skip
_LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")  # Istio's validation
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")  # ParseBool
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class InjectionRefused(ValueError):
    """The pod asks for what meshplane cannot give it: the AdmissionReview answers ``allowed: false`` with this
    message (every problem, ``; ``-separated), and the pod is not created."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarOptions:
    capture: CaptureOptions
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    log_level: str = "info"
    image: str
    hold_application: bool = False
    rewrite_probes: bool = True
    proxy_config: str | None = None  # ``proxy.istio.io/config``'s concurrency and proxyMetadata, JSON


def _unknown(annotations: Mapping[str, str]) -> list[str]:
    unknown = sorted(k for k in annotations if k.startswith(_ISTIO_PREFIXES) and k not in SUPPORTED_ANNOTATIONS)
    if not unknown:
        return []
    return [f"{', '.join(unknown)}: not supported by meshplane yet (supported: {', '.join(SUPPORTED_ANNOTATIONS)})"]


def _resources(
    annotations: Mapping[str, str], settings: InjectorSettings, problems: list[str]
) -> dict[str, dict[str, str]]:
    resources = {"requests": dict(settings.proxy_requests), "limits": dict(settings.proxy_limits)}
    for annotation, (kind, resource) in _RESOURCES.items():
        value = annotations.get(annotation)
        if value is None:
            continue
        if _QUANTITY.match(value.strip()) is None:
            problems.append(f"{annotation}: {value!r} is not a Kubernetes quantity (e.g. 100m, 2, 128Mi)")
        resources[kind][resource] = value.strip()
    return resources


def _single_value_problems(annotations: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    mode = annotations.get(INTERCEPTION_ANNOTATION, INTERCEPTION_REDIRECT)
    if mode not in INTERCEPTION_MODES:
        problems.append(f"{INTERCEPTION_ANNOTATION}: {mode!r} is not one of {', '.join(INTERCEPTION_MODES)}")
    elif mode != INTERCEPTION_REDIRECT:
        problems.append(f"{INTERCEPTION_ANNOTATION}: {mode} is not supported by meshplane yet (REDIRECT only)")
    level = annotations.get(LOG_LEVEL_ANNOTATION, "info")
    if level not in _LOG_LEVELS:
        problems.append(f"{LOG_LEVEL_ANNOTATION}: {level!r} is not one of {', '.join(_LOG_LEVELS)}")
    rewrite = annotations.get(REWRITE_PROBERS_ANNOTATION, "true")
    if rewrite not in _TRUE + _FALSE:
        problems.append(f"{REWRITE_PROBERS_ANNOTATION}: expected true or false, got {rewrite!r}")
    if not annotations.get(PROXY_IMAGE_ANNOTATION, "x").strip():
        problems.append(f"{PROXY_IMAGE_ANNOTATION}: empty")
    return problems


def _capture(annotations: Mapping[str, str], problems: list[str]) -> CaptureOptions:
    known = {k: v for k, v in annotations.items() if k.removeprefix(TRAFFIC_PREFIX) in _TRAFFIC_KEYS}
    try:
        return capture_options_from_annotations(known, CaptureOptions(redirect_dns=True))
    except CaptureError as exc:
        problems.append(str(exc))
        return CaptureOptions(redirect_dns=True)


def sidecar_options(annotations: Mapping[str, str], settings: InjectorSettings) -> SidecarOptions:
    """The injected containers' options for a pod with ``annotations``; ``InjectionRefused`` with every problem."""
    problems = _unknown(annotations) + _single_value_problems(annotations)
    capture = _capture(annotations, problems)
    resources = _resources(annotations, settings, problems)
    proxy_config, config_problems = parse_proxy_config(annotations.get(PROXY_CONFIG_ANNOTATION, ""))
    problems += config_problems
    if problems:
        raise InjectionRefused("; ".join(problems))
    return SidecarOptions(
        capture=capture,
        requests=resources["requests"],
        limits=resources["limits"],
        log_level=annotations.get(LOG_LEVEL_ANNOTATION, "info"),
        image=annotations.get(PROXY_IMAGE_ANNOTATION, settings.image).strip(),
        hold_application=proxy_config.hold_application,
        proxy_config=proxy_config.launch_config,
        rewrite_probes=annotations.get(REWRITE_PROBERS_ANNOTATION, "true") not in _FALSE,
    )
