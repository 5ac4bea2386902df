"""What a matched HTTPRoute does: destinations, weights, retries, timeout, fault, rewrite, redirect, direct
response, mirrors and header operations (Istio's route.go and route/retry)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from envoy.config.core.v3.base_pb2 import HeaderValueOption
from envoy.config.route.v3.route_components_pb2 import RedirectAction
from envoy.extensions.filters.http.fault.v3.fault_pb2 import HTTPFault
from envoy.extensions.retry.priority.previous_priorities.v3.previous_priorities_config_pb2 import (
    PreviousPrioritiesConfig,
)
from google.protobuf.json_format import MessageToDict

from meshplane import names
from pilot.config.types import (
    GRPC_STATUS_NAMES,
    Abort,
    Delay,
    Destination,
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
    RegexRewrite,
)
from pilot.generate.route_action import (
    DEFAULT_RETRY_ON,
    GRPC_STATUS_CODES,
    RouteContext,
    ServicePorts,
    build_redirect,
    convert_retry_policy,
    default_retry_policy,
    destination_cluster,
    translate_fault,
)
from tests.conftest import IstioDocs
from tests.route_builders import REVIEWS, exact, port, prefix, regex, reviews_routes, service_entry, snapshot, to

RATINGS = "ratings.default.svc.cluster.local"
DETAILS = "details.default.svc.cluster.local"

# -- destinations ----------------------------------------------------------------------------------------------

CLUSTER_CASES: list[tuple[str, Destination, str, int, str]] = [
    ("short-name-same-namespace", Destination(host="reviews"), "default", 9080, f"outbound|9080||{REVIEWS}"),
    ("vhost-port-for-multi-port-service", Destination(host="reviews"), "default", 9090, f"outbound|9090||{REVIEWS}"),
    ("explicit-port", Destination(host="reviews", port=9090), "default", 9080, f"outbound|9090||{REVIEWS}"),
    ("subset", Destination(host="reviews", subset="v2"), "default", 9080, f"outbound|9080|v2|{REVIEWS}"),
    ("single-port-service-port", Destination(host="ratings"), "default", 9080, f"outbound|8080||{RATINGS}"),
    ("fqdn-kept", Destination(host=RATINGS, subset="v1"), "other", 9080, f"outbound|8080|v1|{RATINGS}"),
    (
        "short-name-is-the-vs-namespace",
        Destination(host="reviews"),
        "other",
        9080,
        "outbound|9080||reviews.other.svc.cluster.local",
    ),
    ("unknown-host-vhost-port", Destination(host="httpbin.org"), "default", 80, "outbound|80||httpbin.org"),
]


@pytest.mark.parametrize(
    ("destination", "vs_namespace", "vhost_port", "cluster"),
    [c[1:] for c in CLUSTER_CASES],
    ids=[c[0] for c in CLUSTER_CASES],
)
def test_destination_cluster(destination: Destination, vs_namespace: str, vhost_port: int, cluster: str) -> None:
    snap = snapshot(
        service_entry("reviews", REVIEWS, (port(9080), port(9090))), service_entry("ratings", RATINGS, (port(8080),))
    )
    ctx = RouteContext(
        vs_namespace=vs_namespace,
        vs_name="vs",
        port=vhost_port,
        domain_suffix=snap.domain_suffix,
        service_ports=ServicePorts.of(snap),
    )
    assert destination_cluster(destination, ctx) == cluster


def test_single_destination_is_cluster() -> None:
    [route] = reviews_routes(HTTPRoute(route=(to("reviews", "v1"),)))
    assert route.route.WhichOneof("cluster_specifier") == "cluster"
    assert route.route.cluster == f"outbound|9080|v1|{REVIEWS}"
    assert route.decorator.operation == f"{REVIEWS}:9080/*"


def test_weighted_split_keeps_weights_and_skips_zero() -> None:
    [route] = reviews_routes(
        HTTPRoute(route=(to("reviews", "v1", weight=75), to("reviews", "v2", weight=25), to("reviews", "v3", weight=0)))
    )
    clusters = route.route.weighted_clusters.clusters
    assert [(c.name, c.weight.value) for c in clusters] == [
        (f"outbound|9080|v1|{REVIEWS}", 75),
        (f"outbound|9080|v2|{REVIEWS}", 25),
    ]
    assert not route.route.weighted_clusters.HasField("total_weight")
    assert route.decorator.operation == "reviews:9080/*"  # several clusters: the VirtualService's name


def test_split_across_services_and_ports() -> None:
    [route] = reviews_routes(
        HTTPRoute(
            route=(to("ratings", weight=50), to("details", port_number=9443, weight=30), to("details", weight=20))
        )
    )
    assert [c.name for c in route.route.weighted_clusters.clusters] == [
        f"outbound|8080||{RATINGS}",
        f"outbound|9443||{DETAILS}",
        f"outbound|9080||{DETAILS}",  # details has two ports: the request's (vhost) port
    ]


def test_split_with_no_positive_weight_is_dropped() -> None:
    routes = reviews_routes(HTTPRoute(name="bad", route=(to("reviews", "v1", weight=0), to("reviews", "v2", weight=0))))
    assert [r.name for r in routes] == ["default"]  # nothing usable: the host falls back to its default route


# -- timeout and retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "expected"), [(None, "0s"), (2.5, "2.500s"), (0.0, "0s")], ids=["unset", "2.5s", "0s"]
)
def test_timeout(timeout: float | None, expected: str) -> None:
    [route] = reviews_routes(HTTPRoute(route=(to("reviews"),), timeout=timeout))
    action = MessageToDict(route.route)
    assert action["timeout"] == expected
    if timeout:
        # Envoy ignores the route timeout for HTTP/1 when max_stream_duration is set (envoy#15530): leave it out.
        assert "maxStreamDuration" not in action
    else:
        # No route timeout: a gRPC client's grpc-timeout header applies, uncapped.
        assert action["maxStreamDuration"] == {"grpcTimeoutHeaderMax": "0s"}
    assert "maxGrpcTimeout" not in action


def test_default_retry_policy_is_istios() -> None:
    policy = default_retry_policy()
    assert policy.retry_on == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    assert policy.retry_on == DEFAULT_RETRY_ON
    assert policy.num_retries.value == 2
    assert list(policy.retriable_status_codes) == [503]
    assert policy.host_selection_retry_max_attempts == 5
    [predicate] = policy.retry_host_predicate
    assert predicate.name == "envoy.retry_host_predicates.previous_hosts"
    assert predicate.typed_config.type_url.endswith(
        "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
    )
    assert not policy.HasField("per_try_timeout")


RETRY_CASES: list[tuple[str, HTTPRetry, dict[str, Any]]] = [
    ("attempts-only-keeps-default-conditions", HTTPRetry(attempts=5), {"on": DEFAULT_RETRY_ON, "codes": [503], "n": 5}),
    (
        "conditions-replace-codes",
        HTTPRetry(attempts=3, retry_on="5xx,gateway-error"),
        {"on": "5xx,gateway-error", "codes": [], "n": 3},
    ),
    (
        "codes-only",
        HTTPRetry(attempts=3, retry_on="503,504"),
        {"on": "retriable-status-codes", "codes": [503, 504], "n": 3},
    ),
    (
        "mixed",
        HTTPRetry(attempts=2, retry_on="connect-failure, 502 ,reset"),
        {"on": "connect-failure,reset,retriable-status-codes", "codes": [502], "n": 2},
    ),
    (
        "explicit-retriable-status-codes-not-doubled",
        HTTPRetry(attempts=2, retry_on="retriable-status-codes,409"),
        {"on": "retriable-status-codes", "codes": [409], "n": 2},
    ),
    ("not-a-status-code-is-a-condition", HTTPRetry(attempts=1, retry_on="999"), {"on": "999", "codes": [], "n": 1}),
]


@pytest.mark.parametrize(("retries", "expected"), [c[1:] for c in RETRY_CASES], ids=[c[0] for c in RETRY_CASES])
def test_convert_retry_policy(retries: HTTPRetry, expected: dict[str, Any]) -> None:
    policy = convert_retry_policy(retries)
    assert policy is not None
    assert policy.retry_on == expected["on"]
    assert list(policy.retriable_status_codes) == expected["codes"]
    assert policy.num_retries.value == expected["n"]
    assert policy.host_selection_retry_max_attempts == 5
    assert [p.name for p in policy.retry_host_predicate] == ["envoy.retry_host_predicates.previous_hosts"]


def test_retry_per_try_timeout_and_remote_localities() -> None:
    policy = convert_retry_policy(HTTPRetry(attempts=3, per_try_timeout=0.25, retry_remote_localities=True))
    assert policy is not None
    assert MessageToDict(policy)["perTryTimeout"] == "0.250s"
    assert policy.retry_priority.name == "envoy.retry_priorities.previous_priorities"
    config = PreviousPrioritiesConfig()
    assert policy.retry_priority.typed_config.Unpack(config)
    assert config.update_frequency == 2


PREVIOUS_HOSTS = ["envoy.retry_host_predicates.previous_hosts"]
HOSTS_AND_BACKOFF_CASES: list[tuple[str, HTTPRetry, list[str], dict[str, Any] | None]] = [
    ("unset-avoids-previous-hosts-envoy-backoff", HTTPRetry(attempts=2), PREVIOUS_HOSTS, None),
    ("ignore-previous-hosts-true", HTTPRetry(attempts=2, retry_ignore_previous_hosts=True), PREVIOUS_HOSTS, None),
    ("ignore-previous-hosts-false", HTTPRetry(attempts=2, retry_ignore_previous_hosts=False), [], None),
    ("backoff", HTTPRetry(attempts=2, backoff=0.1), PREVIOUS_HOSTS, {"baseInterval": "0.100s"}),
    (
        "backoff-without-previous-hosts",
        HTTPRetry(attempts=3, backoff=2, retry_ignore_previous_hosts=False),
        [],
        {"baseInterval": "2s"},
    ),
]


@pytest.mark.parametrize(
    ("retries", "predicates", "back_off"),
    [c[1:] for c in HOSTS_AND_BACKOFF_CASES],
    ids=[c[0] for c in HOSTS_AND_BACKOFF_CASES],
)
def test_retry_previous_hosts_and_backoff(
    retries: HTTPRetry, predicates: list[str], back_off: dict[str, Any] | None
) -> None:
    """Istio's ConvertPolicy: the previous_hosts predicate unless retryIgnorePreviousHosts is false; backoff is the
    base interval only (Envoy's max interval is 10 times it)."""
    policy = convert_retry_policy(retries)
    assert policy is not None
    assert [p.name for p in policy.retry_host_predicate] == predicates
    assert policy.host_selection_retry_max_attempts == 5
    assert policy.HasField("retry_back_off") == (back_off is not None)
    if back_off is not None:
        assert MessageToDict(policy.retry_back_off) == back_off


def test_retries_on_routes() -> None:
    unset, disabled, custom = reviews_routes(
        HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/a")),), route=(to("reviews"),)),
        HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/b")),), route=(to("reviews"),), retries=HTTPRetry(attempts=0)),
        HTTPRoute(route=(to("reviews"),), retries=HTTPRetry(attempts=4, retry_on="5xx")),
    )
    assert unset.route.retry_policy == default_retry_policy()
    assert not disabled.route.HasField("retry_policy")
    assert custom.route.retry_policy.num_retries.value == 4
    assert custom.route.retry_policy.retry_on == "5xx"


# -- fault -----------------------------------------------------------------------------------------------------

FAULT_CASES: list[tuple[str, Fault, dict[str, Any]]] = [
    (
        "delay-all-by-default",
        Fault(delay=Delay(fixed_delay=7)),
        {"delay": {"fixedDelay": "7s", "percentage": {"numerator": 1000000, "denominator": "MILLION"}}},
    ),
    (
        "delay-decimal-percentage",
        Fault(delay=Delay(fixed_delay=0.5, percentage=0.1)),
        {"delay": {"fixedDelay": "0.500s", "percentage": {"numerator": 1000, "denominator": "MILLION"}}},
    ),
    (
        "abort-http",
        Fault(abort=Abort(http_status=503, percentage=12.5)),
        {"abort": {"httpStatus": 503, "percentage": {"numerator": 125000, "denominator": "MILLION"}}},
    ),
    (
        "abort-grpc",
        Fault(abort=Abort(grpc_status="UNAVAILABLE")),
        {"abort": {"grpcStatus": 14, "percentage": {"numerator": 1000000, "denominator": "MILLION"}}},
    ),
    (
        "delay-and-abort",
        Fault(delay=Delay(fixed_delay=1, percentage=50), abort=Abort(http_status=400, percentage=0)),
        {
            "delay": {"fixedDelay": "1s", "percentage": {"numerator": 500000, "denominator": "MILLION"}},
            "abort": {"httpStatus": 400, "percentage": {"denominator": "MILLION"}},
        },
    ),
]


@pytest.mark.parametrize(("fault", "expected"), [c[1:] for c in FAULT_CASES], ids=[c[0] for c in FAULT_CASES])
def test_fault_on_route(fault: Fault, expected: dict[str, Any]) -> None:
    [route] = reviews_routes(HTTPRoute(route=(to("reviews"),), fault=fault))
    packed = route.typed_per_filter_config[names.FAULT_FILTER]
    assert packed.type_url == "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    config = HTTPFault()
    assert packed.Unpack(config)
    assert MessageToDict(config) == expected


def test_fault_with_unknown_grpc_status_is_not_injected() -> None:
    assert translate_fault(Fault(abort=Abort(grpc_status="NOPE"))) is None
    only_delay = translate_fault(Fault(delay=Delay(fixed_delay=1), abort=Abort(grpc_status="NOPE")))
    assert only_delay is not None and not only_delay.HasField("abort")


def test_no_fault_no_per_filter_config() -> None:
    [route] = reviews_routes(HTTPRoute(route=(to("reviews"),)))
    assert names.FAULT_FILTER not in route.typed_per_filter_config


# -- rewrite ---------------------------------------------------------------------------------------------------

REWRITE_CASES: list[tuple[str, HTTPMatchRequest | None, HTTPRewrite, dict[str, Any], dict[str, str]]] = [
    (
        "prefix-match",
        HTTPMatchRequest(uri=prefix("/old/")),
        HTTPRewrite(uri="/new/"),
        {"prefix": "/old/"},
        {"prefixRewrite": "/new/"},
    ),
    (
        "exact-match-replaces-path",
        HTTPMatchRequest(uri=exact("/login")),
        HTTPRewrite(uri="/auth/login"),
        {"path": "/login"},
        {"prefixRewrite": "/auth/login"},
    ),
    (
        "authority",
        None,
        HTTPRewrite(authority="reviews.internal"),
        {"prefix": "/"},
        {"hostRewriteLiteral": "reviews.internal"},
    ),
    (
        "regex",
        HTTPMatchRequest(uri=regex("/v1/(.*)")),
        HTTPRewrite(uri_regex_rewrite=RegexRewrite(match="^/v1/(.*)$", rewrite="/v2/\\1")),
        {"safeRegex": {"regex": "/v1/(.*)"}},
        {"regexRewrite": {"pattern": {"regex": "^/v1/(.*)$"}, "substitution": "/v2/\\1"}},
    ),
]


@pytest.mark.parametrize(
    ("match", "rewrite", "expected_match", "expected_action"),
    [c[1:] for c in REWRITE_CASES],
    ids=[c[0] for c in REWRITE_CASES],
)
def test_rewrite(
    match: HTTPMatchRequest | None,
    rewrite: HTTPRewrite,
    expected_match: dict[str, Any],
    expected_action: dict[str, str],
) -> None:
    [route] = reviews_routes(HTTPRoute(match=(match,) if match else (), route=(to("reviews"),), rewrite=rewrite))
    match_dict = MessageToDict(route.match)
    assert {k: v for k, v in match_dict.items() if k != "caseSensitive"} == expected_match
    action = MessageToDict(route.route)
    for key in ("prefixRewrite", "regexRewrite", "hostRewriteLiteral"):
        assert action.get(key) == expected_action.get(key), key


def authority_headers(value: str) -> Headers:
    return Headers(request=HeaderOperations(set=MappingProxyType({":authority": value})))


def test_authority_header_becomes_host_rewrite_and_rewrite_wins() -> None:
    from_header, from_rewrite, from_destination = reviews_routes(
        HTTPRoute(
            match=(HTTPMatchRequest(uri=prefix("/a")),), route=(to("reviews"),), headers=authority_headers("a.example")
        ),
        HTTPRoute(
            match=(HTTPMatchRequest(uri=prefix("/b")),),
            route=(to("reviews"),),
            headers=authority_headers("a.example"),
            rewrite=HTTPRewrite(authority="b.example"),
        ),
        HTTPRoute(
            route=(
                HTTPRouteDestination(destination=Destination(host="reviews"), headers=authority_headers("c.example")),
            )
        ),
    )
    assert from_header.route.host_rewrite_literal == "a.example"
    assert not from_header.request_headers_to_add  # :authority is not a header Envoy can set
    assert from_rewrite.route.host_rewrite_literal == "b.example"
    assert from_destination.route.host_rewrite_literal == "c.example"


# -- redirect and direct response ------------------------------------------------------------------------------

REDIRECT_CASES: list[tuple[str, HTTPRedirect, dict[str, Any]]] = [
    (
        "uri-and-authority",
        HTTPRedirect(uri="/v2", authority="new.example"),
        {"pathRedirect": "/v2", "hostRedirect": "new.example"},
    ),
    ("found", HTTPRedirect(uri="/x", redirect_code=302), {"pathRedirect": "/x", "responseCode": "FOUND"}),
    ("see-other", HTTPRedirect(uri="/x", redirect_code=303), {"pathRedirect": "/x", "responseCode": "SEE_OTHER"}),
    (
        "temporary",
        HTTPRedirect(uri="/x", redirect_code=307),
        {"pathRedirect": "/x", "responseCode": "TEMPORARY_REDIRECT"},
    ),
    (
        "permanent",
        HTTPRedirect(uri="/x", redirect_code=308),
        {"pathRedirect": "/x", "responseCode": "PERMANENT_REDIRECT"},
    ),
    ("scheme-and-port", HTTPRedirect(scheme="https", port=8443), {"schemeRedirect": "https", "portRedirect": 8443}),
    ("http-port-80-dropped", HTTPRedirect(authority="a", port=80), {"hostRedirect": "a"}),
    ("https-port-443-dropped", HTTPRedirect(scheme="https", port=443), {"schemeRedirect": "https"}),
    (
        "derive-request-port",
        HTTPRedirect(authority="a", derive_port="FROM_REQUEST_PORT"),
        {"hostRedirect": "a", "portRedirect": 9080},
    ),
    (
        "derive-protocol-default",
        HTTPRedirect(authority="a", derive_port="FROM_PROTOCOL_DEFAULT"),
        {"hostRedirect": "a"},
    ),
]


@pytest.mark.parametrize(("redirect", "expected"), [c[1:] for c in REDIRECT_CASES], ids=[c[0] for c in REDIRECT_CASES])
def test_redirect(redirect: HTTPRedirect, expected: dict[str, Any]) -> None:
    [route] = reviews_routes(HTTPRoute(redirect=redirect))
    assert route.WhichOneof("action") == "redirect"
    assert MessageToDict(route.redirect) == expected  # MOVED_PERMANENTLY (301) is the enum's zero value


def test_redirect_code_envoy_cannot_send_drops_the_route() -> None:
    assert build_redirect(HTTPRedirect(uri="/x", redirect_code=305), 80) is None
    assert build_redirect(HTTPRedirect(uri="/x"), 80) == RedirectAction(path_redirect="/x")
    routes = reviews_routes(HTTPRoute(redirect=HTTPRedirect(uri="/x", redirect_code=305)))
    assert [r.name for r in routes] == ["default"]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (HTTPDirectResponse(status=503, body="unavailable"), {"status": 503, "body": {"inlineString": "unavailable"}}),
        (HTTPDirectResponse(status=204), {"status": 204}),
    ],
    ids=["with-body", "no-body"],
)
def test_direct_response(response: HTTPDirectResponse, expected: dict[str, Any]) -> None:
    [route] = reviews_routes(HTTPRoute(direct_response=response))
    assert route.WhichOneof("action") == "direct_response"
    assert MessageToDict(route.direct_response) == expected
    assert route.decorator.operation == "reviews:9080/*"


