"""Delegation (Istio 1.6+ ``mergeVirtualServicesIfNeeded``): match subsets, inherited route fields, missing or
hidden delegates, and the routes a sidecar gets for a root (``pilot.model.virtual_service_merge``)."""

from __future__ import annotations

import dataclasses

import pytest

from pilot.config.types import Abort, Delegate, Fault, HTTPMatchRequest, HTTPRoute, StringMatch
from pilot.model import build_snapshot
from pilot.model.virtual_service_merge import match_conflicts, merge_delegate_route, resolve_delegates
from tests.route_builders import (
    REVIEWS,
    exact,
    headers_map,
    prefix,
    regex,
    route_table,
    service_entry,
    to,
    vhost,
    virtual_service,
)

CONFLICT_CASES = [
    # (id, root match, delegate match, conflicts)
    ("prefix-within-prefix", HTTPMatchRequest(uri=prefix("/a")), HTTPMatchRequest(uri=prefix("/a/b")), False),
    ("exact-within-prefix", HTTPMatchRequest(uri=prefix("/a")), HTTPMatchRequest(uri=exact("/a/x")), False),
    ("prefix-outside-prefix", HTTPMatchRequest(uri=prefix("/a/b")), HTTPMatchRequest(uri=prefix("/a")), True),
    ("prefix-under-exact", HTTPMatchRequest(uri=exact("/a")), HTTPMatchRequest(uri=prefix("/a")), True),
    ("same-exact", HTTPMatchRequest(uri=exact("/a")), HTTPMatchRequest(uri=exact("/a")), False),
    ("regex-root", HTTPMatchRequest(uri=regex("/a.*")), HTTPMatchRequest(uri=prefix("/a")), True),
    ("root-has-no-uri", HTTPMatchRequest(), HTTPMatchRequest(uri=regex("/a.*")), False),
    (
        "header-other-value",
        HTTPMatchRequest(headers=headers_map(end_user=exact("jason"))),
        HTTPMatchRequest(headers=headers_map(end_user=exact("bob"))),
        True,
    ),
    ("ignore-case-differs", HTTPMatchRequest(), HTTPMatchRequest(ignore_uri_case=True), True),
    ("other-port", HTTPMatchRequest(port=80), HTTPMatchRequest(port=81), True),
]


@pytest.mark.parametrize(
    ("root", "leaf", "conflicts"), [c[1:] for c in CONFLICT_CASES], ids=[c[0] for c in CONFLICT_CASES]
)
def test_match_conflicts(root: HTTPMatchRequest, leaf: HTTPMatchRequest, conflicts: bool) -> None:
    assert match_conflicts(root, leaf) is conflicts


def test_merged_route_joins_matches_and_inherits_the_roots_fields() -> None:
    root = HTTPRoute(
        name="root",
        match=(
            HTTPMatchRequest(name="r", uri=prefix("/productpage"), source_labels={"app": "web"}),
            HTTPMatchRequest(uri=prefix("/other")),
        ),
        timeout=3.0,
        fault=Fault(abort=Abort(http_status=503)),
        delegate=Delegate(name="productpage", namespace="default"),
    )
    leaf = HTTPRoute(
        name="leaf",
        match=(HTTPMatchRequest(name="v1", uri=prefix("/productpage/v1"), headers=headers_map(x_a=exact("1"))),),
        route=(to("productpage", "v1"),),
        timeout=1.0,
    )
    merged = merge_delegate_route(root, leaf)
    assert merged is not None
    assert merged.name == "root-leaf" and merged.delegate is None
    (match,) = merged.match  # only the first root match takes /productpage/v1
    assert match.name == "r-v1" and match.uri == StringMatch(prefix="/productpage/v1")
    assert dict(match.headers) == {"x-a": exact("1")} and dict(match.source_labels) == {"app": "web"}
    assert merged.timeout == 1.0  # the delegate's own
    assert merged.fault == root.fault  # the root's, which the delegate does not set
    assert merged.route == leaf.route


def test_delegate_route_outside_the_roots_match_is_dropped() -> None:
    root = HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/a")),), delegate=Delegate(name="d", namespace="default"))
    assert merge_delegate_route(root, HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/b")),))) is None


ROOT = virtual_service(
    "root",
    ("reviews",),
    HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/api")),), delegate=Delegate(name="leaf", namespace="team")),
    HTTPRoute(route=(to("reviews", "v1"),)),
)
LEAF = virtual_service(
    "leaf",
    (),
    HTTPRoute(match=(HTTPMatchRequest(uri=prefix("/api/v2")),), route=(to("reviews", "v2"),)),
    HTTPRoute(route=(to("reviews", "v3"),)),
    namespace="team",
)


def test_sidecar_routes_of_a_root_with_its_delegate() -> None:
    snap = build_snapshot({c.meta.key: c for c in (service_entry("reviews", REVIEWS), ROOT, LEAF)}, version=1)
    routes = vhost(route_table(snap), f"{REVIEWS}:9080").routes
    assert [(r.match.prefix, r.route.cluster) for r in routes] == [
        ("/api/v2", f"outbound|9080|v2|{REVIEWS}"),
        ("/api", f"outbound|9080|v3|{REVIEWS}"),  # the delegate's catch-all under the root's match
        ("/", f"outbound|9080|v1|{REVIEWS}"),
    ]
    assert all(r.metadata.filter_metadata["istio"]["config"].endswith("/virtual-service/root") for r in routes)


@pytest.mark.parametrize(
    "leaf",
    [None, dataclasses.replace(LEAF, export_to=(".",)), dataclasses.replace(LEAF, hosts=("other",))],
    ids=["missing", "not-exported-to-the-root", "has-hosts"],
)
def test_unusable_delegate_drops_the_roots_route(leaf: object) -> None:
    configs = [ROOT] + ([leaf] if leaf is not None else [])
    resolved = resolve_delegates(configs)  # type: ignore[arg-type]
    assert [r.route[0].destination.subset for r in resolved[ROOT.meta.key].http] == ["v1"]


def test_merged_root_is_reused_until_the_delegate_changes() -> None:
    """Route caches compare rules by identity: the same inputs give the same merged object."""
    first = resolve_delegates([ROOT, LEAF])
    again = resolve_delegates([ROOT, LEAF], first)
    assert again[ROOT.meta.key] is first[ROOT.meta.key]
    changed_leaf = dataclasses.replace(LEAF, meta=dataclasses.replace(LEAF.meta, content_hash="changed"))
    changed = resolve_delegates([ROOT, changed_leaf], first)
    assert changed[ROOT.meta.key] is not first[ROOT.meta.key]
    assert LEAF.meta.key not in first  # delegates are not rules of their own
