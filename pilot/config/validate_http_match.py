"""Validate a VirtualService HTTP route's ``match`` list (Istio's HTTPMatchRequest and StringMatch).

A StringMatch sets exactly one of exact / prefix / regex. In ``headers``, ``withoutHeaders`` and ``queryParams`` an
empty StringMatch (``{}``) is Istio's presence match ("the header is present" / "absent"), so it is allowed there
and comes out as a ``StringMatch`` with all three fields ``None``.

Regexes are checked with Python's ``re`` plus a screen for the constructs RE2 (Envoy's engine) rejects, such as
lookaround and backreferences, so that a regex Envoy would NACK is rejected here with a line number instead.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from pilot.config.errors import FieldPath
from pilot.config.types import HTTPMatchRequest, StringMatch
from pilot.config.validate_common import Fields, Problems

__all__ = [
    "MATCH_FIELDS",
    "MATCH_UNSUPPORTED",
    "read_matches",
    "read_string_match",
    "regex_error",
]

MATCH_FIELDS = (
    "name",
    "uri",
    "scheme",
    "method",
    "authority",
    "headers",
    "withoutHeaders",
    "queryParams",
    "port",
    "ignoreUriCase",
)
MATCH_UNSUPPORTED = ("sourceLabels", "gateways", "sourceNamespace", "statPrefix")
_STRING_MATCH_KINDS = ("exact", "prefix", "regex")
_HEADER_NAME = re.compile(r"^:?[!#$%&'*+\-.^_`|~0-9a-z]+$")
_RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\(\?>|\(\?P=|\\[1-9]")


def regex_error(pattern: str) -> str | None:
    """Why Envoy (RE2) would reject ``pattern``, or None."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regex {pattern!r}: {exc}"
    if _RE2_UNSUPPORTED.search(pattern):
        return f"regex {pattern!r} uses lookaround, atomic groups or backreferences, which Envoy's RE2 does not support"
    return None


def read_string_match(value: Any, path: FieldPath, problems: Problems, *, presence: bool = False) -> StringMatch | None:
    """An Istio StringMatch; ``presence`` allows the empty match (header / query parameter presence)."""
    match = Fields.open(value, path, problems, known=_STRING_MATCH_KINDS)
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
        problems.add_if(match.at(kind), regex_error(text))
    return StringMatch(**{kind: text})


def read_matches(route: Fields) -> tuple[HTTPMatchRequest, ...]:
    matches: list[HTTPMatchRequest] = []
    for match in route.mappings("match", known=MATCH_FIELDS, unsupported=MATCH_UNSUPPORTED):
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
            )
        )
    return tuple(matches)


def _header_matches(match: Fields, name: str) -> MappingProxyType[str, StringMatch]:
    out: dict[str, StringMatch] = {}
    for header, value, path in match.entries(name):
        if not header:
            match.problems.add(path, "header name must not be empty")
        elif header != header.lower():
            match.problems.add(path, f"header name {header!r} must be lowercase (write {header.lower()!r})")
        elif not _HEADER_NAME.match(header):
            match.problems.add(path, f"{header!r} is not a valid HTTP header name")
        string_match = read_string_match(value, path, match.problems, presence=True)
        if string_match is not None:
            out[header] = string_match
    return MappingProxyType(dict(sorted(out.items())))


def _query_param_matches(match: Fields) -> MappingProxyType[str, StringMatch]:
    out: dict[str, StringMatch] = {}
    for param, value, path in match.entries("queryParams"):
        if not param:
            match.problems.add(path, "query parameter name must not be empty")
        string_match = read_string_match(value, path, match.problems, presence=True)
        if string_match is not None:
            out[param] = string_match
    return MappingProxyType(dict(sorted(out.items())))
