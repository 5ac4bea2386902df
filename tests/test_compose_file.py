"""docker-compose.yml and compose/config agree with the demo mesh: every WorkloadEntry's address is its app
container's static address and its sidecar's --ip, every pod is app + init (NET_ADMIN, capture) + sidecar (uid 1337,
in the app's network namespace, its service account's token), only Pilot's monitor and Mixer's metrics are
published (on 127.0.0.1), and the compose registry is make demo's moved to the compose network."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from e2e.compose_mesh import COMPOSE_CONFIG_DIR, COMPOSE_FILE, COMPOSE_NETWORK, compose_addresses
from e2e.mesh_config import DEMO_MESH_FILE, DEMO_WORKLOADS, WorkloadSpec, render_pod_demo

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
REGISTRY = list(yaml.safe_load_all((COMPOSE_CONFIG_DIR / "00-reviews-mesh.yaml").read_text()))
ENTRIES = {doc["metadata"]["name"]: doc["spec"] for doc in REGISTRY if doc["kind"] == "WorkloadEntry"}
WORKLOAD_IDS = [spec.name for spec in DEMO_WORKLOADS]


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_compose_registry_is_the_demo_registry_on_the_compose_network() -> None:
    expected = list(yaml.safe_load_all(render_pod_demo(DEMO_MESH_FILE, COMPOSE_NETWORK)))
    assert expected == REGISTRY


@pytest.mark.parametrize("spec", DEMO_WORKLOADS, ids=WORKLOAD_IDS)
def test_each_app_has_the_address_its_workload_entry_names(spec: WorkloadSpec) -> None:
    address = SERVICES[spec.name]["networks"]["mesh"]["ipv4_address"]
    assert address == ENTRIES[spec.name]["address"] == compose_addresses()[spec.name]
    assert SERVICES[spec.name]["volumes"] == ["./compose/resolv.conf:/etc/resolv.conf:ro"]
    assert "user" not in SERVICES[spec.name]  # the image's app user, 1000: captured


@pytest.mark.parametrize("spec", DEMO_WORKLOADS, ids=WORKLOAD_IDS)
def test_each_init_installs_the_capture_in_the_apps_namespace(spec: WorkloadSpec) -> None:
    init = SERVICES[f"{spec.name}-init"]
    assert init["network_mode"] == f"service:{spec.name}"
    assert init["cap_add"] == ["NET_ADMIN"]
    assert init["command"] == ["meshplane", "capture", "install", "--redirect-dns"]


@pytest.mark.parametrize("spec", DEMO_WORKLOADS, ids=WORKLOAD_IDS)
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
    assert sidecar["depends_on"][f"{spec.name}-init"] == {"condition": "service_completed_successfully"}
    assert sidecar["depends_on"]["citadel-init"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize(
    ("service", "published"),
    [
        ("pilot", ["127.0.0.1:${MESHPLANE_PILOT_MONITOR_PORT:-15014}:15014"]),
        ("mixer", ["127.0.0.1:${MESHPLANE_MIXER_METRICS_PORT:-42422}:42422"]),
    ],
    ids=["pilot-monitor", "mixer-metrics"],
)
def test_only_pilots_monitor_and_mixers_metrics_are_published_on_loopback(service: str, published: list[str]) -> None:
    assert SERVICES[service]["ports"] == published
    assert sorted(name for name, definition in SERVICES.items() if "ports" in definition) == ["mixer", "pilot"]


def test_the_network_is_the_compose_network_without_masquerade() -> None:
    network = COMPOSE["networks"]["mesh"]
    assert network["ipam"]["config"] == [{"subnet": COMPOSE_NETWORK.cidr, "gateway": "10.91.0.1"}]
    assert network["driver_opts"] == {"com.docker.network.bridge.enable_ip_masquerade": "false"}


def test_mesh_ready_waits_for_every_sidecar() -> None:
    assert SERVICES["mesh-ready"]["depends_on"] == {
        f"{spec.name}-sidecar": {"condition": "service_healthy"} for spec in DEMO_WORKLOADS
    }
