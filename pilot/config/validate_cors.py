"""Validate a VirtualService HTTP route's ``corsPolicy`` (Istio's ``CorsPolicy`` and ``validateCORSPolicy``).

- ``allowOrigins``: StringMatches, each setting exactly one non-empty exact / prefix / regex (a regex is checked as
  Envoy's RE2 compiles it); ``allowOrigin``, the deprecated list of exact origins Istio still reads, is accepted
  too, but not together with ``allowOrigins`` (Istio would silently ignore it then);
- ``allowMethods``: HTTP methods as Go's ``net/http`` names them (upper case), or ``*``;
- ``allowHeaders`` / ``exposeHeaders``: HTTP header names (RFC 7230 tokens), or ``*``;
- ``maxAge``: a duration of at least 1ms, in whole seconds (it becomes ``Access-Control-Max-Age``);
- ``allowCredentials``: a boolean; ``unmatchedPreflights``: ``FORWARD`` (the default) or ``IGNORE``.
"""

from __future__ import annotations

import re
from typing import Literal, cast

from pilot.config.errors import quote
from pilot.config.istio_api import ISTIO_MESSAGES
from pilot.config.types import CorsPolicy, StringMatch
from pilot.config.validate_common import Fields
from pilot.config.validate_http_match import read_string_match

__all__ = ["CORS_METHODS", "UNMATCHED_PREFLIGHTS", "cors_header_name_error", "read_cors_policy"]

# Istio's supportedCORSMethods: Go's net/http method constants, and "*"
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*")
UNMATCHED_PREFLIGHTS = ("UNSPECIFIED", "FORWARD", "IGNORE")
_TOKEN = re.compile(r"[0-9A-Za-z!#$%&'*+\-.^_`|~]+")  # RFC 7230 tchar, Istio's validHeaderNameRegex


def cors_header_name_error(name: str) -> str | None:
    """Istio's ``ValidateCORSHTTPHeaderName``: ``*``, or an RFC 7230 token."""
    if not name:
        return "header name must not be empty"
    if name == "*" or _TOKEN.fullmatch(name):
        return None
    return f"{quote(name)} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"


def read_cors_policy(route: Fields) -> CorsPolicy | None:
    policy = route.mapping("corsPolicy", known=ISTIO_MESSAGES["CorsPolicy"], message="CorsPolicy")
    if policy is None:
        return None
    if policy.has("allowOrigins") and policy.has("allowOrigin"):
        policy.report(
            "allowOrigin",
            "the deprecated allowOrigin cannot be combined with allowOrigins (Istio ignores it then): "
            "write every origin in allowOrigins",
        )
    return CorsPolicy(
        allow_origins=_allow_origins(policy) + _legacy_allow_origin(policy),
        allow_methods=_methods(policy),
        allow_headers=_header_names(policy, "allowHeaders"),
        expose_headers=_header_names(policy, "exposeHeaders"),
        max_age=_max_age(policy),
        allow_credentials=policy.boolean("allowCredentials"),
        unmatched_preflights=cast(
            Literal["UNSPECIFIED", "FORWARD", "IGNORE"],
            policy.enum("unmatchedPreflights", UNMATCHED_PREFLIGHTS) or "UNSPECIFIED",
        ),
    )


def _allow_origins(policy: Fields) -> tuple[StringMatch, ...]:
    value = policy.node.get("allowOrigins")
    if value is None:
        return ()
    if not isinstance(value, list):
        policy.report("allowOrigins", "expected a list of string matches ({exact: ...}, {prefix: ...}, {regex: ...})")
        return ()
    out: list[StringMatch] = []
    for index, item in enumerate(value):
        path = policy.at("allowOrigins", index)
        match = read_string_match(item, path, policy.problems)
        if match is None:
            continue
        if match.exact == "":
            policy.problems.add(path, "'' is not a valid match type for CORS allow origins")
        out.append(match)
    return tuple(out)


def _legacy_allow_origin(policy: Fields) -> tuple[StringMatch, ...]:
    origins = policy.strings("allowOrigin") or ()
    for index, origin in enumerate(origins):
        if not origin:
            policy.problems.add(policy.at("allowOrigin", index), "an origin must not be empty")
    return tuple(StringMatch(exact=origin) for origin in origins)


def _methods(policy: Fields) -> tuple[str, ...]:
    methods = policy.strings("allowMethods") or ()
    for index, method in enumerate(methods):
        if method not in CORS_METHODS:
            hint = f" (write {quote(method.upper())})" if method.upper() in CORS_METHODS else ""
            policy.problems.add(
                policy.at("allowMethods", index), f"{quote(method)} is not a supported HTTP method{hint}"
            )
    return methods


def _header_names(policy: Fields, name: str) -> tuple[str, ...]:
    headers = policy.strings(name) or ()
    for index, header in enumerate(headers):
        policy.problems.add_if(policy.at(name, index), cors_header_name_error(header))
    return headers


def _max_age(policy: Fields) -> int | None:
    seconds = policy.timeout("maxAge")
    if seconds is None:
        return None
    milliseconds = round(seconds * 1000)
    if milliseconds % 1000:
        policy.report("maxAge", "max_age duration is accurate only to seconds precision (write whole seconds)")
        return None
    return milliseconds // 1000
