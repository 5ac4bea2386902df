"""RDS entry points: the namespace's outbound tables, one per port (virtual hosts, domains, which VirtualService
routes a host, default routes), and the inbound tables."""

from __future__ import annotations

from collections import Counter

import pytest
import structlog
from google.protobuf.json_format import MessageToDict

from meshplane import names
from pilot.config.types import HTTPMatchRequest, HTTPRoute, Protocol
from pilot.generate import port_routes, routes
from pilot.generate.registry import GENERATORS, ROUTE_TYPE
from pilot.generate.route_action import default_retry_policy
from pilot.model import build_snapshot, parse_node_id, resolve_proxy
from pilot.model.types import Proxy, ProxyNode
from tests.route_builders import (
    NS,
    REVIEWS,
    exact,
    port,
    prefix,
    reviews_routes,
    route_table,
    route_tables,
    service_entry,
    snapshot,
    to,
    vhost,
    virtual_service,
    workload,
)

PRODUCTPAGE = "productpage.default.svc.cluster.local"
CATCH_ALL = port_routes.ALLOW_ANY_VIRTUAL_HOST  # every port's table has Istio's catch-all


def node(namespace: str = NS) -> ProxyNode:
    return parse_node_id(f"sidecar~127.0.0.9~sleep.{namespace}~{namespace}.svc.cluster.local")


def test_route_scopes_are_per_namespace() -> None:
    assert GENERATORS[ROUTE_TYPE].scopes(Proxy(node=node("shop"), workload=None)) == [("outbound_http", "shop")]


@pytest.mark.parametrize(
    "scope",
    [("outbound",), ("outbound_http", ""), ("outbound_http", "a", "b"), ("x", "default")],
    ids=["other-kind", "no-namespace", "labels-not-pairs", "unknown-kind"],
)
def test_bad_scope_is_rejected(scope: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="unknown route scope"):
        GENERATORS[ROUTE_TYPE].build_scope(scope, snapshot())


def test_table_shape() -> None:
    tables = route_tables(snapshot(service_entry("reviews", REVIEWS, (port(9080), port(9090)))))
    assert sorted(tables) == ["9080", "9090"]  # Istio's RDS names: one table per port
    table = tables["9080"]
    assert table.HasField("validate_clusters") and table.validate_clusters.value is False
    assert table.max_direct_response_body_size_bytes.value == 1024 * 1024
    assert [vh.name for vh in table.virtual_hosts] == [CATCH_ALL, f"{REVIEWS}:9080"]
    assert table.virtual_hosts[1].include_request_attempt_count


# -- virtual hosts and domains ---------------------------------------------------------------------------------

DOMAIN_CASES: list[tuple[str, str, int, str, list[str]]] = [
    (
        "same-namespace",
        REVIEWS,
        9080,
        "default",
        [REVIEWS, "reviews", "reviews.default", "reviews.default.svc"],
    ),
    ("other-namespace-no-short-name", REVIEWS, 9080, "shop", [REVIEWS, "reviews.default", "reviews.default.svc"]),
    (
        "port-80",
        PRODUCTPAGE,
        80,
        "default",
        [PRODUCTPAGE, "productpage", "productpage.default", "productpage.default.svc"],
    ),
    ("external-host-only-its-name", "api.example.com", 443, "default", ["api.example.com"]),
]


@pytest.mark.parametrize(
    ("host", "port_number", "namespace", "names_"), [c[1:] for c in DOMAIN_CASES], ids=[c[0] for c in DOMAIN_CASES]
)
def test_virtual_host_domains(host: str, port_number: int, namespace: str, names_: list[str]) -> None:
    """Istio's sidecar domains: each name of the host, then its VIP, without the port, in a table that ignores the
    Host header's port (Istio's ``SidecarIgnorePort``)."""
    snap = snapshot(service_entry("svc", host, (port(port_number),)))
    [vip] = snap.vips[host]
    table = route_table(snap, namespace, port_number)
    assert list(vhost(table, f"{host}:{port_number}").domains) == [*names_, vip]
    assert table.ignore_port_in_host_matching


