"""Which ProxyConfig applies to a proxy: Istio's ``EffectiveProxyConfig`` precedence (workload ProxyConfig > the pod's
``proxy.istio.io/config`` > namespace ProxyConfig > root-namespace ProxyConfig > MeshConfig defaultConfig), merged
field by field; and the message Pilot serves the proxy's launcher."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from meshplane.proxy_environment import PROXY_CONFIG_ANNOTATION_METADATA
from pilot.analyze import analyze_snapshot
from pilot.config.parse import parse_config_text
from pilot.config.types import ProxyConfig
from pilot.generate.proxy_config import build_proxy_config, proxy_config_message
from pilot.generate.registry import GENERATORS
from pilot.model import build_snapshot, parse_node_id, resolve_proxy
from pilot.model.proxy_config import ProxyConfigIndex, ProxyDefaults, effective_proxy_config, index_proxy_configs
from xdscore.types import PROXY_CONFIG_TYPE

ROOT = "istio-system"


def _configs(*documents: tuple[str, str, Mapping[str, object]]) -> list[ProxyConfig]:
    text = "\n---\n".join(
        "apiVersion: networking.istio.io/v1beta1\nkind: ProxyConfig\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {dict(spec)!r}\n"
        for namespace, name, spec in documents
    )
    parsed = parse_config_text(text, "pc.yaml")
    assert not parsed.rejected, parsed.rejected
    resources = [r for r in parsed.resources if isinstance(r, ProxyConfig)]
    return sorted(resources, key=lambda r: r.meta.key)


def _index(*documents: tuple[str, str, Mapping[str, object]]) -> ProxyConfigIndex:
    return index_proxy_configs(_configs(*documents))


def _effective(
    index: ProxyConfigIndex,
    namespace: str = "ns",
    labels: Mapping[str, str] | None = None,
    **layers: ProxyDefaults,
) -> ProxyDefaults:
    return effective_proxy_config(
        index, root_namespace=ROOT, namespace=namespace, labels=labels or {"app": "ratings"}, **layers
    )


def _defaults(concurrency: int | None = None, **variables: str) -> ProxyDefaults:
    return ProxyDefaults(concurrency=concurrency, environment_variables=variables)


MESH = (ROOT, "mesh", {"concurrency": 1, "environmentVariables": {"LEVEL": "mesh", "MESH": "m"}})
NAMESPACE = ("ns", "ns", {"concurrency": 2, "environmentVariables": {"LEVEL": "namespace", "NS": "n"}})
WORKLOAD = ("ns", "ratings", {"selector": {"matchLabels": {"app": "ratings"}}, "concurrency": 3})
DEFAULT_CONFIG = _defaults(7, LEVEL="defaultConfig", DEFAULT="d")
ANNOTATION = _defaults(5, LEVEL="annotation", ANNOTATION="a")
ANNOTATED = {"LEVEL": "annotation", "MESH": "m", "NS": "n", "ANNOTATION": "a"}


@pytest.mark.parametrize(
    ("documents", "layers", "expected"),
    [
        ((), {}, _defaults()),
        ((), {"mesh_default": DEFAULT_CONFIG}, DEFAULT_CONFIG),
        ((MESH,), {"mesh_default": DEFAULT_CONFIG}, _defaults(1, LEVEL="mesh", MESH="m", DEFAULT="d")),
        ((MESH, NAMESPACE), {}, _defaults(2, LEVEL="namespace", MESH="m", NS="n")),
        ((MESH, NAMESPACE), {"annotation": ANNOTATION}, _defaults(5, **ANNOTATED)),
        ((MESH, NAMESPACE, WORKLOAD), {"annotation": ANNOTATION}, _defaults(3, **ANNOTATED)),
        ((MESH, NAMESPACE, WORKLOAD), {}, _defaults(3, LEVEL="namespace", MESH="m", NS="n")),
        ((WORKLOAD,), {"mesh_default": DEFAULT_CONFIG}, _defaults(3, LEVEL="defaultConfig", DEFAULT="d")),
    ],
    ids=["nothing", "default-config", "mesh-over-default", "namespace-over-mesh", "annotation-over-namespace",
         "workload-over-annotation", "workload-over-namespace", "workload-over-default"],
)  # fmt: skip
def test_precedence_field_by_field(
    documents: tuple[tuple[str, str, Mapping[str, object]], ...],
    layers: dict[str, ProxyDefaults],
    expected: ProxyDefaults,
) -> None:
    assert _effective(_index(*documents), **layers) == expected


def test_a_workload_selector_needs_every_label_and_the_proxy_s_namespace() -> None:
    index = _index(NAMESPACE, WORKLOAD, ("other", "ratings", WORKLOAD[2]))
    assert _effective(index, labels={"app": "reviews"}).concurrency == 2
    assert _effective(index, labels={"app": "ratings", "version": "v1"}).concurrency == 3
    assert _effective(index, namespace="third").concurrency is None  # no namespace default there, no mesh one


def test_the_root_namespace_s_proxy_config_is_the_mesh_s_and_its_selector_selects_its_own_workloads() -> None:
    selecting = (ROOT, "root-ratings", WORKLOAD[2])
    index = _index(MESH, selecting)
    assert _effective(index).concurrency == 1  # a workload of ns: the root namespace's selector is not for it
    assert _effective(index, namespace=ROOT).concurrency == 3


def test_concurrency_zero_overrides_a_lower_layer() -> None:
    index = _index(MESH, ("ns", "zero", {"concurrency": 0}))
    assert _effective(index).concurrency == 0


def test_the_first_in_name_order_applies_and_the_others_are_reported() -> None:
    index = _index(("ns", "b", {"concurrency": 2}), ("ns", "a", {"concurrency": 1}))
    assert _effective(index).concurrency == 1
    assert index.conflicts == ("namespace ns: ProxyConfigs a, b have no selector; a applies",)


def test_the_message_sets_concurrency_only_when_some_layer_does() -> None:
    unset = proxy_config_message(_defaults(LOG="json"))
    assert not unset.HasField("concurrency")
    assert dict(unset.environment_variables) == {"LOG": "json"}
    zero = proxy_config_message(_defaults(0))
    assert zero.HasField("concurrency") and zero.concurrency.value == 0


def test_pilot_serves_a_proxy_its_workload_s_proxy_config() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: ns}
spec: {address: 10.0.0.7, labels: {app: ratings}}
"""
    configs = {r.meta.key: r for r in _configs(NAMESPACE, WORKLOAD)}
    configs |= {r.meta.key: r for r in parse_config_text(text, "we.yaml").resources}
    snapshot = build_snapshot(configs, version=1)
    proxy = resolve_proxy(parse_node_id("sidecar~10.0.0.7~ratings-v1.ns~ns.svc.cluster.local"), snapshot)
    (message,) = build_proxy_config(proxy, snapshot)
    assert message.concurrency.value == 3
    assert dict(message.environment_variables) == {"LEVEL": "namespace", "NS": "n"}
    generator = GENERATORS[PROXY_CONFIG_TYPE]
    assert generator.scopes(proxy) == [] and generator.wildcard
    assert {"ProxyConfig", "WorkloadEntry", "MeshConfig"} <= generator.affected_by
    other = resolve_proxy(parse_node_id("sidecar~10.0.0.8~details-v1.ns~ns.svc.cluster.local"), snapshot)
    assert build_proxy_config(other, snapshot)[0].concurrency.value == 2


