"""``selected_destination_rules``: the rules with a workloadSelector of the proxy's own namespace (the root
namespace's private ones for a proxy there) that select its labels, in ConfigKey order; never another
namespace's."""

from __future__ import annotations

import pytest

from pilot.config.parse import parse_config_text
from pilot.config.types import ConfigKey, DestinationRule, frozen_labels
from pilot.model.destination_rules import index_destination_rules, selected_destination_rules
from tests.test_config_store import doc


def rule(name: str, namespace: str, host: str, selector: str = "", export: str = "") -> DestinationRule:
    spec = f"  host: {host}\n" + (f"  workloadSelector: {{matchLabels: {selector}}}\n" if selector else "")
    spec += f"  exportTo: [{export}]\n" if export else ""
    (resource,) = parse_config_text(doc("DestinationRule", name, spec, namespace=namespace), "dr.yaml").resources
    assert isinstance(resource, DestinationRule)
    return resource


RULES = (
    rule("a-app", "a", "x", "{app: web}"),
    rule("a-plain", "a", "x"),
    rule("a-tier", "a", "other", "{tier: front}"),
    rule("b-app", "b", "x", "{app: web}"),
    rule("root-app", "istio-system", "z", "{app: web}"),
    rule("root-plain", "istio-system", "z", export="'.'"),
)
INDEX = index_destination_rules(RULES, root_namespace="istio-system", domain_suffix="cluster.local")


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        ("a", {"app": "web", "tier": "front"}, ("istio-system", "a-app", "a-tier")),
        ("a", {"app": "web"}, ("istio-system", "a-app")),
        ("a", {"app": "db"}, ()),
        ("b", {"app": "web", "tier": "front"}, ("istio-system", "b-app")),
        ("c", {"app": "web"}, ()),
        ("istio-system", {"app": "web"}, ("istio-system", "root-app")),
    ],
    ids=["both-of-a", "one-of-a", "none-of-a", "b-only-its-own", "no-rules", "root-private"],
)
def test_selected_rules(namespace: str, labels: dict[str, str], expected: tuple[str, ...]) -> None:
    keys = selected_destination_rules(INDEX, namespace, frozen_labels(labels))
    wanted = tuple(ConfigKey(kind="DestinationRule", namespace=namespace, name=n) for n in expected[1:])
    assert keys == wanted