def test_one_virtual_host_per_http_port_sorted() -> None:
    snap = snapshot(
        service_entry("reviews", REVIEWS, (port(9080), port(9090, Protocol.GRPC), port(9091, Protocol.HTTP2))),
        service_entry("db", "db.default.svc.cluster.local", (port(5432, Protocol.TCP), port(8080))),
        service_entry("amqp", "amqp.default.svc.cluster.local", (port(5672, Protocol.TCP),)),
    )
    assert {name: [vh.name for vh in table.virtual_hosts] for name, table in route_tables(snap).items()} == {
        "8080": [CATCH_ALL, "db.default.svc.cluster.local:8080"],
        "9080": [CATCH_ALL, f"{REVIEWS}:9080"],
        "9090": [CATCH_ALL, f"{REVIEWS}:9090"],
        "9091": [CATCH_ALL, f"{REVIEWS}:9091"],
    }  # TCP ports get TCP listeners, no table


def test_no_duplicate_domains_a_hosts_own_name_wins() -> None:
    # "reviews.default" is both a ServiceEntry host and an alias of reviews.default.svc.cluster.local.
    snap = snapshot(service_entry("reviews", REVIEWS), service_entry("odd", "reviews.default"))
    with structlog.testing.capture_logs() as logs:
        table = route_table(snap)
    [odd_vip], [reviews_vip] = snap.vips["reviews.default"], snap.vips[REVIEWS]
    assert list(vhost(table, "reviews.default:9080").domains) == ["reviews.default", odd_vip]
    assert list(vhost(table, f"{REVIEWS}:9080").domains) == [REVIEWS, "reviews", "reviews.default.svc", reviews_vip]
    every_domain = [d for vh in table.virtual_hosts for d in vh.domains]
    assert [d for d, n in Counter(every_domain).items() if n > 1] == []
    conflicts = [e["domain"] for e in logs if e["event"] == "domain_conflict"]
    assert conflicts == ["reviews.default"]


def test_not_exported_service_has_no_virtual_host_elsewhere() -> None:
    snap = snapshot(
        service_entry("reviews", REVIEWS, export_to=(".",)),
        service_entry("ratings", "ratings.default.svc.cluster.local", export_to=("shop",)),
    )
    assert [vh.name for vh in route_table(snap, "default").virtual_hosts] == [CATCH_ALL, f"{REVIEWS}:9080"]
    assert [vh.name for vh in route_table(snap, "shop").virtual_hosts] == [
        CATCH_ALL,
        "ratings.default.svc.cluster.local:9080",
    ]
    assert route_tables(snap, "other") == {}  # no visible HTTP port: no table


# -- which routes a virtual host gets --------------------------------------------------------------------------


def test_default_route_without_virtual_service() -> None:
    [route] = vhost(route_table(snapshot(service_entry("reviews", REVIEWS))), f"{REVIEWS}:9080").routes
    assert route.name == "default"
    assert MessageToDict(route.match) == {"prefix": "/"}
    assert route.route.cluster == f"outbound|9080||{REVIEWS}"
    assert MessageToDict(route.route)["timeout"] == "0s"
    assert route.route.retry_policy == default_retry_policy()
    assert route.decorator.operation == f"{REVIEWS}:9080/*"
    assert not route.HasField("metadata")


def test_virtual_service_routes_in_order_with_names_and_metadata() -> None:
    first, second, third = reviews_routes(
        HTTPRoute(
            name="canary",
            match=(
                HTTPMatchRequest(name="jason", headers={"end-user": exact("jason")}),
                HTTPMatchRequest(uri=prefix("/beta")),
            ),
            route=(to("reviews", "v2"),),
        ),
        HTTPRoute(route=(to("reviews", "v1"),)),
    )
    assert [r.name for r in (first, second, third)] == ["canary.jason", "canary", ""]
    assert first.route == second.route  # several matches: the same action on each
    assert first.route.cluster == f"outbound|9080|v2|{REVIEWS}"
    assert third.route.cluster == f"outbound|9080|v1|{REVIEWS}"
    for route in (first, second, third):
        config = route.metadata.filter_metadata["istio"]["config"]
        assert config == "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"