def test_the_pod_annotation_comes_as_node_metadata_under_a_selecting_proxy_config() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: ns}
spec: {address: 10.0.0.7, labels: {app: ratings}}
"""
    configs = {r.meta.key: r for r in _configs(NAMESPACE, WORKLOAD)}
    configs |= {r.meta.key: r for r in parse_config_text(text, "we.yaml").resources}
    snapshot = build_snapshot(configs, version=1)
    node = parse_node_id("sidecar~10.0.0.7~ratings-v1.ns~ns.svc.cluster.local")
    annotated = dataclasses.replace(
        node, metadata={PROXY_CONFIG_ANNOTATION_METADATA: '{"concurrency":5,"proxyMetadata":{"LEVEL":"annotation"}}'}
    )
    (message,) = build_proxy_config(resolve_proxy(annotated, snapshot), snapshot)
    assert message.concurrency.value == 3  # the selecting ProxyConfig's, over the annotation's
    assert dict(message.environment_variables) == {"LEVEL": "annotation", "NS": "n"}  # the annotation's, over the ns'


def test_analyze_reports_two_proxy_configs_without_selector_in_one_namespace() -> None:
    configs = {r.meta.key: r for r in _configs(("ns", "b", {"concurrency": 2}), ("ns", "a", {"concurrency": 1}))}
    findings = [f for f in analyze_snapshot(build_snapshot(configs, version=1)) if f.resource == "ProxyConfig"]
    assert [(f.code, f.message) for f in findings] == [
        ("MP0214", "namespace ns: ProxyConfigs a, b have no selector; a applies")
    ]
