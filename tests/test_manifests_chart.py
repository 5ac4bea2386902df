"""The Helm chart (manifests/charts/meshplane) renders the objects ``kubectl apply -k manifests/`` applies.

``helm template`` is compared with the kustomization, object by object, where helm is on PATH (it is not installable
on the project's machines: not in Debian, not on PyPI). Without helm: the chart's defaults (values.yaml) are the
kustomization's values, every ``.Values`` path a template names is defined, and the chart's CRDs are manifests/crds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.k8s.install_manifests import CHART_DIR, MANIFESTS_DIR, Manifest, by_key, kustomization_objects, load_manifests

VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
CHART: dict[str, Any] = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
INDEX = by_key(kustomization_objects())
TEMPLATES = sorted((CHART_DIR / "templates").glob("*.yaml"))
HELM = shutil.which("helm")
needs_helm = pytest.mark.skipif(HELM is None, reason="helm is not on PATH (not in Debian's packages nor on PyPI)")


def _deployment(name: str) -> dict[str, Any]:
    deployment: dict[str, Any] = INDEX[("Deployment", "istio-system", name)]
    return deployment


def _container(name: str) -> dict[str, Any]:
    container: dict[str, Any] = _deployment(name)["spec"]["template"]["spec"]["containers"][0]
    return container


def _port(name: str, port_name: str) -> int:
    return next(int(p["containerPort"]) for p in _container(name)["ports"] if p["name"] == port_name)


COMPONENT_PORTS = {  # values key: (Deployment, {values port: the container port's name})
    "pilot": ("istio-pilot", {"xds": "grpc-xds", "monitoring": "http-monitoring"}),
    "citadel": ("istio-citadel", {"grpc": "grpc-citadel", "monitoring": "http-monitoring"}),
    "mixer": ("istio-mixer", {"grpc": "grpc-mixer", "prometheus": "prometheus"}),
}


def test_the_chart_is_a_helm_3_chart_for_kubernetes_1_20() -> None:
    assert (CHART["apiVersion"], CHART["name"], CHART["type"]) == ("v2", "meshplane", "application")
    assert CHART["kubeVersion"] == ">=1.20.0-0"


def test_the_charts_crds_are_the_manifests_crds() -> None:
    assert (CHART_DIR / "crds").resolve() == (MANIFESTS_DIR / "crds").resolve()


def test_the_default_image_is_the_kustomizations() -> None:
    image = VALUES["image"]
    assert (f"{image['repository']}:{image['tag']}", image["pullPolicy"]) == (
        _container("istio-pilot")["image"],
        _container("istio-pilot")["imagePullPolicy"],
    )


@pytest.mark.parametrize("component", sorted(COMPONENT_PORTS), ids=sorted(COMPONENT_PORTS))
def test_each_components_defaults_are_the_kustomizations(component: str) -> None:
    deployment, ports = COMPONENT_PORTS[component]
    values = VALUES[component]
    assert values["resources"] == _container(deployment)["resources"]
    assert values.get("replicas", 1) == _deployment(deployment)["spec"]["replicas"]
    assert {key: _port(deployment, name) for key, name in ports.items()} == values["ports"]


def test_the_default_mesh_config_is_the_kustomizations() -> None:
    assert VALUES["meshConfig"] == yaml.safe_load(INDEX[("ConfigMap", "istio-system", "istio")]["data"]["mesh"])


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f".Values.{dotted} is not in values.yaml"
        node = node[part]
    return node


@pytest.mark.parametrize("template", TEMPLATES, ids=[path.name for path in TEMPLATES])
def test_each_template_names_only_defined_values(template: Path) -> None:
    text = template.read_text()
    for action in re.findall(r"\{\{-?(.*?)-?\}\}", text):
        for dotted in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", action):
            _lookup(VALUES, dotted)
        assert re.fullmatch(
            r"\s*(\.Values\.[\w.]+|\.Release\.Namespace|toYaml \.Values\.[\w.]+ \| indent \d+)\s*", action
        )


def _helm_template(*options: str) -> list[Manifest]:
    assert HELM is not None
    done = subprocess.run(
        [HELM, "template", "meshplane", str(CHART_DIR), "--namespace", "istio-system", "--include-crds", *options],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return load_manifests(done.stdout)


def _comparable(obj: Manifest) -> Manifest:
    if obj["kind"] == "ConfigMap" and "mesh" in obj.get("data", {}):  # the same MeshConfig, keys in toYaml's order
        return {**obj, "data": {**obj["data"], "mesh": yaml.safe_load(obj["data"]["mesh"])}}
    return obj


@needs_helm
def test_helm_template_renders_the_kustomizations_objects() -> None:
    rendered = {key: _comparable(obj) for key, obj in by_key(_helm_template()).items()}
    expected = {key: _comparable(obj) for key, obj in INDEX.items() if key[0] != "Namespace"}  # helm --create-namespace
    assert sorted(rendered) == sorted(expected)
    for key, obj in expected.items():
        assert rendered[key] == obj, key


@needs_helm
def test_helm_values_replace_the_image_and_replicas() -> None:
    rendered = by_key(
        _helm_template("--set", "image.repository=registry.test/meshplane,image.tag=2.0", "--set", "pilot.replicas=3")
    )
    pilot = rendered[("Deployment", "istio-system", "istio-pilot")]
    assert pilot["spec"]["replicas"] == 3
    images = {
        c["image"]
        for key, obj in rendered.items()
        if key[0] == "Deployment"
        for part in ("initContainers", "containers")
        for c in obj["spec"]["template"]["spec"].get(part, [])
    }
    assert images == {"registry.test/meshplane:2.0"}
