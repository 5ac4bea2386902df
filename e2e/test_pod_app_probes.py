"""The kubelet's probes under STRICT mutual TLS, in a real pod (netns, Istio's capture, Envoy, Citadel): the reviews
pod's probes rewritten as the injector rewrites them (``injector.app_probes``), the agent's status port
(``meshplane-agent status``, in the pod's network namespace as the sidecar's group, as ``meshplane-agent sidecar``
runs it) answering them. From a network namespace outside the mesh, as the kubelet on the node: a plaintext GET of
the app's port is refused by the sidecar, while a GET of ``:15020/app-health/reviews/readyz`` is answered by way of
the app (the app saw the probe's path and headers, from ``127.0.0.6``, the source the capture lets through)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from agent.app_probers import STATUS_PORT
from agent.capture import CaptureOptions
from agent.netns import in_netns_command
from e2e.mtls import peer_authentication
from e2e.pod_mesh import REVIEWS_PORT, PodMesh, pod_mesh
from e2e.pods import pod_get, why_pods_cannot_run
from envoy_bootstrap.processes import start_logged_process, stop_process
from injector.app_probes import rewrite_app_probes
from meshplane.names import PROXY_UID

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

REVIEWS = {  # the reviews container as its Deployment would declare it
    "name": "reviews",
    "ports": [{"name": "http", "containerPort": REVIEWS_PORT}],
    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http",
                                   "httpHeaders": [{"name": "X-Probe", "value": "kubelet"}]}},
    "livenessProbe": {"tcpSocket": {"port": REVIEWS_PORT}},
    "startupProbe": {"httpGet": {"path": "/status/503", "port": REVIEWS_PORT}, "timeoutSeconds": 2},
}  # fmt: skip


async def _start_status_port(mesh: PodMesh, pod: str) -> None:
    _, app_probers = rewrite_app_probes([REVIEWS], CaptureOptions())
    assert app_probers is not None
    agent = [sys.executable, "-m", "agent", "status", "--ip", mesh.addresses[pod], "--app-probers", app_probers]
    # root with the proxy's group, as the pod harness runs its DNS agent (a venv under /root stays readable)
    command = in_netns_command(mesh.pod(pod).netns, agent, uid=0, gid=PROXY_UID)
    mesh.plain_processes.append(await start_logged_process(command, mesh.workdir / f"status-{pod}.log"))


async def _until_listening(mesh: PodMesh, url: str) -> None:
    for _ in range(50):
        [(status, _)] = await asyncio.to_thread(pod_get, mesh.pod("stranger"), url, 1, timeout=2)
        if status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(
        f"{url}: the status port never answered:\n{(mesh.workdir / 'status-reviews-v1.log').read_text()}"
    )


async def test_kubelet_probes_reach_the_app_through_the_status_port_under_strict_mtls(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, peer_authentication("STRICT", namespace="istio-system"), citadel=True) as mesh:
        await _start_status_port(mesh, "reviews-v1")
        address = mesh.addresses["reviews-v1"]
        status_port = f"http://{address}:{STATUS_PORT}"
        await _until_listening(mesh, f"{status_port}/healthz/ready")
        stranger = mesh.pod("stranger")
        plaintext = await asyncio.to_thread(pod_get, stranger, f"http://{address}:{REVIEWS_PORT}/healthz", 2)
        answers = {
            path: (await asyncio.to_thread(pod_get, stranger, f"{status_port}{path}"))[0]
            for path in ("/app-health/reviews/readyz", "/app-health/reviews/livez", "/app-health/reviews/startupz",
                         "/app-health/ratings/readyz", "/healthz/ready")
        }  # fmt: skip
        probed = await mesh.app_requests("reviews-v1", "/healthz")
        await stop_process(mesh.plain_processes.pop(), name="status", timeout=5)
    assert [status for status, _ in plaintext] == [0, 0], plaintext  # reset by the sidecar: no client certificate
    ready_status, ready_body = answers["/app-health/reviews/readyz"]
    assert ready_status == 200, ready_body
    seen = json.loads(ready_body)  # the app's echo of the agent's request
    assert (seen["path"], seen["peer"], seen["headers"]["x-probe"]) == ("/healthz", "127.0.0.6", "kubelet")
    assert seen["headers"]["host"] == f"{address}:{REVIEWS_PORT}"
    assert probed == 1  # the plaintext GETs never reached the app; the probe did
    assert answers["/app-health/reviews/livez"][0] == 200  # tcpSocket: the app's port accepts
    assert answers["/app-health/reviews/startupz"][0] == 503  # the app's own answer
    assert answers["/app-health/ratings/readyz"][0] == 404
    assert answers["/healthz/ready"][0] == 200  # the pod's Envoy is ready