# -- mirrors ---------------------------------------------------------------------------------------------------


def test_mirrors() -> None:
    [route] = reviews_routes(
        HTTPRoute(
            route=(to("reviews", "v1"),),
            mirrors=(
                Mirror(destination=Destination(host="reviews", subset="v2")),
                Mirror(destination=Destination(host="ratings"), percentage=12.5),
                Mirror(destination=Destination(host="details"), percentage=0),
            ),
        )
    )
    assert [MessageToDict(m) for m in route.route.request_mirror_policies] == [
        {
            "cluster": f"outbound|9080|v2|{REVIEWS}",
            "runtimeFraction": {"defaultValue": {"numerator": 100}},  # HUNDRED is the zero value
            "traceSampled": False,
        },
        {
            "cluster": f"outbound|8080||{RATINGS}",
            "runtimeFraction": {"defaultValue": {"numerator": 125000, "denominator": "MILLION"}},
            "traceSampled": False,
        },
    ]  # an explicit 0% does not mirror


# -- header operations -----------------------------------------------------------------------------------------


def ops(
    set_: dict[str, str] | None = None, add: dict[str, str] | None = None, remove: tuple[str, ...] = ()
) -> HeaderOperations:
    return HeaderOperations(set=MappingProxyType(set_ or {}), add=MappingProxyType(add or {}), remove=remove)