def test_routes_after_a_catch_all_are_dropped() -> None:
    built = reviews_routes(
        HTTPRoute(
            match=(HTTPMatchRequest(uri=prefix("/a")), HTTPMatchRequest(uri=prefix("/"))), route=(to("reviews"),)
        ),
        HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/never")),), route=(to("reviews", "v3"),)),
    )
    assert [r.match.prefix for r in built] == ["/a", "/"]


def test_match_port_selects_the_virtual_host() -> None:
    http = (
        HTTPRoute(name="on-9090", match=(HTTPMatchRequest(port=9090, uri=prefix("/x")),), route=(to("reviews", "v2"),)),
        HTTPRoute(
            name="any", match=(HTTPMatchRequest(uri=prefix("/y")), HTTPMatchRequest(port=9080)), route=(to("reviews"),)
        ),
    )
    on_9080 = reviews_routes(*http, vhost_port=9080)
    on_9090 = reviews_routes(*http, vhost_port=9090)
    assert [(r.name, r.match.prefix) for r in on_9080] == [("any", "/y"), ("any", "/")]
    assert [(r.name, r.match.prefix) for r in on_9090] == [("on-9090", "/x"), ("any", "/y")]
    assert on_9090[0].route.cluster == f"outbound|9090|v2|{REVIEWS}"  # the destination port follows the vhost


def test_virtual_service_for_another_port_only_falls_back_to_default() -> None:
    built = reviews_routes(
        HTTPRoute(match=(HTTPMatchRequest(port=9090),), route=(to("reviews", "v2"),)), vhost_port=9080
    )
    assert [r.name for r in built] == ["default"]
    assert built[0].route.cluster == f"outbound|9080||{REVIEWS}"


def test_virtual_services_for_one_host_are_merged_in_order() -> None:
    """Istio merges only on gateways; meshplane's sidecars take the routes of every VirtualService for the host, in
    namespace/name order, each route keeping its own istio.config metadata."""
    snap = snapshot(
        service_entry("reviews", REVIEWS),
        virtual_service(
            "a-reviews",
            ("reviews",),
            HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/a")),), route=(to("reviews", "a"),)),
        ),
        virtual_service("b-reviews", (REVIEWS,), HTTPRoute(route=(to("reviews", "b"),))),
    )
    first, second = vhost(route_table(snap), f"{REVIEWS}:9080").routes
    assert (first.match.prefix, first.route.cluster) == ("/a", f"outbound|9080|a|{REVIEWS}")
    assert (second.match.prefix, second.route.cluster) == ("/", f"outbound|9080|b|{REVIEWS}")
    assert first.metadata.filter_metadata["istio"]["config"].endswith("/virtual-service/a-reviews")
    assert second.metadata.filter_metadata["istio"]["config"].endswith("/virtual-service/b-reviews")


@pytest.mark.parametrize(
    ("gateways", "applies"),
    [((), True), (("mesh",), True), (("istio-system/ingress",), False), (("istio-system/ingress", "mesh"), True)],
    ids=["no-gateways", "mesh", "gateway-only", "gateway-and-mesh"],
)
def test_virtual_service_gateways(gateways: tuple[str, ...], applies: bool) -> None:
    snap = snapshot(
        service_entry("reviews", REVIEWS),
        virtual_service("reviews", ("reviews",), HTTPRoute(route=(to("reviews", "v2"),)), gateways=gateways),
    )
    [route] = vhost(route_table(snap), f"{REVIEWS}:9080").routes
    assert route.route.cluster == (f"outbound|9080|v2|{REVIEWS}" if applies else f"outbound|9080||{REVIEWS}")


