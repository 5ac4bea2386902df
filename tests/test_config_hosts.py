"""The one host lookup behind the model's rule lookups and the config layer's cross-resource checks."""

from __future__ import annotations

import pytest

from pilot.config.hosts import lookup_host

INDEX = {
    "reviews.default.svc.cluster.local": "exact",
    "*.default.svc.cluster.local": "namespace wildcard",
    "*.svc.cluster.local": "cluster wildcard",
    "*": "everything",
}


@pytest.mark.parametrize(
    ("index", "host", "expected"),
    [
        (INDEX, "reviews.default.svc.cluster.local", "exact"),
        (INDEX, "ratings.default.svc.cluster.local", "namespace wildcard"),
        (INDEX, "ratings.other.svc.cluster.local", "cluster wildcard"),
        (INDEX, "api.example.com", "everything"),
        ({"*.example.com": "wildcard"}, "example.com", None),
        ({"*.example.com": "wildcard"}, "a.b.example.com", "wildcard"),
        ({"a.example.com": "exact"}, "b.example.com", None),
        ({}, "a.example.com", None),
    ],
    ids=["exact", "longest-wildcard", "shorter-wildcard", "star", "suffix-needs-a-label", "deep", "no-match", "empty"],
)
def test_lookup_host_exact_else_most_specific_wildcard(index: dict[str, str], host: str, expected: str | None) -> None:
    assert lookup_host(index, host) == expected


def test_lookup_host_prefers_the_longest_wildcard_whatever_the_order() -> None:
    shuffled = dict(reversed(list(INDEX.items())))
    assert lookup_host(shuffled, "ratings.default.svc.cluster.local") == "namespace wildcard"