def header_list(options: Any) -> list[tuple[str, str, str]]:
    return [(o.header.key, o.header.value, HeaderValueOption.HeaderAppendAction.Name(o.append_action)) for o in options]


OVERWRITE, APPEND = "OVERWRITE_IF_EXISTS_OR_ADD", "APPEND_IF_EXISTS_OR_ADD"


def test_route_level_header_operations() -> None:
    headers = Headers(
        request=ops({"x-b": "2", "x-a": "1", "host": "dropped"}, {"x-trace": "t"}, ("x-secret", ":path")),
        response=ops({"cache-control": "no-cache"}, {"x-served-by": "mesh"}, ("server",)),
    )
    [route] = reviews_routes(HTTPRoute(route=(to("reviews"),), headers=headers))
    assert header_list(route.request_headers_to_add) == [
        ("x-a", "1", OVERWRITE),
        ("x-b", "2", OVERWRITE),
        ("x-trace", "t", APPEND),
    ]
    assert list(route.request_headers_to_remove) == ["x-secret"]
    assert header_list(route.response_headers_to_add) == [
        ("cache-control", "no-cache", OVERWRITE),
        ("x-served-by", "mesh", APPEND),
    ]
    assert list(route.response_headers_to_remove) == ["server"]
    assert route.route.host_rewrite_literal == "dropped"  # `host` set is an authority rewrite, as in Istio


