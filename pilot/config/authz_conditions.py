"""The AuthorizationPolicy ``when`` keys meshplane compiles: the one table validation and the RBAC compiler share.

``parse_condition_key`` is the only reader of a ``when`` key. Validation accepts a key exactly when it parses, and
``pilot.generate.rbac`` dispatches on the parsed :class:`ConditionKind` with one generator per kind (it checks at
import time that it has a generator for every kind). So a key that validation accepts always compiles, and a key
the compiler cannot compile is a validation error: a DENY policy can never silently stop denying.

Istio's keys (https://istio.io/latest/docs/reference/config/security/conditions/) that meshplane does not compile
get "not supported by meshplane yet": ``experimental.envoy.filters.*`` matches metadata that Envoy filters
meshplane never configures (such as ``mysql_proxy``) would write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CONDITION_KEYS",
    "ConditionKey",
    "ConditionKind",
    "condition_key_error",
    "parse_condition_key",
]


class ConditionKind(StrEnum):
    """What a ``when`` key reads; the values are Istio's key spellings (``<name>`` for a map key)."""

    REQUEST_HEADER = "request.headers[<name>]"
    SOURCE_IP = "source.ip"
    REMOTE_IP = "remote.ip"
    SOURCE_NAMESPACE = "source.namespace"
    SOURCE_PRINCIPAL = "source.principal"
    AUTH_PRINCIPAL = "request.auth.principal"
    AUTH_AUDIENCES = "request.auth.audiences"
    AUTH_PRESENTER = "request.auth.presenter"
    AUTH_CLAIMS = "request.auth.claims[<claim>]"
    DESTINATION_IP = "destination.ip"
    DESTINATION_PORT = "destination.port"
    CONNECTION_SNI = "connection.sni"


CONDITION_KEYS: tuple[str, ...] = tuple(kind.value for kind in ConditionKind)


@dataclass(frozen=True, slots=True)
class ConditionKey:
    """A parsed ``when`` key: its kind, and for map keys the header name or the claim path."""

    kind: ConditionKind
    names: tuple[str, ...] = ()  # REQUEST_HEADER: (header,); AUTH_CLAIMS: the nested claim names


_EXACT = {kind.value: kind for kind in ConditionKind if "[" not in kind.value}
_HEADER_KEY = re.compile(r"^request\.headers\[([^\[\]]+)\]$")
_CLAIMS_KEY = re.compile(r"^request\.auth\.claims((?:\[[^\[\]]+\])+)$")
_CLAIM_NAME = re.compile(r"\[([^\[\]]+)\]")
_EXPERIMENTAL_PREFIX = "experimental.envoy.filters."
# Istio's hints for keys that are not conditions any more
_RETIRED_KEYS = {
    "destination.namespace": "is replaced by the policy's metadata.namespace",
    "destination.name": "is deprecated: only supported in v1alpha1",
    "destination.user": "is deprecated: only supported in v1alpha1",
}


def parse_condition_key(key: str) -> ConditionKey | str:
    """The parsed key, or why it cannot be compiled (a message for the ``key`` field)."""
    exact = _EXACT.get(key)
    if exact is not None:
        return ConditionKey(exact)
    header = _HEADER_KEY.match(key)
    if header:
        return ConditionKey(ConditionKind.REQUEST_HEADER, (header.group(1),))
    claims = _CLAIMS_KEY.match(key)
    if claims:
        return ConditionKey(ConditionKind.AUTH_CLAIMS, tuple(_CLAIM_NAME.findall(claims.group(1))))
    return condition_key_error(key)


def condition_key_error(key: str) -> str:
    """Why ``key`` is not a key meshplane compiles (Istio's wording where Istio rejects it too)."""
    if key.startswith(_EXPERIMENTAL_PREFIX):
        return (
            f"{key}: experimental.envoy.filters.* conditions are not supported by meshplane yet (they match "
            "metadata written by Envoy filters meshplane does not configure)"
        )
    if key.startswith(("request.headers", "request.auth.claims")):
        return f"bad key {key!r}: expected the form name[key], e.g. request.headers[x-user]"
    if key in _RETIRED_KEYS:
        return f"attribute {key} {_RETIRED_KEYS[key]}"
    if key.startswith("destination.labels"):
        return f"attribute {key} is replaced by the workload selector"
    return f"unknown attribute {key!r}: expected one of {', '.join(CONDITION_KEYS)}"
