"""A VirtualService route's corsPolicy: the CORS filter's per-route config, field by field (Istio's
``TranslateCORSPolicy``), and no per-route config for a route without one."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.filters.http.cors.v3.cors_pb2 import CorsPolicy as EnvoyCorsPolicy
from google.protobuf.json_format import MessageToDict

from meshplane import names
from pilot.config.types import CorsPolicy, HTTPMatchRequest, HTTPRedirect, HTTPRoute, StringMatch
from tests.route_builders import exact, prefix, regex, reviews_routes, to

ENABLED = {"filterEnabled": {"defaultValue": {"numerator": 100}}}  # HUNDRED is the default denominator

CASES: list[tuple[str, CorsPolicy, dict[str, Any]]] = [
    (
        "empty-forwards-preflights",
        CorsPolicy(),
        {**ENABLED, "forwardNotMatchingPreflights": True},
    ),
    (
        "istio-docs-example",
        CorsPolicy(
            allow_origins=(exact("https://example.com"),),
            allow_methods=("POST", "GET"),
            allow_credentials=False,
            allow_headers=("X-Foo-Bar",),
            max_age=86400,
        ),
        {
            **ENABLED,
            "allowOriginStringMatch": [{"exact": "https://example.com"}],
            "allowMethods": "POST,GET",
            "allowHeaders": "X-Foo-Bar",
            "maxAge": "86400",
            "allowCredentials": False,
            "forwardNotMatchingPreflights": True,
        },
    ),
    (
        "every-origin-kind-and-expose-headers",
        CorsPolicy(
            allow_origins=(exact("https://a.example.com"), prefix("https://b."), regex("https://.*\\.c\\.com")),
            expose_headers=("x-b", "x-c"),
            allow_credentials=True,
            unmatched_preflights="FORWARD",
        ),
        {
            **ENABLED,
            "allowOriginStringMatch": [
                {"exact": "https://a.example.com"},
                {"prefix": "https://b."},
                {"safeRegex": {"regex": "https://.*\\.c\\.com"}},
            ],
            "exposeHeaders": "x-b,x-c",
            "allowCredentials": True,
            "forwardNotMatchingPreflights": True,
        },
    ),
    (
        "ignore-unmatched-preflights",
        CorsPolicy(allow_origins=(StringMatch(exact="*"),), unmatched_preflights="IGNORE"),
        {**ENABLED, "allowOriginStringMatch": [{"exact": "*"}], "forwardNotMatchingPreflights": False},
    ),
]


@pytest.mark.parametrize(("policy", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cors_policy_on_route(policy: CorsPolicy, expected: dict[str, Any]) -> None:
    [route] = reviews_routes(HTTPRoute(route=(to("reviews"),), cors_policy=policy))
    packed = route.typed_per_filter_config[names.CORS_FILTER]
    assert packed.type_url == "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
    config = EnvoyCorsPolicy()
    assert packed.Unpack(config)
    assert MessageToDict(config) == expected
    assert not route.route.HasField("cors")  # the deprecated RouteAction field stays unused


def test_cors_policy_applies_to_redirects_too_and_only_where_written() -> None:
    with_cors, without = reviews_routes(
        HTTPRoute(
            match=(HTTPMatchRequest(uri=prefix("/old")),),
            redirect=HTTPRedirect(uri="/new"),
            cors_policy=CorsPolicy(allow_origins=(exact("https://a.example.com"),)),
        ),
        HTTPRoute(route=(to("reviews"),)),
    )
    assert with_cors.WhichOneof("action") == "redirect"
    assert names.CORS_FILTER in with_cors.typed_per_filter_config
    assert names.CORS_FILTER not in without.typed_per_filter_config
