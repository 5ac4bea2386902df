"""Istio's ``traffic.sidecar.istio.io/*`` pod annotations as capture options (what Istio's injector turns into
istio-iptables flags): ``includeOutboundIPRanges`` -i, ``excludeOutboundIPRanges`` -x, ``includeInboundPorts`` -b,
``excludeInboundPorts`` -d (added to the injector's 15090,15021,15020), ``excludeOutboundPorts`` -o,
``includeOutboundPorts`` -q. Other annotations of that prefix are rejected, never ignored."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from agent.capture import CaptureError, CaptureOptions, parse_cidrs, parse_ports

__all__ = ["ANNOTATION_PREFIX", "capture_options_from_annotations"]

ANNOTATION_PREFIX = "traffic.sidecar.istio.io/"


def _option(key: str, value: str, base: CaptureOptions) -> tuple[str, object]:
    name = ANNOTATION_PREFIX + key
    match key:
        case "includeOutboundIPRanges":
            return "include_outbound_cidrs", parse_cidrs(value, option=name, wildcard=True)
        case "excludeOutboundIPRanges":
            return "exclude_outbound_cidrs", parse_cidrs(value, option=name)
        case "includeInboundPorts":
            return "include_inbound_ports", parse_ports(value, option=name, wildcard=True)
        case "excludeInboundPorts":
            extra = parse_ports(value, option=name)
            return "exclude_inbound_ports", tuple(dict.fromkeys((*base.exclude_inbound_ports, *extra)))
        case "excludeOutboundPorts":
            return "exclude_outbound_ports", parse_ports(value, option=name)
        case "includeOutboundPorts":
            return "include_outbound_ports", parse_ports(value, option=name)
    raise CaptureError(f"{name}: not supported by meshplane yet")


def capture_options_from_annotations(
    annotations: Mapping[str, str], base: CaptureOptions | None = None
) -> CaptureOptions:
    """``base`` (Istio's injected defaults) changed by the pod's capture annotations; annotations of other
    prefixes are not ours and are skipped. Raises ``CaptureError`` naming the annotation."""
    base = base or CaptureOptions()
    changes = dict(
        _option(key.removeprefix(ANNOTATION_PREFIX), value, base)
        for key, value in sorted(annotations.items())
        if key.startswith(ANNOTATION_PREFIX)
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
