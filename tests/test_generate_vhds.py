"""A route table in VHDS form (``pilot.generate.vhds``), field by field."""

from __future__ import annotations

from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.route.v3.route_components_pb2 import Route, RouteAction, RouteMatch, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.wrappers_pb2 import BoolValue

from pilot.generate.vhds import vhds_name, vhds_route_table


def _table() -> RouteConfiguration:
    route = Route(match=RouteMatch(prefix="/"), route=RouteAction(cluster="outbound|9080||reviews"))
    return RouteConfiguration(
        name="9080",
        validate_clusters=BoolValue(value=False),
        virtual_hosts=[
            VirtualHost(
                name="reviews.default.svc.cluster.local:9080", domains=["reviews", "reviews:9080"], routes=[route]
            ),
            VirtualHost(name="allow_any", domains=["*"]),
        ],
    )


def test_the_table_keeps_everything_but_its_virtual_hosts_and_points_at_vhds_over_ads() -> None:
    table = _table()
    stripped, _ = vhds_route_table(table)

    assert stripped.name == "9080"
    assert stripped.validate_clusters.value is False and stripped.HasField("validate_clusters")
    assert list(stripped.virtual_hosts) == []
    source = stripped.vhds.config_source
    assert source.HasField("ads")
    assert source.resource_api_version == ApiVersion.V3
    assert source.initial_fetch_timeout.ToMilliseconds() == 0
    assert len(table.virtual_hosts) == 2, "the input is not changed"


def test_each_virtual_host_is_named_table_slash_name_and_otherwise_unchanged() -> None:
    table = _table()
    _, hosts = vhds_route_table(table)

    assert [h.name for h in hosts] == ["9080/reviews.default.svc.cluster.local:9080", "9080/allow_any"]
    assert vhds_name("9080", "allow_any") == "9080/allow_any"
    for original, host in zip(table.virtual_hosts, hosts, strict=True):
        host.name = original.name
        assert host == original


def test_a_table_without_virtual_hosts_or_with_a_slash_in_a_name_stays_whole() -> None:
    empty = RouteConfiguration(name="8080")
    assert vhds_route_table(empty) == (empty, [])
    slashed = RouteConfiguration(name="9080", virtual_hosts=[VirtualHost(name="a/b", domains=["a"])])
    assert vhds_route_table(slashed) == (slashed, [])
