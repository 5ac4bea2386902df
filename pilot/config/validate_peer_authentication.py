"""Validate a PeerAuthentication spec into ``types.PeerAuthentication`` (Istio's ``ValidatePeerAuthentication``).

- ``mtls.mode`` and each ``portLevelMtls`` entry's mode: UNSET, DISABLE, PERMISSIVE or STRICT (UNSET inherits).
- ``selector.matchLabels`` follow the Kubernetes label syntax (so no wildcards); an empty selector is no selector
  (the policy is namespace-wide), as in Istio.
- ``portLevelMtls`` needs a selector (Istio: a namespace- or mesh-wide policy cannot have port-level settings);
  its keys are workload port numbers 1-65535, given as integers or as strings of digits; when given it must list at
  least one port (Istio).

Several namespace-wide (or mesh-wide) policies in one namespace are each valid on their own; which one applies is
decided by the model (``pilot.model.mtls``), since it takes more than one resource to see the conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import cast, get_args

from pilot.config.types import ConfigMeta, MtlsMode, PeerAuthentication
from pilot.config.validate_common import Fields, describe, port_number, selector_labels

__all__ = [
    "MTLS_MODES",
    "PEER_AUTHENTICATION_FIELDS",
    "validate_peer_authentication",
]

PEER_AUTHENTICATION_FIELDS = ("selector", "mtls", "portLevelMtls")
MTLS_MODES: tuple[str, ...] = get_args(MtlsMode)

_MTLS_FIELDS = ("mode",)
_MUTUAL_TLS = "PeerAuthentication.MutualTLS"


def validate_peer_authentication(spec: Fields, meta: ConfigMeta) -> PeerAuthentication:
    """Check a PeerAuthentication spec (opened with ``PEER_AUTHENTICATION_FIELDS``); problems go to
    ``spec.problems``."""
    selector = selector_labels(spec)
    mtls = spec.mapping("mtls", known=_MTLS_FIELDS, message=_MUTUAL_TLS)
    mode = _mode(mtls) if mtls is not None else "UNSET"
    port_level = _port_level_mtls(spec)
    if port_level and not selector:
        spec.report(
            "portLevelMtls",
            "requires a selector: a namespace-wide or mesh-wide policy cannot have port-level settings",
        )
    return PeerAuthentication(
        meta=meta,
        selector=selector,
        mode=mode,
        port_level_mtls=MappingProxyType(dict(sorted(port_level.items()))),
    )


def _mode(fields: Fields) -> MtlsMode:
    return cast(MtlsMode, fields.enum("mode", MTLS_MODES) or "UNSET")


def _port_level_mtls(spec: Fields) -> dict[int, MtlsMode]:
    """``portLevelMtls``: workload port -> mode. YAML keys may be integers or digit strings (JSON keys are)."""
    modes: dict[int, MtlsMode] = {}
    value = spec.node.get("portLevelMtls")
    if value is None:
        return modes
    if not isinstance(value, Mapping):
        spec.report("portLevelMtls", f"expected a mapping of port number to mtls settings, got {describe(value)}")
        return modes
    if not value:
        spec.report("portLevelMtls", "must list at least one port when given (an empty portLevelMtls sets nothing)")
        return modes
    for key, item in value.items():
        path = spec.at("portLevelMtls", str(key))
        port = port_number(key)
        if port is None:
            spec.problems.add(path, f"port must be a number between 1 and 65535, got {describe(key)}")
            continue
        if port in modes:
            spec.problems.add(path, f"port {port} is listed twice")
        entry = (
            Fields.open(item, path, spec.problems, known=_MTLS_FIELDS, message=_MUTUAL_TLS)
            if item is not None
            else None
        )
        if entry is None:
            if item is None:
                spec.problems.add(path, "expected mtls settings like {mode: STRICT}, got null")
            continue
        modes[port] = _mode(entry)
    return modes
