"""Validate what a VirtualService HTTP route does besides forwarding: redirect, rewrite, direct response,
retries, fault injection and header manipulation (Istio's HTTPRedirect, HTTPRewrite, HTTPDirectResponse,
HTTPRetry, HTTPFaultInjection and Headers).

Strings that become Envoy header values, redirect or rewrite targets are held to Envoy's rules for them
(``validate_envoy_strings``); a direct response body to meshplane's (and Istio's) 1 MiB limit, which is the
``max_direct_response_body_size_bytes`` Pilot sets on its route tables (Envoy's own default is 4 KiB).
"""

from __future__ import annotations

import base64
import binascii
import re
from types import MappingProxyType
from typing import Literal, cast

from pilot.config.errors import quote
from pilot.config.istio_api import ISTIO_MESSAGES
from pilot.config.types import (
    GRPC_STATUS_NAMES,
    Abort,
    Delay,
    Fault,
    HeaderOperations,
    Headers,
    HTTPDirectResponse,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    RegexRewrite,
)
from pilot.config.validate_common import INT32_MAX, Fields
from pilot.config.validate_envoy_strings import header_name_error, header_value_error
from pilot.config.validate_http_match import regex_error

__all__ = [
    "DIRECT_RESPONSE_BODY_MAX_BYTES",
    "GRPC_STATUS_CODES",
    "HTTP_STATUS_CODES",
    "RETRY_ON_POLICIES",
    "read_direct_response",
    "read_fault",
    "read_headers",
    "read_percentage",
    "read_redirect",
    "read_retries",
    "read_rewrite",
]

RETRY_ON_POLICIES = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        # x-envoy-retry-grpc-on
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
GRPC_STATUS_CODES = GRPC_STATUS_NAMES
# The status codes Istio accepts in retryOn: those Go's net/http has a StatusText for.
_INFORMATIONAL_TO_REDIRECT = (*range(100, 104), *range(200, 209), 226, *range(300, 306), 307, 308)
HTTP_STATUS_CODES = frozenset(
    (*_INFORMATIONAL_TO_REDIRECT, *range(400, 419), *range(421, 427), 428, 429, 431, 451, *range(500, 509), 510, 511)
)
DIRECT_RESPONSE_BODY_MAX_BYTES = 1024 * 1024  # = pilot.generate.routes.MAX_DIRECT_RESPONSE_BODY_BYTES
_REDIRECT_SCHEMES = ("http", "https")
_MIN_PERCENTAGE = 0.0001  # Istio: a percentage is 0, or 0.0001 to 100
_REDIRECT_CODES = (301, 302, 303, 307, 308)  # what Envoy's RedirectAction.response_code can express
_RETRY_SETTINGS = ("perTryTimeout", "retryOn", "retryRemoteLocalities", "backoff", "retryIgnorePreviousHosts")
_ENVOY_COMMAND = re.compile(r"%%|%[A-Z][A-Z0-9_]*(?:\([^)%]*\))?(?::[0-9]+)?%")


def read_percentage(parent: Fields, name: str) -> float | None:
    """An Istio ``Percent`` (``{value: 12.5}``): 0, or 0.0001 to 100 (Istio's ``validatePercentage``; Envoy's
    fractions cannot express less)."""
    percent = parent.mapping(name, known=("value",), message="Percent")
    if percent is None:
        return None
    value = percent.number("value", minimum=0, maximum=100, required=True)
    if value is not None and 0 < value < _MIN_PERCENTAGE:
        percent.report("value", f"percentage {value:g} is neither 0 nor in the range [{_MIN_PERCENTAGE:g}, 100]")
        return None
    return value