def test_single_destination_headers_follow_route_headers() -> None:
    [route] = reviews_routes(
        HTTPRoute(
            route=(
                HTTPRouteDestination(
                    destination=Destination(host="reviews"),
                    headers=Headers(request=ops({"x-dest": "d"}), response=ops(remove=("x-r",))),
                ),
            ),
            headers=Headers(request=ops({"x-route": "r"})),
        )
    )
    assert header_list(route.request_headers_to_add) == [("x-route", "r", OVERWRITE), ("x-dest", "d", OVERWRITE)]
    assert list(route.response_headers_to_remove) == ["x-r"]


def test_weighted_cluster_headers() -> None:
    [route] = reviews_routes(
        HTTPRoute(
            route=(
                HTTPRouteDestination(
                    destination=Destination(host="reviews", subset="v1"),
                    weight=90,
                    headers=Headers(
                        request=ops(add={"x-version": "v1"}, remove=("x-old",)), response=ops({"x-v": "1"})
                    ),
                ),
                HTTPRouteDestination(
                    destination=Destination(host="reviews", subset="v2"),
                    weight=10,
                    headers=authority_headers("v2.reviews"),
                ),
            ),
            headers=Headers(request=ops({"x-route": "r"})),
        )
    )
    v1, v2 = route.route.weighted_clusters.clusters
    assert header_list(v1.request_headers_to_add) == [("x-version", "v1", APPEND)]
    assert list(v1.request_headers_to_remove) == ["x-old"]
    assert header_list(v1.response_headers_to_add) == [("x-v", "1", OVERWRITE)]
    assert not v1.host_rewrite_literal
    assert v2.host_rewrite_literal == "v2.reviews"
    assert header_list(route.request_headers_to_add) == [("x-route", "r", OVERWRITE)]  # route level stays on the route


# ------------------------------------------------------------------------------------------------ nothing dropped


@pytest.mark.parametrize("code", [*range(300, 310), 200, 404], ids=str)
def test_every_redirect_code_validation_accepts_is_translated(istio: IstioDocs, code: int) -> None:
    """``redirect_code_unsupported`` cannot happen: validation accepts exactly the codes Envoy can send."""
    parsed = istio.parse("VirtualService", f"hosts: [a]\nhttp:\n- redirect: {{uri: /x, redirectCode: {code}}}\n")
    translated = build_redirect(HTTPRedirect(uri="/x", redirect_code=code), 80) is not None
    assert bool(parsed.resources) is translated


def test_every_grpc_status_validation_accepts_is_translated() -> None:
    """``fault_abort_unsupported`` cannot happen: every grpcStatus name validation accepts has a code."""
    assert set(GRPC_STATUS_NAMES) <= set(GRPC_STATUS_CODES)
