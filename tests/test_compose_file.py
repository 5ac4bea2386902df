"""docker-compose.yml and compose/config agree with the demo mesh: every WorkloadEntry's address is its app
container's static address and its sidecar's --ip, every pod is app + init (NET_ADMIN, capture) + sidecar (uid 1337,
in the app's network namespace, its service account's token), the ingress gateway is a router with its own identity
that the compose config's Gateway selects, only Pilot's monitor, Mixer's metrics and the gateway's port 80 are
published (on 127.0.0.1), and the compose registry files are make demo's moved to the compose network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.compose_mesh import COMPOSE_CONFIG_DIR, COMPOSE_FILE, COMPOSE_NETWORK, COMPOSE_WORKLOADS, compose_addresses
from e2e.mesh_config import DEMO_MESH_FILE, DEMO_TCP_SERVICES_FILE, WorkloadSpec, render_pod_demo

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
REGISTRY_FILES = (DEMO_MESH_FILE, DEMO_TCP_SERVICES_FILE)  # make demo's registry files, each in compose/config
REGISTRY = [
    doc for source in REGISTRY_FILES for doc in yaml.safe_load_all((COMPOSE_CONFIG_DIR / source.name).read_text())
]
ENTRIES = {doc["metadata"]["name"]: doc["spec"] for doc in REGISTRY if doc["kind"] == "WorkloadEntry"}
WORKLOAD_IDS = [spec.name for spec in COMPOSE_WORKLOADS]


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.mark.parametrize("source", REGISTRY_FILES, ids=[source.name for source in REGISTRY_FILES])
def test_compose_registry_is_the_demo_registry_on_the_compose_network(source: Path) -> None:
    expected = list(yaml.safe_load_all(render_pod_demo(source, COMPOSE_NETWORK)))
    assert list(yaml.safe_load_all((COMPOSE_CONFIG_DIR / source.name).read_text())) == expected


def test_every_workload_entry_of_the_compose_registry_is_a_compose_workload() -> None:
    assert sorted(ENTRIES) == sorted(WORKLOAD_IDS)


@pytest.mark.parametrize("spec", COMPOSE_WORKLOADS, ids=WORKLOAD_IDS)
def test_each_app_has_the_address_its_workload_entry_names(spec: WorkloadSpec) -> None:
    address = SERVICES[spec.name]["networks"]["mesh"]["ipv4_address"]
    assert address == ENTRIES[spec.name]["address"] == compose_addresses()[spec.name]
    assert SERVICES[spec.name]["volumes"] == ["./compose/resolv.conf:/etc/resolv.conf:ro"]
    assert "user" not in SERVICES[spec.name]  # the image's app user, 1000: captured


@pytest.mark.parametrize("spec", COMPOSE_WORKLOADS, ids=WORKLOAD_IDS)
def test_each_init_installs_the_capture_in_the_apps_namespace(spec: WorkloadSpec) -> None:
    init = SERVICES[f"{spec.name}-init"]
    assert init["network_mode"] == f"service:{spec.name}"
    assert init["cap_add"] == ["NET_ADMIN"]
    assert init["command"] == ["meshplane", "capture", "install", "--redirect-dns"]


@pytest.mark.parametrize("spec", COMPOSE_WORKLOADS, ids=WORKLOAD_IDS)
def test_each_sidecar_runs_as_the_proxy_in_the_apps_namespace_with_its_identity(spec: WorkloadSpec) -> None:
    sidecar = SERVICES[f"{spec.name}-sidecar"]
    command = sidecar["command"]
    entry = ENTRIES[spec.name]
    assert sidecar["network_mode"] == f"service:{spec.name}"
    assert sidecar["user"] == "1337:1337"
    assert "cap_add" not in sidecar
    assert command[:2] == ["meshplane-agent", "sidecar"]
    assert _flag(command, "--workload") == spec.name
    assert _flag(command, "--ip") == entry["address"]
    assert _flag(command, "--service-account") == entry["serviceAccount"] == spec.service_account
    assert _flag(command, "--labels") == ",".join(f"{k}={v}" for k, v in entry["labels"].items())
    assert f"token-{spec.service_account}:/var/run/secrets/tokens:ro" in sidecar["volumes"]
    citadel_init = SERVICES["citadel-init"]
    assert f"token-{spec.service_account}:/run/tokens/{spec.service_account}" in citadel_init["volumes"]
    assert f" {spec.service_account}" in citadel_init["command"][2].split(";")[0]  # `for account in ...` mints it
    assert f"token-{spec.service_account}" in COMPOSE["volumes"]
    assert sidecar["depends_on"][f"{spec.name}-init"] == {"condition": "service_completed_successfully"}
    assert sidecar["depends_on"]["citadel-init"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize(
    ("service", "published"),
    [
        ("pilot", ["127.0.0.1:${MESHPLANE_PILOT_MONITOR_PORT:-15014}:15014"]),
        ("mixer", ["127.0.0.1:${MESHPLANE_MIXER_METRICS_PORT:-42422}:42422"]),
        ("istio-ingressgateway", ["127.0.0.1:${MESHPLANE_GATEWAY_PORT:-8080}:80"]),
    ],
    ids=["pilot-monitor", "mixer-metrics", "gateway-http"],
)
def test_only_the_monitors_and_the_gateway_are_published_on_loopback(service: str, published: list[str]) -> None:
    assert SERVICES[service]["ports"] == published
    published_by = sorted(name for name, definition in SERVICES.items() if "ports" in definition)
    assert published_by == ["istio-ingressgateway", "mixer", "pilot"]


def test_the_ingress_gateway_is_a_router_with_its_identity_selected_by_the_compose_gateway() -> None:
    gateway = SERVICES["istio-ingressgateway"]
    command = gateway["command"]
    assert command[:3] == ["envoy-bootstrap", "run", "gateway"]
    assert (_flag(command, "--workload"), _flag(command, "--namespace")) == ("istio-ingressgateway", "istio-system")
    assert _flag(command, "--address") == gateway["networks"]["mesh"]["ipv4_address"] == "10.91.0.80"
    assert _flag(command, "--label") == "istio=ingressgateway"
    assert gateway["user"] == "1337:1337" and "cap_add" not in gateway
    assert "token-istio-ingressgateway:/var/run/secrets/tokens:ro" in gateway["volumes"]
    minted = SERVICES["citadel-init"]["command"][2]
    assert "--namespace istio-system --service-account $$account" in minted
    assert "account=istio-ingressgateway-service-account" in minted
    [gateway_doc, virtual_service] = yaml.safe_load_all((COMPOSE_CONFIG_DIR / "00-ingress-gateway.yaml").read_text())
    assert gateway_doc["spec"]["selector"] == {"istio": "ingressgateway"}
    assert [s["port"]["number"] for s in gateway_doc["spec"]["servers"]] == [80]
    assert virtual_service["spec"]["gateways"] == [gateway_doc["metadata"]["name"]]


def test_the_network_is_the_compose_network_without_masquerade() -> None:
    network = COMPOSE["networks"]["mesh"]
    assert network["ipam"]["config"] == [{"subnet": COMPOSE_NETWORK.cidr, "gateway": "10.91.0.1"}]
    assert network["driver_opts"] == {"com.docker.network.bridge.enable_ip_masquerade": "false"}


def test_mesh_ready_waits_for_every_sidecar() -> None:
    assert SERVICES["mesh-ready"]["depends_on"] == {
        **{f"{spec.name}-sidecar": {"condition": "service_healthy"} for spec in COMPOSE_WORKLOADS},
        "istio-ingressgateway": {"condition": "service_healthy"},
    }
