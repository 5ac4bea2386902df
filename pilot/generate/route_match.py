"""VirtualService HTTPMatchRequest -> Envoy RouteMatch (Istio's ``TranslateRouteMatch``).

One HTTPMatchRequest becomes one RouteMatch; a route without matches gets Istio's catch-all ``prefix: /``.
Istio's conventions kept here:

- a StringMatch with no value (``myheader: {}``) or the regex ``"*"`` is a presence check (``present_match``);
- ``withoutHeaders`` inverts the matcher and, unless it is a presence check, treats a missing header as empty
  (so a request without the header matches ``withoutHeaders``);
- header matchers are sorted by name, then ``:method``, ``:authority`` and ``:scheme`` are appended;
- ``case_sensitive`` is always set (``false`` only with ``ignoreUriCase``).

One deliberate difference: an empty ``prefix`` (``prefix: ""``) is also a presence check. Istio passes it to
Envoy, which rejects the whole RouteConfiguration (``StringMatcher.prefix`` must not be empty; istio/istio#44424).
"""

from __future__ import annotations

from envoy.config.route.v3.route_components_pb2 import HeaderMatcher, QueryParameterMatcher, RouteMatch
from envoy.type.matcher.v3.regex_pb2 import RegexMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher

from pilot.config.types import HTTPMatchRequest, StringMatch

__all__ = [
    "HEADER_AUTHORITY",
    "HEADER_METHOD",
    "HEADER_SCHEME",
    "is_catch_all_match",
    "is_presence_match",
    "string_matcher",
    "translate_header_match",
    "translate_query_param_match",
    "translate_route_match",
]

HEADER_METHOD = ":method"
HEADER_AUTHORITY = ":authority"
HEADER_SCHEME = ":scheme"


def is_presence_match(match: StringMatch | None) -> bool:
    """True when the StringMatch only asks for the header/parameter to be present (Istio's present_match cases)."""
    if match is None:
        return True
    if match.exact is None and match.prefix is None and match.regex is None:
        return True
    # `*` is not RE2: Istio reads it as "any value" (istio/istio#20629). An empty prefix also matches any value.
    return match.regex == "*" or match.prefix == ""


def string_matcher(match: StringMatch) -> StringMatcher | None:
    """Istio's ``ConvertToEnvoyMatch``: exact / prefix / RE2 regex (Envoy's default regex engine is RE2)."""
    if match.exact is not None:
        return StringMatcher(exact=match.exact)
    if match.prefix is not None:
        return StringMatcher(prefix=match.prefix)
    if match.regex is not None:
        return StringMatcher(safe_regex=RegexMatcher(regex=match.regex))
    return None


def translate_header_match(name: str, match: StringMatch | None, *, invert: bool = False) -> HeaderMatcher:
    """A header (or pseudo-header) condition; ``invert`` is ``withoutHeaders``."""
    out = HeaderMatcher(name=name)
    presence = is_presence_match(match)
    if presence:
        out.present_match = True
    else:
        assert match is not None
        out.string_match.CopyFrom(string_matcher(match))
    if invert:
        out.invert_match = True
        # treat_missing_header_as_empty conflicts with present_match (Envoy rejects the pair).
        if not presence:
            out.treat_missing_header_as_empty = True
    return out


def translate_query_param_match(name: str, match: StringMatch | None) -> QueryParameterMatcher:
    out = QueryParameterMatcher(name=name)
    if is_presence_match(match):
        out.present_match = True
    else:
        assert match is not None
        out.string_match.CopyFrom(string_matcher(match))
    return out


def translate_route_match(match: HTTPMatchRequest | None) -> RouteMatch:
    """One HTTPMatchRequest -> one RouteMatch. ``None`` (a route without ``match``) is the catch-all ``/``."""
    out = RouteMatch(prefix="/")
    if match is None:
        return out
    headers = [translate_header_match(name, value) for name, value in match.headers.items()]
    headers += [translate_header_match(name, value, invert=True) for name, value in match.without_headers.items()]
    headers.sort(key=lambda h: h.name)  # stable: a name in both headers and withoutHeaders keeps that order
    if match.uri is not None:
        uri = match.uri
        if uri.exact is not None:
            out.path = uri.exact
        elif uri.prefix is not None:
            out.prefix = uri.prefix
        elif uri.regex is not None:
            out.safe_regex.CopyFrom(RegexMatcher(regex=uri.regex))
    out.case_sensitive.value = not match.ignore_uri_case
    pseudo_headers = ((HEADER_METHOD, match.method), (HEADER_AUTHORITY, match.authority), (HEADER_SCHEME, match.scheme))
    for pseudo, value in pseudo_headers:
        if value is not None:
            headers.append(translate_header_match(pseudo, value))
    out.headers.extend(headers)
    out.query_parameters.extend(
        translate_query_param_match(name, value) for name, value in sorted(match.query_params.items())
    )
    return out


def is_catch_all_match(match: RouteMatch) -> bool:
    """Istio's ``IsCatchAllRoute``: ``/`` prefix (or ``.*`` regex) with no header or query conditions.

    Routes after a catch-all can never be reached, so the route list stops there."""
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        path_matches_all = match.prefix == "/"
    elif kind == "path_separated_prefix":
        path_matches_all = match.path_separated_prefix == "/"
    elif kind == "safe_regex":
        path_matches_all = match.safe_regex.regex == ".*"
    else:
        path_matches_all = False
    return path_matches_all and not match.headers and not match.query_parameters and not match.dynamic_metadata