def test_virtual_service_from_another_namespace_and_export_to() -> None:
    snap = snapshot(
        service_entry("reviews", REVIEWS),
        # In namespace "shop", the short name "reviews" would mean reviews.shop: the VS names the FQDN.
        virtual_service(
            "reviews", (REVIEWS,), HTTPRoute(route=(to("reviews.default.svc.cluster.local", "v3"),)), namespace="shop"
        ),
        virtual_service(
            "hidden", (REVIEWS,), HTTPRoute(route=(to(REVIEWS, "x"),)), namespace="alpha", export_to=(".",)
        ),
    )
    for namespace in ("default", "shop"):
        [route] = vhost(route_table(snap, namespace), f"{REVIEWS}:9080").routes
        assert route.route.cluster == f"outbound|9080|v3|{REVIEWS}"
    [route] = vhost(route_table(snap, "alpha"), f"{REVIEWS}:9080").routes
    assert route.route.cluster == f"outbound|9080|x|{REVIEWS}"  # visible in alpha only, and first there


def test_wildcard_virtual_service_host() -> None:
    snap = snapshot(
        service_entry("reviews", REVIEWS),
        service_entry("api", "api.example.com", (port(80),)),
        virtual_service("ext", ("*.example.com",), HTTPRoute(route=(to("api.example.com", "v1"),))),
    )
    [api] = vhost(route_table(snap, port=80), "api.example.com:80").routes
    assert api.route.cluster == "outbound|80|v1|api.example.com"
    [reviews] = vhost(route_table(snap), f"{REVIEWS}:9080").routes
    assert reviews.name == "default"


def test_same_snapshot_same_bytes() -> None:
    def build() -> bytes:
        snap = snapshot(
            service_entry("reviews", REVIEWS, (port(9080), port(9090))),
            service_entry("ratings", "ratings.default.svc.cluster.local"),
            virtual_service(
                "reviews",
                ("reviews",),
                HTTPRoute(route=(to("reviews", "v1", weight=50), to("reviews", "v2", weight=50))),
            ),
        )
        return bytes(route_table(snap).SerializeToString(deterministic=True))

    assert build() == build()


# -- inbound ---------------------------------------------------------------------------------------------------


def test_inbound_routes_one_per_http_port() -> None:
    snap = build_snapshot(
        {
            c.meta.key: c
            for c in (
                service_entry(
                    "reviews",
                    REVIEWS,
                    (port(9080), port(9090, Protocol.GRPC), port(3306, Protocol.TCP)),
                    selector={"app": "reviews"},
                ),
                service_entry("reviews-alias", "reviews-alias.default.svc.cluster.local", selector={"app": "reviews"}),
                workload("reviews-v1", "127.0.0.21", {"app": "reviews"}),
            )
        },
        version=1,
    )
    proxy = resolve_proxy(parse_node_id("sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local"), snap)
    tables = routes.build_inbound_routes(proxy, snap)
    assert [t.name for t in tables] == ["inbound|9080||", "inbound|9090||"]  # 9080 served twice: one table
    table = tables[0]
    assert table.validate_clusters.value is False and table.HasField("validate_clusters")
    [vh] = table.virtual_hosts
    assert vh.name == "inbound|http|9080"
    assert list(vh.domains) == ["*"]
    [route] = vh.routes
    assert route.name == "default"
    assert MessageToDict(route.match) == {"prefix": "/"}
    assert MessageToDict(route.route) == {
        "cluster": names.inbound_cluster_name(9080),
        "timeout": "0s",
        "maxStreamDuration": {"maxStreamDuration": "0s", "grpcTimeoutHeaderMax": "0s"},
        "retryPolicy": {"retryOn": "reset-before-request", "numRetries": 2},
    }
    assert route.decorator.operation == f"{REVIEWS}:9080/*"  # the first service serving the port


def test_no_inbound_routes_without_workload() -> None:
    assert routes.build_inbound_routes(Proxy(node=node(), workload=None), snapshot()) == []
