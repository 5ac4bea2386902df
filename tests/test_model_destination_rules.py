"""DestinationRule ``exportTo``: which rule a proxy of each namespace applies (Istio's ``PushContext.destinationRule``),
and the outbound clusters that follow from it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pilot.config import Origin
from pilot.config.types import (
    ConfigKey,
    ConfigMeta,
    DestinationRule,
    Protocol,
    Resolution,
    ServiceEntry,
    ServicePort,
    Subset,
)
from pilot.generate import clusters
from pilot.model import build_snapshot, destination_rule_for

PASSTHROUGH = ["BlackHoleCluster", "InboundPassthroughCluster", "PassthroughCluster"]  # every sidecar's

HOST = "reviews.apps.svc.cluster.local"
MakeMeta = Callable[..., ConfigMeta]


def rule(name: str, namespace: str, *export_to: str, host: str = HOST) -> DestinationRule:
    key = ConfigKey(kind="DestinationRule", namespace=namespace, name=name)
    meta = ConfigMeta(key=key, origin=Origin(file=f"{name}.yaml", line=1), content_hash=str(key))
    return DestinationRule(meta=meta, host=host, export_to=export_to, subsets=(Subset(name=name),))


def service(namespace: str = "apps") -> ServiceEntry:
    key = ConfigKey(kind="ServiceEntry", namespace=namespace, name="reviews")
    return ServiceEntry(
        meta=ConfigMeta(key=key, origin=Origin(file="se.yaml", line=1), content_hash=str(key)),
        hosts=(HOST,),
        ports=(ServicePort(number=9080, name="http", protocol=Protocol.HTTP),),
        location="MESH_INTERNAL",
        resolution=Resolution.STATIC,
    )


CASES = [
    # (id, rules, {proxy namespace: the rule it applies, or None})
    ("no-export-to-is-everyone", [rule("r", "apps")], {"apps": "r", "web": "r", "istio-system": "r"}),
    ("star", [rule("r", "apps", "*")], {"apps": "r", "web": "r"}),
    ("dot-is-own-namespace-only", [rule("r", "apps", ".")], {"apps": "r", "web": None}),
    ("own-namespace-by-name", [rule("r", "apps", "apps")], {"apps": "r", "web": None}),
    ("named-namespace-only", [rule("r", "apps", "web")], {"apps": None, "web": "r", "other": None}),
    ("dot-and-named", [rule("r", "apps", ".", "web")], {"apps": "r", "web": "r", "other": None}),
    (
        "a-client-namespace-rule-wins-there",
        [rule("server", "apps"), rule("client", "web", ".")],
        {"apps": "server", "web": "client", "other": "server"},
    ),
    (
        "service-namespace-before-root",
        [rule("root", "istio-system"), rule("server", "apps")],
        {"web": "server", "istio-system": "server"},  # a root proxy looks at the root's private rules first
    ),
    ("root-exported-rule-is-the-fallback", [rule("root", "istio-system")], {"apps": "root", "web": "root"}),
    ("root-private-rule-only-in-root", [rule("root", "istio-system", ".")], {"istio-system": "root", "web": None}),
    (
        "most-specific-match-must-be-exported",
        [rule("exact", "apps", "."), rule("wild", "apps", host="*.svc.cluster.local")],
        {"apps": "exact", "web": "wild"},
    ),
]


@pytest.mark.parametrize(("rules", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_rule_each_namespace_sees(rules: list[DestinationRule], expected: dict[str, str | None]) -> None:
    snapshot = build_snapshot({r.meta.key: r for r in (service(), *rules)}, version=1)
    seen = {}
    for namespace in expected:
        found = destination_rule_for(snapshot, HOST, namespace)
        seen[namespace] = found.meta.key.name if found is not None else None
    assert seen == expected


def test_outbound_clusters_of_a_namespace_follow_the_rules_it_sees() -> None:
    snapshot = build_snapshot({r.meta.key: r for r in (service(), rule("v1", "apps", "."))}, version=1)
    names = {
        namespace: sorted(c.name for c in clusters.build_scope_clusters(("outbound", namespace), snapshot))
        for namespace in ("apps", "web")
    }
    assert names == {
        "apps": [*PASSTHROUGH, f"outbound|9080|v1|{HOST}", f"outbound|9080||{HOST}"],
        "web": [*PASSTHROUGH, f"outbound|9080||{HOST}"],
    }
