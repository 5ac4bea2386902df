"""Real Envoy accepts the route tables: one VirtualService using every feature we translate, loaded with the
clusters, endpoints and listeners that reference or serve it (``envoy --mode validate``)."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from pilot.config.types import (
    Abort,
    CorsPolicy,
    Delay,
    Destination,
    DestinationRule,
    Fault,
    HeaderOperations,
    Headers,
    HTTPDirectResponse,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    HTTPRoute,
    HTTPRouteDestination,
    Mirror,
    Protocol,
    RegexRewrite,
    StringMatch,
    Subset,
)
from pilot.generate import clusters, endpoints, listeners
from pilot.generate.registry import ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy, parse_node_id, resolve_proxy
from tests import xdstest
from tests.route_builders import (
    NS,
    REVIEWS,
    exact,
    headers_map,
    meta,
    port,
    prefix,
    regex,
    service_entry,
    snapshot,
    to,
    virtual_service,
    workload,
)
from tests.source_builders import generated_type

RATINGS = "ratings.default.svc.cluster.local"


def header_ops(**values: str) -> HeaderOperations:
    return HeaderOperations(set=MappingProxyType({k.replace("_", "-"): v for k, v in values.items()}))


EVERY_FEATURE: tuple[HTTPRoute, ...] = (
    HTTPRoute(
        name="matches",
        match=(
            HTTPMatchRequest(name="exact", uri=exact("/login"), method=exact("POST"), scheme=exact("http")),
            HTTPMatchRequest(name="regex", uri=regex("/v[0-9]+/.*"), ignore_uri_case=True, authority=prefix("reviews")),
            HTTPMatchRequest(
                name="headers",
                uri=prefix("/h"),
                headers=headers_map(
                    end_user=exact("jason"), x_prefix=prefix("a"), x_regex=regex("b.*"), x_present=StringMatch()
                ),
                without_headers=headers_map(x_debug=exact("1"), x_absent=StringMatch(), x_empty=prefix("")),
            ),
            HTTPMatchRequest(
                name="query",
                uri=prefix("/q"),
                query_params=MappingProxyType(
                    {"v": exact("2"), "l": prefix("en"), "id": regex("[0-9]+"), "p": StringMatch()}
                ),
            ),
            HTTPMatchRequest(name="elsewhere", port=9090, uri=prefix("/other-port")),
        ),
        route=(
            HTTPRouteDestination(
                destination=Destination(host="reviews", subset="v1"),
                weight=70,
                headers=Headers(request=header_ops(x_version="v1"), response=HeaderOperations(remove=("x-internal",))),
            ),
            HTTPRouteDestination(
                destination=Destination(host="reviews", subset="v2"),
                weight=30,
                headers=Headers(request=header_ops(**{":authority": "v2.reviews"})),
            ),
        ),
        timeout=2.5,
        retries=HTTPRetry(
            attempts=3,
            per_try_timeout=0.5,
            retry_on="gateway-error,503",
            retry_remote_localities=True,
            backoff=0.05,
            retry_ignore_previous_hosts=False,
        ),
        cors_policy=CorsPolicy(
            allow_origins=(exact("https://a.example.com"), prefix("https://b."), regex(r"https://[a-z]+\.c\.com")),
            allow_methods=("GET", "POST", "*"),
            allow_headers=("x-a", "*"),
            expose_headers=("x-b",),
            max_age=86400,
            allow_credentials=True,
            unmatched_preflights="FORWARD",
        ),
        fault=Fault(delay=Delay(fixed_delay=0.1, percentage=0.5), abort=Abort(http_status=503, percentage=1.25)),
        mirrors=(
            Mirror(destination=Destination(host="ratings"), percentage=10.5),
            Mirror(destination=Destination(host="reviews", subset="v3")),
        ),
        headers=Headers(
            request=HeaderOperations(
                set=MappingProxyType({"x-route": "matches"}),
                add=MappingProxyType({"x-trace": "on"}),
                remove=("x-secret",),
            ),
            response=HeaderOperations(set=MappingProxyType({"cache-control": "no-store"}), remove=("server",)),
        ),
    ),
    HTTPRoute(
        name="prefix-rewrite",
        match=(HTTPMatchRequest(uri=prefix("/old/")),),
        route=(to("reviews", "v3"),),
        rewrite=HTTPRewrite(uri="/new/", authority="reviews.internal"),
        retries=HTTPRetry(attempts=0),
    ),
    HTTPRoute(
        name="regex-rewrite",
        match=(HTTPMatchRequest(uri=regex("/api/v1/(.*)")),),
        route=(to("ratings"),),
        rewrite=HTTPRewrite(uri_regex_rewrite=RegexRewrite(match="^/api/v1/(.*)$", rewrite="/\\1")),
        fault=Fault(abort=Abort(grpc_status="UNAVAILABLE")),
    ),
    HTTPRoute(
        name="redirect",
        match=(HTTPMatchRequest(uri=exact("/moved")),),
        redirect=HTTPRedirect(uri="/here", authority="new.example", scheme="https", port=8443, redirect_code=308),
    ),
    HTTPRoute(
        name="redirect-derived-port",
        match=(HTTPMatchRequest(uri=exact("/moved-too")),),
        redirect=HTTPRedirect(authority="other.example", derive_port="FROM_REQUEST_PORT", redirect_code=302),
    ),
    HTTPRoute(
        name="direct",
        match=(HTTPMatchRequest(uri=prefix("/maintenance")),),
        direct_response=HTTPDirectResponse(status=503, body="down for maintenance"),
    ),
    HTTPRoute(
        name="rest",
        route=(to("reviews", "v1"),),
        fault=Fault(delay=Delay(fixed_delay=1)),
        retries=HTTPRetry(attempts=1, backoff=1, retry_ignore_previous_hosts=True),
        cors_policy=CorsPolicy(allow_origins=(exact("*"),), unmatched_preflights="IGNORE"),
    ),
)


@pytest.fixture
def every_feature_mesh() -> tuple[MeshSnapshot, Proxy]:
    snap = snapshot(
        service_entry(
            "reviews",
            REVIEWS,
            (port(9080), port(9090, Protocol.GRPC), port(3306, Protocol.TCP)),
            selector={"app": "reviews"},
        ),
        service_entry("ratings", RATINGS, (port(8080),), selector={"app": "ratings"}),
        service_entry("web", "web.default.svc.cluster.local", (port(80),)),
        service_entry("odd", "reviews.default", (port(9080),)),  # collides with an alias of reviews
        workload(
            "reviews-v1",
            "127.0.0.21",
            {"app": "reviews", "version": "v1"},
            {"http-9080": 19080, "grpc-9090": 19090, "tcp-3306": 13306},
        ),
        workload("ratings-v1", "127.0.0.22", {"app": "ratings", "version": "v1"}),
        DestinationRule(
            meta=meta("DestinationRule", "reviews"),
            host="reviews",
            subsets=tuple(Subset(name=v, labels=MappingProxyType({"version": v})) for v in ("v1", "v2", "v3")),
        ),
        virtual_service("reviews", ("reviews",), *EVERY_FEATURE),
    )
    proxy = resolve_proxy(parse_node_id(f"sidecar~127.0.0.21~reviews-v1.{NS}~{NS}.svc.cluster.local"), snap)
    return snap, proxy


def test_envoy_accepts_every_route_feature(tmp_path: Path, every_feature_mesh: tuple[MeshSnapshot, Proxy]) -> None:
    snap, proxy = every_feature_mesh
    route_tables = generated_type(ROUTE_TYPE, proxy, snap)
    all_clusters = clusters.build_scope_clusters(("outbound", "default"), snap) + clusters.build_inbound_clusters(
        proxy, snap
    )
    assignments = endpoints.build_scope_load_assignments(("eds", "default"), snap)
    proxy_listeners = listeners.build_listeners(proxy, snap)

    xdstest.check_resources(
        clusters=all_clusters, load_assignments=assignments, listeners=proxy_listeners, routes=route_tables
    )
    tables = {t.name: t for t in route_tables}
    assert {"9080", "9090", "inbound|9080||", "inbound|9090||"} <= set(tables)  # and the other services' ports
    reviews_routes = next(vh for vh in tables["9080"].virtual_hosts if vh.name == f"{REVIEWS}:9080").routes
    assert len(reviews_routes) == 4 + 6  # 4 matches of "matches" on port 9080, then one route per other HTTPRoute
    xdstest.envoy_validate(
        tmp_path, clusters=all_clusters, listeners=proxy_listeners, routes=route_tables, load_assignments=assignments
    )
