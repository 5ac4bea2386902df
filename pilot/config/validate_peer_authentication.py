"""Validate a PeerAuthentication spec into ``types.PeerAuthentication`` (Istio's ``ValidatePeerAuthentication``).

- ``mtls.mode`` and each ``portLevelMtls`` entry's mode: UNSET, DISABLE, PERMISSIVE or STRICT (UNSET inherits).
- ``selector.matchLabels`` follow the Kubernetes label syntax (so no wildcards); an empty selector is no selector
  (the policy is namespace-wide), as in Istio.
- ``portLevelMtls`` needs a selector (Istio: a namespace- or mesh-wide policy cannot have port-level settings);
  its keys are workload port numbers 1-65535, given as integers or as strings of digits.

Several namespace-wide (or mesh-wide) policies in one namespace are each valid on their own; which one applies is
decided by the model (``pilot.model.mtls``), since it takes more than one resource to see the conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import cast, get_args

from pilot.config.types import ConfigMeta, MtlsMode, PeerAuthentication, frozen_labels
from pilot.config.validate_common import Fields, describe

__all__ = [
    "MTLS_MODES",
    "PEER_AUTHENTICATION_FIELDS",
    "validate_peer_authentication",
]

PEER_AUTHENTICATION_FIELDS = ("selector", "mtls", "portLevelMtls")
MTLS_MODES: tuple[str, ...] = get_args(MtlsMode)

_SELECTOR_FIELDS = ("matchLabels",)
_MTLS_FIELDS = ("mode",)


def validate_peer_authentication(spec: Fields, meta: ConfigMeta) -> PeerAuthentication:
    """Check a PeerAuthentication spec (opened with ``PEER_AUTHENTICATION_FIELDS``); problems go to
    ``spec.problems``."""
    selector = _selector(spec)
    mtls = spec.mapping("mtls", known=_MTLS_FIELDS)
    mode = _mode(mtls) if mtls is not None else "UNSET"
    port_level = _port_level_mtls(spec)
    if port_level and not selector:
        spec.report(
            "portLevelMtls",
            "requires a selector: a namespace-wide or mesh-wide policy cannot have port-level settings",
        )
    return PeerAuthentication(
        meta=meta,
        selector=selector or None,
        mode=mode,
        port_level_mtls=MappingProxyType(dict(sorted(port_level.items()))),
    )


def _selector(spec: Fields) -> dict[str, str]:
    selector = spec.mapping("selector", known=_SELECTOR_FIELDS)
    if selector is None:
        return {}
    return dict(frozen_labels(selector.labels("matchLabels")))  # label syntax: no wildcards either


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
    for key, item in value.items():
        path = spec.at("portLevelMtls", str(key))
        port = _port_key(key)
        if port is None:
            spec.problems.add(path, f"port must be a number between 1 and 65535, got {describe(key)}")
            continue
        if port in modes:
            spec.problems.add(path, f"port {port} is listed twice")
        entry = Fields.open(item, path, spec.problems, known=_MTLS_FIELDS) if item is not None else None
        if entry is None:
            if item is None:
                spec.problems.add(path, "expected mtls settings like {mode: STRICT}, got null")
            continue
        modes[port] = _mode(entry)
    return modes


def _port_key(key: object) -> int | None:
    if isinstance(key, bool) or not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
        return None
    number = int(key)
    return number if 1 <= number <= 65535 else None
