"""Validate a VirtualService HTTP route's ``match`` list (Istio's HTTPMatchRequest and StringMatch).

A StringMatch sets exactly one of exact / prefix / regex. In ``headers``, ``withoutHeaders`` and ``queryParams`` an
empty StringMatch (``{}``) is Istio's presence match ("the header is present" / "absent"), so it is allowed there
and comes out as a ``StringMatch`` with all three fields ``None``.

Regexes are compiled with RE2 itself (``google-re2``, the library Envoy uses, with the same default options) and
their RE2 program size is held to Envoy's default limit (``RE2_MAX_PROGRAM_SIZE``), so that a regex Envoy would NACK
(and with it the whole route table the regex is in) is rejected here with a line number instead.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from pilot.config.errors import FieldPath, quote
from pilot.config.istio_api import fields_except
from pilot.config.types import HTTPMatchRequest, StringMatch
from pilot.config.validate_common import Fields, Problems
from pilot.config.validate_envoy_strings import header_name_error, query_parameter_name_error
from pilot.config.validate_gateway_refs import read_gateway_names
from pilot.config.validate_names import dns1123_label_error

__all__ = [
    "MATCH_FIELDS",
    "RE2_MAX_PROGRAM_SIZE",
    "read_matches",
    "read_string_match",
    "regex_error",
]

MATCH_FIELDS = fields_except("HTTPMatchRequest")
_STRING_MATCH_KINDS = ("exact", "prefix", "regex")
# Envoy's default for the runtime key re2.max_program_size.error_level: a larger RE2 program is a NACK.
RE2_MAX_PROGRAM_SIZE = 100


def _re2_options() -> Any:
    options = re2.Options()  # RE2's defaults, as Envoy compiles with (it only turns error logging off)
    options.log_errors = False
    return options


_RE2_OPTIONS = _re2_options()


def regex_error(pattern: str) -> str | None:
    """Why Envoy (RE2) would reject ``pattern``, or None."""
    try:
        compiled = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return f"invalid regex {quote(pattern)}: {reason} (Envoy's regex engine is RE2)"
    size = int(compiled.programsize)
    if size > RE2_MAX_PROGRAM_SIZE:
        return (
            f"regex {quote(pattern)} is too complex: its RE2 program size is {size}, over Envoy's limit of "
            f"{RE2_MAX_PROGRAM_SIZE} (runtime re2.max_program_size.error_level)"
        )
    return None


def read_string_match(value: Any, path: FieldPath, problems: Problems, *, presence: bool = False) -> StringMatch | None:
    """An Istio StringMatch; ``presence`` allows the empty match (header / query parameter presence)."""
    match = Fields.open(value, path, problems, known=_STRING_MATCH_KINDS, message="StringMatch")
    if match is None:
        return None
    kind = match.exclusive(_STRING_MATCH_KINDS, required=not presence)
    if kind is None:
        return StringMatch()
    text = match.string(kind)
    if text is None:
        return None
    if kind == "prefix" and not text:
        match.report(kind, "a prefix match must not be empty (omit the match to match everything)")
    if kind == "regex":
        # Istio: "regex string match should not be empty"; Envoy's RegexMatcher.regex has min_len 1
        problems.add_if(match.at(kind), regex_error(text) if text else "a regex match must not be empty")
    return StringMatch(**{kind: text})


def read_matches(route: Fields) -> tuple[HTTPMatchRequest, ...]:
    matches: list[HTTPMatchRequest] = []
    for match in route.mappings("match", known=MATCH_FIELDS, message="HTTPMatchRequest"):
        string_matches = {
            name: read_string_match(match.node[name], match.at(name), match.problems)
            for name in ("uri", "scheme", "method", "authority")
            if match.has(name)
        }
        matches.append(
            HTTPMatchRequest(
                name=match.string("name") or "",
                uri=string_matches.get("uri"),
                scheme=string_matches.get("scheme"),
                method=string_matches.get("method"),
                authority=string_matches.get("authority"),
                headers=_header_matches(match, "headers"),
                without_headers=_header_matches(match, "withoutHeaders"),
                query_params=_query_param_matches(match),
                port=match.integer("port", minimum=1, maximum=65535),
                ignore_uri_case=match.boolean("ignoreUriCase") or False,
                source_labels=MappingProxyType(dict(sorted((match.labels("sourceLabels") or {}).items()))),
                source_namespace=_source_namespace(match),
                stat_prefix=_stat_prefix(match),
                gateways=read_gateway_names(match),
            )
        )
    return tuple(matches)


def _stat_prefix(match: Fields) -> str:
    """Istio's ``statPrefix``: Envoy's ``Route.stat_prefix`` (stats under ``vhost.<vhost>.route.<prefix>.``). Envoy
    takes any string, but a dot in it splits the stat name into more segments (as in Istio, it is passed on)."""
    prefix = match.string("statPrefix") or ""
    if prefix and not prefix.isprintable():
        match.report("statPrefix", f"statPrefix {quote(prefix)} must be printable text")
    return prefix


def _source_namespace(match: Fields) -> str:
    """Istio: ``sourceNamespace match <ns> is invalid`` unless it is a DNS-1123 label."""
    namespace = match.string("sourceNamespace") or ""
    if namespace and dns1123_label_error(namespace) is not None:
        match.report("sourceNamespace", f"sourceNamespace match {quote(namespace)} is invalid: not a namespace name")
    return namespace


def _header_matches(match: Fields, name: str) -> MappingProxyType[str, StringMatch]:
    out: dict[str, StringMatch] = {}
    for header, value, path in match.entries(name):
        if header and header != header.lower():
            match.problems.add(path, f"header name {quote(header)} must be lowercase (write {quote(header.lower())})")
        else:
            match.problems.add_if(path, header_name_error(header))
        string_match = read_string_match(value, path, match.problems, presence=True)
        if string_match is not None:
            out[header] = string_match
    return MappingProxyType(dict(sorted(out.items())))


def _query_param_matches(match: Fields) -> MappingProxyType[str, StringMatch]:
    out: dict[str, StringMatch] = {}
    for param, value, path in match.entries("queryParams"):
        match.problems.add_if(path, query_parameter_name_error(param))
        string_match = read_string_match(value, path, match.problems, presence=True)
        if string_match is not None:
            out[param] = string_match
    return MappingProxyType(dict(sorted(out.items())))
