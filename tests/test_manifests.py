"""manifests/ (``kubectl apply -k manifests/``): Istio's CRDs as Istio ships them and meshplane's, and the control
plane: every object by kind, namespace and name; Services on Istio's ports reaching the pods' ports; the commands'
addresses, probes and images; RBAC exactly as listed (least privilege: every rule is in a table here); the webhook
configuration as Istio's; PodDisruptionBudgets that let a drain proceed. The Istio samples of e2e/k8s (applied to a
real apiserver by e2e/k8s/test_manifests.py) go through meshplane's own config layer here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.k8s.install_manifests import (
    LOCAL_INSTALL_DIR,
    MANIFESTS_DIR,
    Manifest,
    by_key,
    kubectl_1_20,
    kustomization_objects,
    kustomize,
)
from pilot.config.mesh_config import parse_mesh_config
from pilot.config.parse import (
    API_VERSIONS,
    ENVOY_FILTER_API_VERSIONS,
    MIXER_API_VERSIONS,
    PROXY_CONFIG_API_VERSIONS,
    SECURITY_API_VERSIONS,
    parse_config_text,
)
from pilot.config.types import Kind
from pilot.config.validate_telemetry import TELEMETRY_API_VERSIONS

OBJECTS = kustomization_objects()
INDEX = by_key(OBJECTS)
NS = "istio-system"
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "e2e" / "k8s" / "istio-samples"
needs_kubectl = pytest.mark.skipif(
    not kubectl_1_20().exists(),
    reason=f"kubectl 1.20 not built ({kubectl_1_20()}: `make k8s-cluster`, root with a Docker engine)",
)


def _objects(kind: str) -> dict[str, Manifest]:
    return {name: obj for (k, _, name), obj in INDEX.items() if k == kind}


def _walk(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


# ---- what kustomize renders -------------------------------------------------------------------------------------

EXPECTED_OBJECTS = {
    ("Namespace", "", NS),
    ("ConfigMap", NS, "istio"),
    ("MutatingWebhookConfiguration", "", "istio-sidecar-injector"),
    *{("ServiceAccount", NS, f"istio-{c}-service-account") for c in ("pilot", "citadel", "mixer")},
    *{(kind, "", f"istio-{c}-istio-system") for c in ("pilot", "citadel", "mixer") for kind in ("ClusterRole",
                                                                                          "ClusterRoleBinding")},
    ("Role", NS, "istio-pilot-leader-election"),
    ("RoleBinding", NS, "istio-pilot-leader-election"),
    ("Role", NS, "istio-citadel-ca-secret"),
    ("RoleBinding", NS, "istio-citadel-ca-secret"),
    *{("Deployment", NS, f"istio-{c}") for c in ("pilot", "citadel", "mixer")},
    *{("Service", NS, name) for name in ("istio-pilot", "istio-citadel", "istio-sidecar-injector", "istio-policy",
                                         "istio-telemetry")},
    ("PodDisruptionBudget", NS, "istio-pilot"),
    *{(kind, NS, f"istio-{g}gateway") for g in ("ingress", "egress") for kind in ("Deployment", "Service")},
    *{("ServiceAccount", NS, f"istio-{g}gateway-service-account") for g in ("ingress", "egress")},
}  # fmt: skip


def test_the_control_plane_is_exactly_these_objects_besides_the_crds() -> None:
    assert {key for key in INDEX if key[0] != "CustomResourceDefinition"} == EXPECTED_OBJECTS


@needs_kubectl
@pytest.mark.parametrize("directory", [MANIFESTS_DIR], ids=["manifests"])
def test_kubectl_1_20_kustomize_renders_exactly_the_listed_files(directory: Path) -> None:
    rendered = by_key(kustomize(directory))
    assert sorted(rendered) == sorted(INDEX)
    assert all(rendered[key] == INDEX[key] for key in INDEX)


# ---- CRDs ----------------------------------------------------------------------------------------------------------

NET3 = ("v1", "v1alpha3", "v1beta1")
SEC = ("v1", "v1beta1")
NET, SECURITY = "networking.istio.io", "security.istio.io"
# kind: (group, plural, shortNames, served versions, storage version, printer columns), as Istio's
EXPECTED_CRDS = {
    "DestinationRule": (NET, "destinationrules", ["dr"], NET3, "v1alpha3", ["Host", "Age"]),
    "EnvoyFilter": (NET, "envoyfilters", [], ("v1alpha3",), "v1alpha3", []),
    "Gateway": (NET, "gateways", ["gw"], NET3, "v1alpha3", []),
    "ProxyConfig": (NET, "proxyconfigs", [], ("v1beta1",), "v1beta1", []),
    "ServiceEntry": (NET, "serviceentries", ["se"], NET3, "v1alpha3", ["Hosts", "Location", "Resolution", "Age"]),
    "Sidecar": (NET, "sidecars", [], NET3, "v1alpha3", []),
    "VirtualService": (NET, "virtualservices", ["vs"], NET3, "v1alpha3", ["Gateways", "Hosts", "Age"]),
    "WorkloadEntry": (NET, "workloadentries", ["we"], NET3, "v1alpha3", ["Age", "Address"]),
    "WorkloadGroup": (NET, "workloadgroups", ["wg"], NET3, "v1alpha3", ["Age"]),
    "AuthorizationPolicy": (SECURITY, "authorizationpolicies", ["ap"], SEC, "v1beta1", ["Action", "Age"]),
    "PeerAuthentication": (SECURITY, "peerauthentications", ["pa"], SEC, "v1beta1", ["Mode", "Age"]),
    "RequestAuthentication": (SECURITY, "requestauthentications", ["ra"], SEC, "v1beta1", []),
    "Telemetry": ("telemetry.istio.io", "telemetries", ["telemetry"], ("v1", "v1alpha1"), "v1alpha1", []),
    "AccessList": ("mixer.meshplane.io", "accesslists", ["al"], ("v1",), "v1", ["Mode", "Value", "Age"]),
    "RateLimit": ("mixer.meshplane.io", "ratelimits", ["rl"], ("v1",), "v1", ["Requests", "Per", "Key", "Age"]),
}  # fmt: skip
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in _objects("CustomResourceDefinition").values()}
CRD_KINDS = sorted(EXPECTED_CRDS)


def test_the_crds_are_exactly_istios_kinds_and_meshplanes() -> None:
    assert sorted(CRDS) == CRD_KINDS


@pytest.mark.parametrize("kind", CRD_KINDS, ids=CRD_KINDS)
def test_each_crd_has_istios_group_names_versions_and_columns(kind: str) -> None:
    group, plural, short_names, versions, storage, columns = EXPECTED_CRDS[kind]
    crd = CRDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.{group}"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == (group, "Namespaced")
    names = spec["names"]
    assert (names["plural"], names["singular"], names["listKind"]) == (plural, kind.lower(), f"{kind}List")
    assert names.get("shortNames", []) == short_names
    category = "mixer-meshplane-io" if group == "mixer.meshplane.io" else group.replace(".", "-")
    assert names["categories"] == (
        ["meshplane-io", category] if group == "mixer.meshplane.io" else ["istio-io", category]
    )
    assert tuple(v["name"] for v in spec["versions"]) == versions
    assert [v["name"] for v in spec["versions"] if v["storage"]] == [storage]
    for version in spec["versions"]:
        assert version["served"] is True
        assert version["subresources"] == {"status": {}}
        shown = [column["name"] for column in version.get("additionalPrinterColumns", [])]
        assert shown == columns


@pytest.mark.parametrize("kind", CRD_KINDS, ids=CRD_KINDS)
def test_each_crd_keeps_spec_and_status_whole_for_meshplanes_validation(kind: str) -> None:
    """Nothing pruned: a field meshplane rejects must reach meshplane (not vanish at the apiserver, accepted and
    ignored); structural (Kubernetes 1.16+) and without CEL rules (x-kubernetes-validations needs 1.25+)."""
    for version in CRDS[kind]["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert schema["type"] == "object"
        assert sorted(schema["properties"]) == ["spec", "status"]
        for part in ("spec", "status"):
            assert schema["properties"][part]["type"] == "object"
            assert schema["properties"][part]["x-kubernetes-preserve-unknown-fields"] is True
        assert "x-kubernetes-validations" not in {key for key, _ in _walk(schema)}


PARSED_KINDS = [str(kind) for kind in Kind]
PARSED_VERSIONS = {
    "networking.istio.io": API_VERSIONS,
    "security.istio.io": SECURITY_API_VERSIONS,
    "telemetry.istio.io": TELEMETRY_API_VERSIONS,
}


@pytest.mark.parametrize("kind", PARSED_KINDS, ids=PARSED_KINDS)
def test_every_api_version_meshplane_reads_is_served_by_its_crd(kind: str) -> None:
    crd = CRDS[kind]["spec"]
    versions = PARSED_VERSIONS.get(crd["group"], MIXER_API_VERSIONS)
    if kind == "EnvoyFilter":
        versions = ENVOY_FILTER_API_VERSIONS
    if kind == "ProxyConfig":
        versions = PROXY_CONFIG_API_VERSIONS
    served = {f"{crd['group']}/{v['name']}" for v in crd["versions"] if v["served"]}
    assert set(versions) <= served


# ---- Deployments, Services, probes, images -------------------------------------------------------------------------

DEPLOYMENTS = _objects("Deployment")
SERVICES = _objects("Service")
GATEWAYS = ["istio-egressgateway", "istio-ingressgateway"]
COMPONENTS = sorted(set(DEPLOYMENTS) - set(GATEWAYS))  # the control plane
# Service: (selected Deployment, [(port name, port, the pod's port)]), Istio's names and ports
EXPECTED_SERVICES = {
    "istio-pilot": ("istio-pilot", [("grpc-xds", 15010, 15010), ("http-monitoring", 15014, 15014)]),
    "istio-citadel": ("istio-citadel", [("grpc-citadel", 15012, 15012), ("http-monitoring", 15014, 15019)]),
    "istio-sidecar-injector": ("istio-citadel", [("https-webhook", 443, 15017)]),
    "istio-policy": ("istio-mixer", [("grpc-mixer", 9091, 9091), ("prometheus", 42422, 42422)]),
    "istio-telemetry": ("istio-mixer", [("grpc-mixer", 9091, 9091), ("prometheus", 42422, 42422)]),
    "istio-ingressgateway": ("istio-ingressgateway", [("status-port", 15021, 15021), ("http2", 80, 8080),
                                                      ("https", 443, 8443)]),
    "istio-egressgateway": ("istio-egressgateway", [("http2", 80, 8080), ("https", 443, 8443)]),
}  # fmt: skip
# Deployment: (replicas, the command as docker-compose.yml runs it, with --in-cluster), the monitor port
EXPECTED_COMMANDS = {
    "istio-pilot": (2, ["pilot", "--in-cluster", "--xds-address", "0.0.0.0:15010", "--monitor-address", "0.0.0.0:15014",
                        "--mesh-config", "/etc/istio/config/mesh", "--debounce", "100ms"], 15014),
    "istio-citadel": (1, ["citadel", "--in-cluster", "--ca-dir", "/var/lib/meshplane/citadel",
                          "--trust-domain", "cluster.local", "--sds-address", "0.0.0.0:15012",
                          "--monitor-address", "0.0.0.0:15019"], 15019),
    "istio-mixer": (1, ["mixer", "--in-cluster", "--grpc-address", "0.0.0.0:9091", "--monitor-address", "0.0.0.0:42422",
                        "--mesh-config", "/etc/istio/config/mesh"], 42422),
}  # fmt: skip


def _pod(name: str) -> dict[str, Any]:
    pod: dict[str, Any] = DEPLOYMENTS[name]["spec"]["template"]
    return pod


def _main_container(name: str) -> dict[str, Any]:
    """The component's own container (Citadel's pod has the sidecar injector's too)."""
    containers: list[dict[str, Any]] = _pod(name)["spec"]["containers"]
    assert [c["name"] for c in containers] == (
        ["citadel", "sidecar-injector"] if name == "istio-citadel" else [containers[0]["name"]]
    )
    return containers[0]


