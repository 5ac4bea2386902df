"""Route tables reuse the virtual hosts of their previous build, and never a stale one."""

from __future__ import annotations

from envoy.config.route.v3.route_pb2 import RouteConfiguration

from pilot.config.types import HTTPRoute
from pilot.generate import routes
from tests.route_builders import port, route_table, service_entry, snapshot, to, vhost, virtual_service

RATINGS = "ratings.default.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"


def fresh_table(*configs: object) -> RouteConfiguration:
    """The same table built with nothing remembered."""
    routes._VIRTUAL_HOSTS.clear()
    return route_table(snapshot(*configs))  # type: ignore[arg-type]


def test_an_edited_virtual_service_rebuilds_its_host_and_reuses_the_others() -> None:
    reviews, ratings = service_entry("reviews", REVIEWS), service_entry("ratings", RATINGS)
    to_v1 = virtual_service("reviews", ("reviews",), HTTPRoute(route=(to("reviews", "v1"),)))
    to_v2 = virtual_service("reviews", ("reviews",), HTTPRoute(route=(to("reviews", "v2"),)))
    routes._VIRTUAL_HOSTS.clear()

    route_table(snapshot(reviews, ratings, to_v1))
    remembered = dict(routes._VIRTUAL_HOSTS["15001.default"])
    edited = route_table(snapshot(reviews, ratings, to_v2))

    reused = [key for key, entry in routes._VIRTUAL_HOSTS["15001.default"].items() if remembered.get(key) is entry]
    assert [key[1] for key in reused] == [RATINGS], "only the host whose rule changed is rebuilt"
    assert vhost(edited, f"{REVIEWS}:9080").routes[0].route.cluster == f"outbound|9080|v2|{REVIEWS}"
    assert edited == fresh_table(reviews, ratings, to_v2)


def test_a_destination_port_change_rebuilds_hosts_routing_there() -> None:
    """A destination without a port resolves to its service's only port: a new port list must be seen."""
    rule = virtual_service("reviews", ("reviews",), HTTPRoute(route=(to("ratings"),)))
    reviews = service_entry("reviews", REVIEWS)
    one_port = service_entry("ratings", RATINGS, (port(8080),))
    moved = service_entry("ratings", RATINGS, (port(8081),))
    routes._VIRTUAL_HOSTS.clear()

    route_table(snapshot(reviews, one_port, rule))
    after = route_table(snapshot(reviews, moved, rule))

    assert vhost(after, f"{REVIEWS}:9080").routes[0].route.cluster == f"outbound|8081||{RATINGS}"
    assert after == fresh_table(reviews, moved, rule)
