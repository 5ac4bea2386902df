"""Istio's ProxyConfig in pods: the launcher (``meshplane pod run``) asks Pilot for its sidecar's effective
ProxyConfig before starting Envoy, and the running Envoy has it. The docs' namespace ProxyConfig
(``e2e/istio_docs/proxyconfig/namespace-proxyconfig.yaml``, ``concurrency: 0``, retargeted to the pods' namespace)
with a variable added, a mesh-wide one (root namespace) and one selecting productpage (``concurrency: 2``): Envoy's
``/server_info`` says productpage runs 2 workers and reviews one per core (``concurrency: 0`` leaves Envoy's
default), and ``/proc/<envoy>/environ`` holds each level's variables, the workload's over the namespace's over the
mesh's over MeshConfig ``defaultConfig``'s, variable by variable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from agent.pod_network import PodAddress
from e2e.pod_mesh import NAMESPACE, pod_mesh
from e2e.pods import pod_python, why_pods_cannot_run
from meshplane.names import ADMIN_PORT, PROXY_UID

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

DOCS = Path(__file__).resolve().parent / "istio_docs" / "proxyconfig"


def _namespace_proxy_config() -> str:
    """The docs' namespace ProxyConfig in the pods' namespace, with a variable for every proxy of it."""
    document = yaml.safe_load((DOCS / "namespace-proxyconfig.yaml").read_text())
    document["metadata"]["namespace"] = NAMESPACE
    document["spec"]["environmentVariables"] = {"E2E_LEVEL": "namespace", "E2E_NAMESPACE": "yes"}
    return yaml.safe_dump(document, sort_keys=False)


CONFIG = f"""\
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata:
  name: mesh-wide
  namespace: istio-system
spec:
  concurrency: 1
  environmentVariables:
    E2E_LEVEL: mesh
    E2E_MESH: "yes"
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata:
  name: productpage
  namespace: {NAMESPACE}
spec:
  selector:
    matchLabels:
      app: productpage
  concurrency: 2
  environmentVariables:
    E2E_LEVEL: workload
---
{_namespace_proxy_config()}"""

MESH_CONFIG = """\
defaultConfig:
  concurrency: 3
  proxyMetadata:
    E2E_LEVEL: defaultConfig
    E2E_DEFAULT: "yes"
"""

_SERVER_INFO = f"""
import json, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:{ADMIN_PORT}/server_info", timeout=5).read().decode())
"""


def _concurrency(pod: PodAddress) -> int:
    info = json.loads(pod_python(pod, _SERVER_INFO, uid=PROXY_UID))
    return int(info["command_line_options"]["concurrency"])


def _envoy_pid(pod: PodAddress) -> int:
    """The Envoy process in the pod's network namespace."""
    netns = os.stat(f"/run/netns/{pod.netns}").st_ino
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "envoy" and (entry / "ns" / "net").stat().st_ino == netns:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    assert len(found) == 1, f"expected one Envoy in {pod.netns}, found {found}"
    return found[0]


def _envoy_environment(pod: PodAddress) -> dict[str, str]:
    raw = Path(f"/proc/{_envoy_pid(pod)}/environ").read_bytes()
    pairs = (item.decode().partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs if name.startswith("E2E_")}


async def test_envoy_runs_with_its_effective_proxy_config(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, CONFIG, mesh_config=MESH_CONFIG, versions=("v1",)) as mesh:
        productpage, reviews = mesh.pod("productpage"), mesh.pod("reviews-v1")
        assert _concurrency(productpage) == 2
        assert _concurrency(reviews) == os.cpu_count()  # concurrency 0: Envoy's one worker per hardware thread
        every = {"E2E_DEFAULT": "yes", "E2E_MESH": "yes", "E2E_NAMESPACE": "yes"}
        assert _envoy_environment(productpage) == {**every, "E2E_LEVEL": "workload"}
        assert _envoy_environment(reviews) == {**every, "E2E_LEVEL": "namespace"}