def _pod_ports(name: str) -> set[tuple[str, int]]:
    return {(p["name"], p["containerPort"]) for c in _pod(name)["spec"]["containers"] for p in c["ports"]}


@pytest.mark.parametrize("service", sorted(EXPECTED_SERVICES), ids=sorted(EXPECTED_SERVICES))
def test_each_service_has_istios_ports_on_the_pods_ports(service: str) -> None:
    deployment, ports = EXPECTED_SERVICES[service]
    spec = SERVICES[service]["spec"]
    assert [(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in spec["ports"]] == [
        (*port, "TCP") for port in ports
    ]
    pod_labels = _pod(deployment)["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()
    assert DEPLOYMENTS[deployment]["spec"]["selector"]["matchLabels"] == spec["selector"]
    assert {(name, target) for name, _, target in ports} <= _pod_ports(deployment)


@pytest.mark.parametrize("name", COMPONENTS, ids=COMPONENTS)
def test_each_component_runs_its_command_in_cluster_ready_on_its_monitor(name: str) -> None:
    replicas, command, monitor = EXPECTED_COMMANDS[name]
    container = _main_container(name)
    assert DEPLOYMENTS[name]["spec"]["replicas"] == replicas
    assert container["command"] == command
    listening = {int(arg.rsplit(":", 1)[1]) for arg in command if arg.startswith("0.0.0.0:")}
    assert listening <= {p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": monitor}


@pytest.mark.parametrize("name", COMPONENTS, ids=COMPONENTS)
def test_each_component_runs_unprivileged_outside_the_mesh(name: str) -> None:
    pod = _pod(name)
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["requests"] if container in pod["spec"]["containers"] else True


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS), ids=sorted(DEPLOYMENTS))
def test_each_component_uses_the_meshplane_image_if_not_present(name: str) -> None:
    spec = _pod(name)["spec"]
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        assert (container["image"], container["imagePullPolicy"]) == ("meshplane:latest", "IfNotPresent")


@needs_kubectl
def test_an_overlay_replaces_every_image(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "bases": [os.path.relpath(MANIFESTS_DIR, tmp_path)],
                "images": [{"name": "meshplane", "newName": "registry.test/mesh/meshplane", "newTag": "1.2.3"}],
            }
        )
    )
    for directory, image in (
        (tmp_path, "registry.test/mesh/meshplane:1.2.3"),
        (LOCAL_INSTALL_DIR, "localhost/meshplane:latest"),
    ):
        rendered = [obj for obj in kustomize(directory) if obj["kind"] == "Deployment"]
        images = [
            c["image"]
            for obj in rendered
            for key in ("initContainers", "containers")
            for c in obj["spec"]["template"]["spec"].get(key, [])
        ]
        assert sorted({obj["metadata"]["name"] for obj in rendered}) == sorted(DEPLOYMENTS)
        assert images and set(images) == {image}


