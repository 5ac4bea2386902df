"""HTTPMatchRequest -> RouteMatch, one table row per match kind (Istio's TranslateRouteMatch)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from envoy.config.route.v3.route_components_pb2 import RouteMatch
from google.protobuf.json_format import MessageToDict, ParseDict

from pilot.config.types import HTTPMatchRequest, StringMatch
from pilot.generate.route_match import is_catch_all_match, translate_route_match
from tests.route_builders import exact, headers_map, prefix, regex

CS = {"caseSensitive": True}  # Istio always writes case_sensitive for a translated match

MATCH_CASES: list[tuple[str, HTTPMatchRequest | None, dict[str, Any]]] = [
    ("no-match-is-catch-all", None, {"prefix": "/"}),
    ("empty-match", HTTPMatchRequest(), {"prefix": "/", **CS}),
    ("uri-exact", HTTPMatchRequest(uri=exact("/login")), {"path": "/login", **CS}),
    ("uri-prefix", HTTPMatchRequest(uri=prefix("/api/")), {"prefix": "/api/", **CS}),
    ("uri-regex", HTTPMatchRequest(uri=regex("/v[0-9]+/.*")), {"safeRegex": {"regex": "/v[0-9]+/.*"}, **CS}),
    (
        "ignore-uri-case",
        HTTPMatchRequest(uri=prefix("/API"), ignore_uri_case=True),
        {"prefix": "/API", "caseSensitive": False},
    ),
    (
        "header-exact",
        HTTPMatchRequest(headers=headers_map(end_user=exact("jason"))),
        {"prefix": "/", **CS, "headers": [{"name": "end-user", "stringMatch": {"exact": "jason"}}]},
    ),
    (
        "header-prefix",
        HTTPMatchRequest(headers=headers_map(user_agent=prefix("curl/"))),
        {"prefix": "/", **CS, "headers": [{"name": "user-agent", "stringMatch": {"prefix": "curl/"}}]},
    ),
    (
        "header-regex",
        HTTPMatchRequest(headers=headers_map(cookie=regex("^(.*?;)?(user=jason)(;.*)?$"))),
        {
            "prefix": "/",
            **CS,
            "headers": [{"name": "cookie", "stringMatch": {"safeRegex": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}}}],
        },
    ),
    (
        "header-empty-value-is-presence",
        HTTPMatchRequest(headers=headers_map(x_canary=StringMatch())),
        {"prefix": "/", **CS, "headers": [{"name": "x-canary", "presentMatch": True}]},
    ),
    (
        "header-regex-star-is-presence",
        HTTPMatchRequest(headers=headers_map(x_canary=regex("*"))),
        {"prefix": "/", **CS, "headers": [{"name": "x-canary", "presentMatch": True}]},
    ),
    (
        "header-empty-prefix-is-presence",
        HTTPMatchRequest(headers=headers_map(x_canary=prefix(""))),
        {"prefix": "/", **CS, "headers": [{"name": "x-canary", "presentMatch": True}]},
    ),
    (
        "header-empty-exact-matches-empty-value",
        HTTPMatchRequest(headers=headers_map(x_canary=exact(""))),
        {"prefix": "/", **CS, "headers": [{"name": "x-canary", "stringMatch": {"exact": ""}}]},
    ),
    (
        "without-header-value",
        HTTPMatchRequest(without_headers=headers_map(end_user=exact("jason"))),
        {
            "prefix": "/",
            **CS,
            "headers": [
                {
                    "name": "end-user",
                    "stringMatch": {"exact": "jason"},
                    "invertMatch": True,
                    "treatMissingHeaderAsEmpty": True,
                }
            ],
        },
    ),
    (
        "without-header-presence",
        HTTPMatchRequest(without_headers=headers_map(end_user=StringMatch())),
        {"prefix": "/", **CS, "headers": [{"name": "end-user", "presentMatch": True, "invertMatch": True}]},
    ),
    (
        "headers-sorted-then-pseudo-headers",
        HTTPMatchRequest(
            headers=headers_map(zeta=exact("z"), alpha=exact("a")),
            without_headers=headers_map(beta=exact("b")),
            method=exact("GET"),
            authority=prefix("reviews"),
            scheme=exact("http"),
        ),
        {
            "prefix": "/",
            **CS,
            "headers": [
                {"name": "alpha", "stringMatch": {"exact": "a"}},
                {"name": "beta", "stringMatch": {"exact": "b"}, "invertMatch": True, "treatMissingHeaderAsEmpty": True},
                {"name": "zeta", "stringMatch": {"exact": "z"}},
                {"name": ":method", "stringMatch": {"exact": "GET"}},
                {"name": ":authority", "stringMatch": {"prefix": "reviews"}},
                {"name": ":scheme", "stringMatch": {"exact": "http"}},
            ],
        },
    ),
    (
        "query-params-sorted",
        HTTPMatchRequest(
            query_params=MappingProxyType(
                {"v": exact("2"), "debug": StringMatch(), "id": regex("[0-9]+"), "lang": prefix("en")}
            )
        ),
        {
            "prefix": "/",
            **CS,
            "queryParameters": [
                {"name": "debug", "presentMatch": True},
                {"name": "id", "stringMatch": {"safeRegex": {"regex": "[0-9]+"}}},
                {"name": "lang", "stringMatch": {"prefix": "en"}},
                {"name": "v", "stringMatch": {"exact": "2"}},
            ],
        },
    ),
]


@pytest.mark.parametrize(("match", "expected"), [c[1:] for c in MATCH_CASES], ids=[c[0] for c in MATCH_CASES])
def test_translate_route_match(match: HTTPMatchRequest | None, expected: dict[str, Any]) -> None:
    got = translate_route_match(match)
    assert MessageToDict(got) == expected
    assert got == ParseDict(expected, RouteMatch())


CATCH_ALL_CASES: list[tuple[str, HTTPMatchRequest | None, bool]] = [
    ("no-match", None, True),
    ("prefix-slash", HTTPMatchRequest(uri=prefix("/")), True),
    ("regex-dot-star", HTTPMatchRequest(uri=regex(".*")), True),
    ("ignore-case-still-catch-all", HTTPMatchRequest(uri=prefix("/"), ignore_uri_case=True), True),
    ("prefix-api", HTTPMatchRequest(uri=prefix("/api")), False),
    ("exact-slash", HTTPMatchRequest(uri=exact("/")), False),
    ("header-condition", HTTPMatchRequest(headers=headers_map(x=exact("1"))), False),
    ("method-condition", HTTPMatchRequest(method=exact("GET")), False),
    ("query-condition", HTTPMatchRequest(query_params=MappingProxyType({"q": exact("1")})), False),
]


@pytest.mark.parametrize(("match", "catch_all"), [c[1:] for c in CATCH_ALL_CASES], ids=[c[0] for c in CATCH_ALL_CASES])
def test_is_catch_all_match(match: HTTPMatchRequest | None, catch_all: bool) -> None:
    assert is_catch_all_match(translate_route_match(match)) is catch_all
