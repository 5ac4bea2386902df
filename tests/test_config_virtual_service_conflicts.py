"""Several VirtualServices for one host: merged on sidecars, unless they conflict; a conflict rejects one of them
with an error naming both (``pilot.config.virtual_service_conflicts``), the other stays in force."""

from __future__ import annotations

import pytest

from pilot.config.store import ConfigStore
from pilot.config.types import ConfigKey
from tests.test_config_store import doc, files, rejected

ROUTE_A = (
    "  hosts: [reviews]\n  http:\n  - match:\n    - uri: {prefix: /a}\n    route:\n    - destination: {host: reviews}\n"
)
ROUTE_B = ROUTE_A.replace("[reviews]", "[reviews.bookinfo.svc.cluster.local]").replace("/a", "/b")
CATCH_ALL = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n"
TCP = "  hosts: [reviews]\n  tcp:\n  - route:\n    - destination: {host: reviews}\n"
SAME_AS_A = (
    "  hosts: [reviews]\n  http:\n  - name: also-a\n    match:\n    - name: m\n      uri: {prefix: /a}\n"
    "    route:\n    - destination: {host: reviews}\n"
)
PRIVATE_CATCH_ALL = CATCH_ALL + "  exportTo: ['.']\n"

CASES = [
    # (id, earlier spec, later spec, namespace of the later, the later's error or "" when both are accepted)
    ("different-matches-merge", ROUTE_A, ROUTE_B, "bookinfo", ""),
    (
        "catch-all-before-routes",
        CATCH_ALL,
        ROUTE_B,
        "bookinfo",
        "a.yaml:19: VirtualService bookinfo/b: spec.http: "
        "conflicts with VirtualService bookinfo/a (a.yaml:1: spec.http[0]) for host "
        "reviews.bookinfo.svc.cluster.local: that route has no match (it takes every request), so these routes "
        "would never be used",
    ),
    (
        "same-match",
        ROUTE_A,
        SAME_AS_A,
        "bookinfo",
        "a.yaml:24: VirtualService bookinfo/b: spec.http[0].match[0]: "
        "conflicts with VirtualService bookinfo/a (a.yaml:1: spec.http[0].match[0]) for host "
        "reviews.bookinfo.svc.cluster.local: both have this match, so this one would never be used",
    ),
    (
        "both-tcp",
        TCP,
        TCP,
        "bookinfo",
        "a.yaml:19: VirtualService bookinfo/b: spec.tcp: conflicts with "
        "VirtualService bookinfo/a (a.yaml:1: spec.tcp) for host reviews.bookinfo.svc.cluster.local: both have tcp "
        "routes: only one VirtualService per host may route tcp",
    ),
    ("tcp-and-http-merge", TCP, ROUTE_B, "bookinfo", ""),
    # a short name in another namespace is another host
    ("other-host", CATCH_ALL, CATCH_ALL, "shop", ""),
]


@pytest.mark.parametrize(("earlier", "later", "namespace", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conflicts(earlier: str, later: str, namespace: str, error: str) -> None:
    store = ConfigStore()
    store.apply(
        files(a_yaml=doc("VirtualService", "a", earlier) + "---\n" + doc("VirtualService", "b", later, namespace))
    )
    later_key = ConfigKey(kind="VirtualService", namespace=namespace, name="b")
    assert ConfigKey(kind="VirtualService", namespace="bookinfo", name="a") in store.accepted
    if not error:
        assert later_key in store.accepted and rejected(store) == []
        return
    assert later_key not in store.accepted
    (entry,) = rejected(store)
    assert entry["errors"] == [error]


def test_private_virtual_services_of_two_namespaces_do_not_conflict() -> None:
    """exportTo '.' in two namespaces: no namespace sees both."""
    store = ConfigStore()
    fqdn = PRIVATE_CATCH_ALL.replace("[reviews]", "[reviews.bookinfo.svc.cluster.local]")
    store.apply(files(a_yaml=doc("VirtualService", "a", fqdn) + "---\n" + doc("VirtualService", "b", fqdn, "shop")))
    assert rejected(store) == [] and len(store.accepted) == 2


def test_the_changed_one_is_rejected_and_the_one_in_force_stays() -> None:
    """b was in force first; a (earlier in name order) changes to a catch-all: a is rejected, its last good version
    stays, and b keeps working."""
    store = ConfigStore()
    store.apply(files(a_yaml=doc("VirtualService", "a", ROUTE_A), b_yaml=doc("VirtualService", "b", ROUTE_B)))
    store.apply(files(a_yaml=doc("VirtualService", "a", CATCH_ALL)))
    (entry,) = rejected(store)
    assert entry["name"] == "a" and entry["in_force"] == "last good version from a.yaml:1"
    assert "conflicts with VirtualService bookinfo/b (b.yaml:1: spec.http)" in entry["errors"][0]
    accepted = store.accepted[ConfigKey(kind="VirtualService", namespace="bookinfo", name="a")]
    assert accepted.http[0].match  # the version with a match