@pytest.mark.parametrize("name", COMPONENTS, ids=COMPONENTS)
def test_each_component_runs_as_its_own_bound_service_account(name: str) -> None:
    account = _pod(name)["spec"]["serviceAccountName"]
    component = name.removeprefix("istio-")
    assert account == f"istio-{component}-service-account"
    assert ("ServiceAccount", NS, account) in INDEX
    binding = INDEX[("ClusterRoleBinding", "", f"istio-{component}-istio-system")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NS}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": binding["metadata"]["name"],
    }


PDBS = _objects("PodDisruptionBudget")


@pytest.mark.parametrize("name", sorted(PDBS), ids=sorted(PDBS))
def test_each_disruption_budget_keeps_one_replica_and_lets_a_drain_proceed(name: str) -> None:
    pdb = PDBS[name]
    assert pdb["apiVersion"] == "policy/v1beta1"  # Kubernetes 1.20; policy/v1 from 1.21
    assert pdb["spec"]["selector"] == DEPLOYMENTS[name]["spec"]["selector"]
    assert 1 == pdb["spec"]["minAvailable"] < DEPLOYMENTS[name]["spec"]["replicas"]


def test_the_mesh_config_is_one_meshplane_accepts_with_citadels_trust_domain() -> None:
    mesh = parse_mesh_config(INDEX[("ConfigMap", NS, "istio")]["data"]["mesh"], "istio/mesh")
    assert (mesh.names.root_namespace, mesh.names.trust_domain) == (NS, "cluster.local")
    citadel = _main_container("istio-citadel")["command"]
    assert citadel[citadel.index("--trust-domain") + 1] == mesh.names.trust_domain


