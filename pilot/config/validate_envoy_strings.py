"""Envoy's own rules for the strings meshplane passes into its protos, so that nothing accepted here is NACKed.

Envoy checks every resource with protoc-gen-validate (PGV) annotations before using it, and one bad string rejects
the whole resource (a route table with all its virtual hosts). The rules that apply to what VirtualService fields
become:

- header names (``HeaderValue.key``, ``HeaderMatcher.name``, ``*_headers_to_remove``): ``well_known_regex:
  HTTP_HEADER_NAME``, 1 to 16384 bytes;
- header values, redirect and rewrite targets (``HeaderValue.value``, ``RedirectAction.host_redirect`` /
  ``path_redirect``, ``RouteAction.prefix_rewrite`` / ``host_rewrite_literal``, ``RegexMatchAndSubstitute
  .substitution``): ``well_known_regex: HTTP_HEADER_VALUE``, at most 16384 bytes for header values;
- ``QueryParameterMatcher.name``: 1 to 1024 bytes.

Envoy applies the non-strict regexes (no NUL, CR or LF); the strict ones, which Istio applies to header values too
(``ValidateHTTPHeaderValue``), also refuse every other control character but tab, and are what is checked here.
"""

from __future__ import annotations

import re

from pilot.config.errors import quote

__all__ = [
    "HEADER_MAX_BYTES",
    "QUERY_PARAMETER_NAME_MAX_BYTES",
    "header_name_error",
    "header_value_error",
    "query_parameter_name_error",
]

HEADER_MAX_BYTES = 16384
QUERY_PARAMETER_NAME_MAX_BYTES = 1024
# PGV's HTTP_HEADER_NAME and HTTP_HEADER_VALUE, strict (RFC 7230 token / field-content)
_HTTP_HEADER_NAME = re.compile(r"^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _too_long(value: str, what: str, limit: int) -> str | None:
    size = len(value.encode("utf-8", "surrogatepass"))
    return f"{what} {quote(value)} is {size} bytes long, over Envoy's limit of {limit}" if size > limit else None


def header_name_error(name: str, what: str = "header name") -> str | None:
    """Why Envoy refuses ``name`` as an HTTP header name (RFC 7230 token, optionally a ``:`` pseudo-header)."""
    if not name:
        return f"{what} must not be empty"
    if not _HTTP_HEADER_NAME.match(name):
        return f"{quote(name)} is not a valid HTTP {what} (letters, digits and !#$%&'*+-.^_`|~ only)"
    return _too_long(name, what, HEADER_MAX_BYTES)


def header_value_error(value: str, what: str = "header value", *, limit: int | None = HEADER_MAX_BYTES) -> str | None:
    """Why Envoy refuses ``value`` where it takes an HTTP header value: a control character (CR, LF, NUL, ...; tab
    is allowed), or (``limit``) too many bytes."""
    control = _CONTROL.search(value)
    if control is not None:
        return (
            f"{what} {quote(value)} contains the control character {control.group()!r} at position {control.start()}: "
            "HTTP header values cannot hold CR, LF, NUL or other control characters"
        )
    return _too_long(value, what, limit) if limit is not None else None


def query_parameter_name_error(name: str) -> str | None:
    if not name:
        return "query parameter name must not be empty"
    return _too_long(name, "query parameter name", QUERY_PARAMETER_NAME_MAX_BYTES)
