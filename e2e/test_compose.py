"""README's docker-compose section, for real: with a Docker engine (``.ci/docker-engine.sh`` starts one in CI), the
image is built offline (``e2e.compose_build``: wheelhouse + ``meshplane-base:bookworm``), ``docker-compose up -d``
(Compose v1, Debian's 1.29) brings up docker-compose.yml, the test waits until every pod is healthy and
``mesh-ready`` got an answer from reviews through productpage's sidecar, runs the demo's steps against the
containers (``meshplane demo --compose``'s ``run_compose_demo``: measured splits, STRICT mTLS, 403/429, the TCP
split over real connections from productpage's container to tcp-echo, Mixer's counts on its published port), calls
reviews from the host through the ingress gateway's published port (``istio-ingressgateway``, the Gateway of
``compose/config/00-ingress-gateway.yaml``, mutual TLS from the gateway to the reviews sidecars), and ``down -v``
leaves no container, network or volume of the project.

A project name and published ports of the test's own, and a copy of ``compose/config`` as the config directory, so
a compose demo of the user's is not touched (only its static subnet 10.91.0.0/24 would clash: then the test fails
saying so)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from e2e.compose_build import BASE_IMAGE, DEFAULT_TAG, ROOT, build_image
from e2e.compose_mesh import CLIENT, COMPOSE_CONFIG_DIR, COMPOSE_FILE, ComposeMesh, run_compose_demo
from e2e.demo_steps import TCP_SPLIT_HEADING, measured_splits
from e2e.traffic import binomial_bounds


def _why_no_engine() -> str | None:
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        return "no docker client or no docker-compose (v1) on PATH (.ci/docker-engine.sh installs Debian's as root)"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False, timeout=30)
    if info.returncode != 0:
        return "no Docker engine answers (`docker info` failed; .ci/docker-engine.sh starts dockerd as root)"
    base = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False, timeout=30)
    if base.returncode != 0:
        return f"no {BASE_IMAGE} image to build on offline (.ci/docker-engine.sh builds it with debootstrap)"
    return None


_NO_ENGINE = _why_no_engine()
pytestmark = pytest.mark.skipif(_NO_ENGINE is not None, reason=str(_NO_ENGINE))

_UP_TIMEOUT_SECONDS = 300
_GATEWAY_SETTLE_SECONDS = 30.0
REQUESTS = 60  # per measured split, requests or TCP connections


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project_resources(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    found: list[str] = []
    for kind, command in (
        ("container", ["docker", "ps", "-aq", "--filter", label]),
        ("network", ["docker", "network", "ls", "-q", "--filter", label]),
        ("volume", ["docker", "volume", "ls", "-q", "--filter", label]),
    ):
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout
        found += [f"{kind} {name}" for name in output.split()]
    return found


def _address(container: str) -> str:
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    inspect = ["docker", "inspect", "-f", template, container]
    return subprocess.run(inspect, capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def _up(compose: list[str], environment: dict[str, str], mesh: ComposeMesh) -> float:
    """``up -d`` and the wait for ``mesh-ready`` (exit 0: reviews answered productpage's app); seconds taken."""
    started = time.monotonic()
    up = subprocess.run(
        [*compose, "up", "-d", "--no-build"], cwd=ROOT, env=environment, capture_output=True, text=True,
        check=False, timeout=_UP_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    ready_container = mesh.container("mesh-ready", exited_too=True)  # it may have answered already
    ready = subprocess.run(["docker", "wait", ready_container], capture_output=True, text=True, check=True, timeout=90)
    logs = subprocess.run([*compose, "logs", "--tail", "30"], env=environment, capture_output=True, text=True)
    assert ready.stdout.strip() == "0", logs.stdout
    return time.monotonic() - started


def _through_gateway(port: int) -> tuple[int, str]:
    """GET / from the host at the gateway's published port, until it answers 200 (the route reached it)."""
    deadline = time.monotonic() + _GATEWAY_SETTLE_SECONDS
    last: tuple[int, str] = (0, "no answer")
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            last = (error.code, error.read().decode(errors="replace"))
        except OSError as error:
            last = (0, repr(error))
        time.sleep(0.5)
    return last


async def test_compose_mesh_runs_the_demo_steps_and_down_leaves_nothing(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(COMPOSE_CONFIG_DIR, config_dir)
    pilot_port, mixer_port, gateway_port = _free_port(), _free_port(), _free_port()
    project = f"mptest{os.getpid()}"
    environment = {
        **os.environ,
        "MESHPLANE_CONFIG_DIR": str(config_dir),
        "MESHPLANE_PILOT_MONITOR_PORT": str(pilot_port),
        "MESHPLANE_MIXER_METRICS_PORT": str(mixer_port),
        "MESHPLANE_GATEWAY_PORT": str(gateway_port),
        "MESHPLANE_IMAGE": DEFAULT_TAG,
    }
    compose = ["docker-compose", "-f", str(COMPOSE_FILE), "-p", project]
    mesh = ComposeMesh(
        project=project,
        config_dir=config_dir,
        pilot_monitor=f"127.0.0.1:{pilot_port}",
        mixer_monitor=f"127.0.0.1:{mixer_port}",
    )
    build_image()
    lines: list[str] = []
    try:
        seconds = _up(compose, environment, mesh)
        print(f"compose mesh healthy {seconds:.1f}s after `up -d`")
        # A name outside the mesh, on Docker's DNS only (the compose service pilot): productpage's agent forwards it
        # to 127.0.0.11 (UDP, DNAT-ed by Docker; the capture's conntrack zones must let the answer back). As an
        # FQDN: the search list's cluster.local forms would each wait for Docker's upstreams, unreachable here.
        outside_mesh = mesh.resolved(CLIENT, "pilot.")
        pilot_address = _address(mesh.container("pilot"))
        mesh_name = mesh.resolved(CLIENT, "reviews")
        gateway_answer = _through_gateway(gateway_port)
        code = await run_compose_demo(mesh, requests=REQUESTS, out=lines.append)
    finally:
        down = subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"], env=environment, capture_output=True, text=True,
            check=False, timeout=180,
        )  # fmt: skip

    assert outside_mesh == [pilot_address], outside_mesh  # Docker's answer: pilot's address on the network
    assert len(mesh_name) == 1 and mesh_name[0].startswith("240.240."), mesh_name  # a mesh VIP, from Pilot's table
    status, body = gateway_answer
    assert status == 200 and '"service": "reviews"' in body, gateway_answer  # host -> gateway -> a reviews sidecar
    output = "\n".join(lines)
    print(output)  # the demo's measured results (shown with -s)
    assert code == 0, output
    # steps 1 and 2 once, step 3 for jason and others, step 6 (TCP) for all-v1 and 80/20
    assert output.count("measured split matches") == 6, output
    assert "mutual TLS enforced" in output
    assert "end-user: mallory -> 403" in output
    assert "end-user: guest x8 -> 200 200 200 200 200 429 429 429" in output
    edges = [edge for edge in (line.split() for line in lines) if edge[:1] == ["productpage"] and len(edge) == 4]
    counted = {(edge[1], edge[2]): int(edge[3]) for edge in edges}
    assert counted.get(("reviews-v3", "403")) == 1, output  # mallory, step 3's rule sends others to v3
    assert counted.get(("reviews-v3", "429")) == 3, output
    assert sum(n for (_, status), n in counted.items() if status == "200") >= 4 * REQUESTS + 1 + 5 + 1, output
    all_v1, shifted = measured_splits(lines, TCP_SPLIT_HEADING)  # step 6: tcp-echo-all-v1, then tcp-echo-20-v2
    assert all_v1 == {"v1": REQUESTS}, output
    low, high = binomial_bounds(REQUESTS, 0.20)
    assert set(shifted) == {"v1", "v2"} and sum(shifted.values()) == REQUESTS, output
    assert low <= shifted["v2"] <= high, output
    registry = sorted(path.name for path in COMPOSE_CONFIG_DIR.iterdir())
    assert sorted(path.name for path in config_dir.iterdir()) == registry  # the steps' files removed
    assert down.returncode == 0, down.stdout + down.stderr
    assert _project_resources(project) == []