# ---- gateways -----------------------------------------------------------------------------------------------------

GATEWAY_LABELS = {  # Istio's
    "istio-ingressgateway": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
    "istio-egressgateway": {"app": "istio-egressgateway", "istio": "egressgateway"},
}
GATEWAY_SERVICE_TYPES = {"istio-ingressgateway": "LoadBalancer", "istio-egressgateway": "ClusterIP"}


def _gateway_args(name: str) -> list[str]:
    return [
        *("meshplane-agent", "gateway", "--workload", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)"),
        *("--ip", "$(INSTANCE_IP)", "--service-account", "$(SERVICE_ACCOUNT)"),
        *("--labels", "app=$(ISTIO_LABEL_APP),istio=$(ISTIO_LABEL_ISTIO)"),
        *("--pilot", "$(ISTIO_PILOT_SERVICE_HOST):15010", "--citadel", "$(ISTIO_CITADEL_SERVICE_HOST):15012"),
        *("--mixer", "$(ISTIO_TELEMETRY_SERVICE_HOST):9091"),
        *("--token-file", "/var/run/secrets/tokens/istio-token", "--root-cert", "/var/run/secrets/istio/root-cert.pem"),
        *("--domain-suffix", "cluster.local", "--work-dir", "/etc/istio/proxy/agent", "--status-port", "15021"),
    ]