def read_redirect(route: Fields) -> HTTPRedirect | None:
    fields = ("uri", "authority", "port", "derivePort", "scheme", "redirectCode")
    redirect = route.mapping("redirect", known=fields, message="HTTPRedirect")
    if redirect is None:
        return None
    if not any(redirect.is_set(name) for name in fields[:5]):
        redirect.report(None, "a redirect must set at least one of uri, authority, port, derivePort, scheme")
    redirect.exclusive(("port", "derivePort"))
    derive = redirect.enum("derivePort", ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT")) or ""
    code = redirect.integer("redirectCode", minimum=0, maximum=999)
    if code is not None and code not in _REDIRECT_CODES:
        redirect.report("redirectCode", f"must be one of {', '.join(map(str, _REDIRECT_CODES))}, got {code}")
    scheme = redirect.string("scheme") or ""
    if scheme and scheme not in _REDIRECT_SCHEMES:
        redirect.report("scheme", f'invalid redirect scheme {quote(scheme)}: must be "http" or "https"')
    return HTTPRedirect(
        uri=_target(redirect, "uri") or "",
        authority=_target(redirect, "authority") or "",
        port=redirect.integer("port", minimum=1, maximum=65535),
        derive_port=cast(Literal["", "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"], derive),
        scheme=scheme,
        redirect_code=code or 301,
    )


def _target(fields: Fields, name: str) -> str | None:
    """A redirect or rewrite target (a path or an authority): Envoy takes it only as a valid header value."""
    value = fields.string(name)
    if value:
        fields.problems.add_if(fields.at(name), header_value_error(value, name, limit=None))
    return value


def read_rewrite(route: Fields) -> HTTPRewrite | None:
    rewrite = route.mapping("rewrite", known=("uri", "authority", "uriRegexRewrite"), message="HTTPRewrite")
    if rewrite is None:
        return None
    if not any(rewrite.is_set(name) for name in ("uri", "authority", "uriRegexRewrite")):
        rewrite.report(None, "a rewrite must set at least one of uri, authority, uriRegexRewrite")
    if rewrite.is_set("uri") and rewrite.has("uriRegexRewrite"):
        rewrite.report(None, "only one of uri, uriRegexRewrite may be set")
    regex_rewrite: RegexRewrite | None = None
    regex = rewrite.mapping("uriRegexRewrite", known=("match", "rewrite"), message="RegexRewrite")
    if regex is not None:
        # Istio requires both (validateURIRegexRewrite)
        pattern = regex.string("match", required=True) or ""
        if pattern:
            regex.problems.add_if(regex.at("match"), regex_error(pattern))
        substitution = regex.string("rewrite", required=True) or ""
        if substitution:
            regex.problems.add_if(regex.at("rewrite"), header_value_error(substitution, "rewrite", limit=None))
        regex_rewrite = RegexRewrite(match=pattern, rewrite=substitution)
    return HTTPRewrite(
        uri=_target(rewrite, "uri") or None,
        authority=_target(rewrite, "authority") or None,
        uri_regex_rewrite=regex_rewrite,
    )


def read_direct_response(route: Fields) -> HTTPDirectResponse | None:
    response = route.mapping("directResponse", known=("status", "body"), message="HTTPDirectResponse")
    if response is None:
        return None
    status = response.integer("status", minimum=200, maximum=599, required=True)
    text: str | None = None
    body = response.mapping("body", known=("string", "bytes"), message="HTTPBody")
    if body is not None:
        kind = body.exclusive(("string", "bytes"), required=True)
        if kind == "string":
            text = body.string("string")
        elif kind == "bytes":
            encoded = body.string("bytes")
            if encoded is not None:
                try:
                    text = base64.b64decode(encoded, validate=True).decode("utf-8")
                except (binascii.Error, ValueError):
                    body.report("bytes", "must be base64 of UTF-8 text")
    size = len(text.encode("utf-8", "surrogatepass")) if text is not None else 0
    if size > DIRECT_RESPONSE_BODY_MAX_BYTES and body is not None:
        body.report(None, f"the body is {size} bytes, over the limit of {DIRECT_RESPONSE_BODY_MAX_BYTES} (1 MiB)")
    return HTTPDirectResponse(status=status or 200, body=text)


def read_retries(route: Fields) -> HTTPRetry | None:
    retries = route.mapping("retries", known=ISTIO_MESSAGES["HTTPRetry"], message="HTTPRetry")
    if retries is None:
        return None
    attempts = retries.integer("attempts", minimum=0, maximum=INT32_MAX, required=True)
    retry_on = retries.string("retryOn")
    if retry_on is not None:
        policies = [part.strip() for part in retry_on.split(",")]
        for policy in policies:
            if policy not in RETRY_ON_POLICIES and not (policy.isdigit() and int(policy) in HTTP_STATUS_CODES):
                retries.report("retryOn", f"{quote(policy)} is not a retry policy Envoy knows, nor an HTTP status code")
        retry_on = ",".join(policies)  # normalized: no spaces around the commas
    # Istio checks perTryTimeout, retryOn and retryRemoteLocalities; backoff and retryIgnorePreviousHosts would be
    # as silently ignored, so they count too.
    if attempts == 0 and any(retries.has(n) for n in _RETRY_SETTINGS):
        retries.report("attempts", "is 0 (retries disabled) but other retry settings are given")
    return HTTPRetry(
        attempts=attempts or 0,
        per_try_timeout=retries.timeout("perTryTimeout"),
        retry_on=retry_on,
        retry_remote_localities=retries.boolean("retryRemoteLocalities"),
        backoff=retries.timeout("backoff"),
        retry_ignore_previous_hosts=retries.boolean("retryIgnorePreviousHosts"),
    )


def read_fault(route: Fields) -> Fault | None:
    fault = route.mapping("fault", known=("delay", "abort"), message="HTTPFaultInjection")
    if fault is None:
        return None
    if not fault.has("delay") and not fault.has("abort"):
        fault.report(None, "a fault must set delay, abort or both")
    delay: Delay | None = None
    delay_fields = fault.mapping(
        "delay", known=("fixedDelay", "percentage", "percent"), message="HTTPFaultInjection.Delay"
    )
    if delay_fields is not None:
        fixed = delay_fields.timeout("fixedDelay", required=not delay_fields.has("exponentialDelay"))
        delay_fields.exclusive(("percentage", "percent"))
        percentage = read_percentage(delay_fields, "percentage")
        legacy = delay_fields.integer("percent", minimum=0, maximum=100)
        delay = Delay(fixed_delay=fixed or 0.0, percentage=percentage if legacy is None else float(legacy))
    abort: Abort | None = None
    abort_fields = fault.mapping(
        "abort", known=("httpStatus", "grpcStatus", "percentage"), message="HTTPFaultInjection.Abort"
    )
    if abort_fields is not None:
        abort_fields.exclusive(("httpStatus", "grpcStatus", "http2Error"), required=True)
        abort = Abort(
            http_status=abort_fields.integer("httpStatus", minimum=200, maximum=599),
            grpc_status=abort_fields.enum("grpcStatus", GRPC_STATUS_CODES),
            percentage=read_percentage(abort_fields, "percentage"),
        )
    return Fault(delay=delay, abort=abort)


def read_headers(parent: Fields, name: str = "headers") -> Headers | None:
    """Istio ``Headers``: request / response operations. Pseudo-headers and ``host`` cannot be touched, except that
    a request may set ``host`` / ``:authority`` (Istio's authority rewrite through headers)."""
    headers = parent.mapping(name, known=("request", "response"), message="Headers")
    if headers is None:
        return None
    return Headers(request=_header_operations(headers, "request"), response=_header_operations(headers, "response"))


def _header_operations(headers: Fields, direction: str) -> HeaderOperations | None:
    operations = headers.mapping(direction, known=("set", "add", "remove"), message="Headers.HeaderOperations")
    if operations is None:
        return None
    out: dict[str, dict[str, str]] = {"set": {}, "add": {}}
    for verb, values in out.items():
        for header, value, path in operations.entries(verb):
            authority_ok = direction == "request"
            operations.problems.add_if(path, _header_name_error(header, authority_ok=authority_ok))
            if not isinstance(value, str):
                operations.problems.add(path, "expected a string header value")
                continue
            operations.problems.add_if(path, header_value_error(value) or _header_command_error(value))
            values[header] = value
    remove = operations.strings("remove") or ()
    for index, header in enumerate(remove):
        operations.problems.add_if(operations.at("remove", index), _header_name_error(header, authority_ok=False))
    return HeaderOperations(
        set=MappingProxyType(dict(sorted(out["set"].items()))),
        add=MappingProxyType(dict(sorted(out["add"].items()))),
        remove=remove,
    )


def _header_name_error(name: str, *, authority_ok: bool) -> str | None:
    if not name:
        return "header name must not be empty"
    lowered = name.lower()
    if lowered in (":authority", "host"):
        if authority_ok:
            return None
        return f"header {quote(name)} cannot be changed here (only a request may set the host)"
    if name.startswith(":"):
        return f"pseudo-header {quote(name)} cannot be changed"
    return header_name_error(name)


def _header_command_error(value: str) -> str | None:
    """Envoy reads ``%...%`` in header values as a command: a lone ``%`` makes it reject the whole route config."""
    if "%" in _ENVOY_COMMAND.sub("", value):
        return f"header value {quote(value)}: a literal '%' must be written '%%' (Envoy reads %NAME% as a command)"
    return None