@pytest.mark.parametrize("name", GATEWAYS, ids=GATEWAYS)
def test_each_gateway_is_istios_deployment_running_the_gateway_agent(name: str) -> None:
    pod = _pod(name)
    [container] = pod["spec"]["containers"]
    assert DEPLOYMENTS[name]["spec"]["selector"]["matchLabels"] == GATEWAY_LABELS[name]
    assert GATEWAY_LABELS[name].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert SERVICES[name]["spec"]["type"] == GATEWAY_SERVICE_TYPES[name]
    assert container["name"] == "istio-proxy"
    assert container["args"] == _gateway_args(name)
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "INSTANCE_IP": "status.podIP",
                   "SERVICE_ACCOUNT": "spec.serviceAccountName", "ISTIO_LABEL_APP": "metadata.labels['app']",
                   "ISTIO_LABEL_ISTIO": "metadata.labels['istio']"}  # fmt: skip
    # the Service maps the Gateway's ports to the unprivileged ones the listeners bind (gateway_target_ports)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in SERVICES[name]["spec"]["ports"]}
    assert (ports["http2"], ports["https"]) == ((80, 8080), (443, 8443))


@pytest.mark.parametrize("name", GATEWAYS, ids=GATEWAYS)
def test_each_gateway_has_the_injected_sidecars_token_and_root_and_runs_unprivileged(name: str) -> None:
    spec = _pod(name)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    token = volumes["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}
    assert volumes["istiod-ca-cert"]["configMap"] == {"name": "istio-ca-root-cert"}
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["istio-token"] == "/var/run/secrets/tokens"
    assert mounts["istiod-ca-cert"] == "/var/run/secrets/istio"
    assert spec["serviceAccountName"] == f"{name}-service-account"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 1337
    context = spec["containers"][0]["securityContext"]
    assert (context["allowPrivilegeEscalation"], context["readOnlyRootFilesystem"]) == (False, True)
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_no_gateway_is_granted_anything() -> None:
    """Citadel reads the gateways' Secrets and serves them over SDS: a gateway needs no Role."""
    accounts = {f"{name}-service-account" for name in GATEWAYS}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in _objects(kind).values():
            assert not {s["name"] for s in binding["subjects"]} & accounts


# ---- RBAC: least privilege -----------------------------------------------------------------------------------------

_ISTIO_KINDS = {kind: spec for kind, spec in EXPECTED_CRDS.items() if spec[0] != "mixer.meshplane.io"}
_READ = ("get", "list", "watch")


def _grants(
    group: str, resources: list[str], verbs: tuple[str, ...], names: tuple[str, ...] = ("",)
) -> set[tuple[str, str, str, str]]:
    return {(group, resource, verb, name) for resource in resources for verb in verbs for name in names}


def _crd_grants(kinds: list[str], verbs: tuple[str, ...], suffix: str = "") -> set[tuple[str, str, str, str]]:
    return {
        grant for kind in kinds for grant in _grants(EXPECTED_CRDS[kind][0], [EXPECTED_CRDS[kind][1] + suffix], verbs)
    }


REGISTRY_GRANTS = _grants("", ["services", "pods", "namespaces"], _READ) | _grants(
    "discovery.k8s.io", ["endpointslices"], _READ
)
EXPECTED_RULES = {
    "ClusterRole/istio-pilot-istio-system": REGISTRY_GRANTS
    | _grants("", ["nodes"], _READ)
    | _crd_grants(CRD_KINDS, _READ)
    | _crd_grants(CRD_KINDS, ("update", "patch"), "/status"),
    "Role/istio-pilot-leader-election": _grants("coordination.k8s.io", ["leases"], ("get", "create", "update")),
    "ClusterRole/istio-citadel-istio-system": _grants("authentication.k8s.io", ["tokenreviews"], ("create",))
    | _grants("", ["configmaps"], ("create",))
    | _grants("", ["configmaps"], ("get", "list", "watch", "update"), ("istio-ca-root-cert",))
    | _grants("", ["namespaces"], _READ)
    | _grants("", ["secrets"], _READ)  # gateway credentials (credentialName), as istiod's ClusterRole
    # the sidecar injector, a container of Citadel's pod
    | _grants("", ["services", "pods"], ("get",))
    | _grants(
        "admissionregistration.k8s.io", ["mutatingwebhookconfigurations"], ("get", "patch"), ("istio-sidecar-injector",)
    ),
    # the self-signed CA's Secret (istio-ca-secret): create cannot be limited to a name, hence a Role in istio-system
    "Role/istio-citadel-ca-secret": _grants("", ["secrets"], ("create",))
    | _grants("", ["secrets"], ("get", "update"), ("istio-ca-secret",)),
    "ClusterRole/istio-mixer-istio-system": REGISTRY_GRANTS
    | _grants("", ["nodes"], _READ)
    | _crd_grants(CRD_KINDS, _READ),
}  # fmt: skip
ROLES = {f"{kind}/{name}": obj for (kind, _, name), obj in INDEX.items() if kind in ("ClusterRole", "Role")}


def _granted(role: Manifest) -> set[tuple[str, str, str, str]]:
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames", [""])
    }


def test_the_roles_are_exactly_these() -> None:
    assert sorted(ROLES) == sorted(EXPECTED_RULES)


@pytest.mark.parametrize("role", sorted(EXPECTED_RULES), ids=sorted(EXPECTED_RULES))
def test_each_role_grants_exactly_what_its_component_needs(role: str) -> None:
    granted = _granted(ROLES[role])
    assert not {grant for grant in granted if "*" in grant}
    assert sorted(granted - EXPECTED_RULES[role]) == []  # nothing more
    assert sorted(EXPECTED_RULES[role] - granted) == []  # nothing less


def test_pilot_reads_and_reports_on_every_istio_kind() -> None:
    """So that a kind meshplane does not translate is reported in its status, not accepted and ignored."""
    granted = _granted(ROLES["ClusterRole/istio-pilot-istio-system"])
    for group, plural, *_ in _ISTIO_KINDS.values():
        assert {(group, plural, verb, "") for verb in _READ} <= granted
        assert {(group, f"{plural}/status", verb, "") for verb in ("update", "patch")} <= granted


ROLE_BINDINGS = {  # Role (in istio-system, bound there only) -> the ServiceAccount it is for
    "istio-pilot-leader-election": "istio-pilot-service-account",
    "istio-citadel-ca-secret": "istio-citadel-service-account",
}


@pytest.mark.parametrize("role", sorted(ROLE_BINDINGS), ids=sorted(ROLE_BINDINGS))
def test_each_namespaced_role_is_bound_in_istio_system_only_to_its_component(role: str) -> None:
    binding = INDEX[("RoleBinding", NS, role)]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ROLE_BINDINGS[role], "namespace": NS}]


# ---- the sidecar injector's webhook configuration ------------------------------------------------------------------

WEBHOOKS = {
    hook["name"]: hook for hook in INDEX[("MutatingWebhookConfiguration", "", "istio-sidecar-injector")]["webhooks"]
}
EXPECTED_SELECTORS = {  # webhook: (namespaceSelector, objectSelector) expressions, as Istio 1.10+
    "namespace.sidecar-injector.istio.io": (
        [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}],
        [{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}],
    ),
    "object.sidecar-injector.istio.io": (
        [{"key": "istio-injection", "operator": "DoesNotExist"}],
        [{"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]}],
    ),
}


@pytest.mark.parametrize("webhook", sorted(EXPECTED_SELECTORS), ids=sorted(EXPECTED_SELECTORS))
def test_each_injection_webhook_selects_as_istios_and_calls_the_injector(webhook: str) -> None:
    hook = WEBHOOKS[webhook]
    namespaces, objects = EXPECTED_SELECTORS[webhook]
    assert hook["namespaceSelector"] == {"matchExpressions": namespaces}
    assert hook["objectSelector"] == {"matchExpressions": objects}
    assert hook["clientConfig"] == {
        "service": {"name": "istio-sidecar-injector", "namespace": NS, "path": "/inject", "port": 443}
    }
    assert "caBundle" not in hook["clientConfig"]  # the injector fills it in
    assert hook["rules"] == [
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
    ]
    assert (hook["failurePolicy"], hook["sideEffects"], hook["admissionReviewVersions"]) == (
        "Fail",
        "None",
        ["v1", "v1beta1"],
    )
    [webhook_port] = SERVICES["istio-sidecar-injector"]["spec"]["ports"]
    injector = next(c for c in _pod("istio-citadel")["spec"]["containers"] if c["name"] == "sidecar-injector")
    command = injector["command"]
    # the certificate names the Service the API server calls; the injector listens on the Service's target port
    assert command[command.index("--service") + 1] == f"istio-sidecar-injector.{NS}"
    assert command[command.index("--address") + 1] == f"0.0.0.0:{webhook_port['targetPort']}"
    assert injector["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 15017, "scheme": "HTTPS"}


def test_the_webhooks_are_exactly_these() -> None:
    assert sorted(WEBHOOKS) == sorted(EXPECTED_SELECTORS)


# ---- the Istio samples e2e/k8s applies -----------------------------------------------------------------------------

SAMPLES = sorted(SAMPLES_DIR.glob("*.yaml"))
ACCEPTED_SAMPLES = [path for path in SAMPLES if path.name != "rejected-field-typo.yaml"]


@pytest.mark.parametrize("path", ACCEPTED_SAMPLES, ids=[path.name for path in ACCEPTED_SAMPLES])
def test_each_istio_sample_is_accepted_by_meshplane(path: Path) -> None:
    parsed = parse_config_text(path.read_text(), str(path))
    assert (parsed.file_error, parsed.rejected, parsed.warnings) == (None, (), ())
    assert len(parsed.resources) == len([doc for doc in yaml.safe_load_all(path.read_text()) if doc])


@pytest.mark.parametrize(
    ("name", "path", "message"),
    [
        ("rejected-field-typo.yaml", "spec.http[0].routes", "unknown field 'routes' (did you mean 'route'?)"),
    ],
    ids=["field-typo"],
)
def test_the_istio_samples_meshplane_rejects_say_why(name: str, path: str, message: str) -> None:
    parsed = parse_config_text((SAMPLES_DIR / name).read_text(), name)
    errors = [error for rejected in parsed.rejected for error in rejected.errors]
    assert any(error.path == path and message in error.message for error in errors), errors
