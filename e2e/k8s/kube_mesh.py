"""The demo mesh on Kubernetes, as ``e2e.demo_steps.DemoMesh``: meshplane installed with ``kubectl apply -k``, the
demo's workloads (``e2e/k8s/demo/bookinfo.yaml``, Istio's bookinfo format) in the injected namespace ``default``,
Istio's YAML of each step applied with ``kubectl apply``, requests made by productpage's app with ``kubectl exec``.

Everything goes through the kubeconfig and ``kubectl`` (exec into pods, never pod IPs from the host), so the same
code runs on the local cluster and on kind. Pilot's and Mixer's monitors (``/debug/configz``, ``/debug/syncz``,
``/metrics``) are read inside their pods; with several Pilot replicas, a change is in force when every replica took
it in and every sidecar, whichever replica it is connected to, ACKed it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from e2e.config_sync import mixer_in_step, sidecar_problems
from e2e.demo_steps import OUTSIDER, ExecClientMesh
from e2e.k8s.kubectl import Kubectl, KubectlError
from e2e.l4_apps import tcp_client_arguments, tcp_client_replies, tcp_client_timeout
from e2e.pods import client_arguments, client_responses
from e2e.traffic import MeshResponse, app_body
from envoy_bootstrap.bootstrap import sidecar_node_id

__all__ = [
    "APP_NAMESPACE",
    "CONTROL_NAMESPACE",
    "DEMO_APP_DIR",
    "OUTSIDER_NAMESPACE",
    "KubeMesh",
    "KubeMeshError",
]

DEMO_APP_DIR = Path(__file__).with_name("demo")
APP_NAMESPACE = "default"
CONTROL_NAMESPACE = "istio-system"
OUTSIDER_NAMESPACE = "outsider"
PILOT_SELECTOR = "istio=pilot"
MIXER_SELECTOR = "istio=mixer"
PILOT_MONITOR = "http://127.0.0.1:15014"
MIXER_MONITOR = "http://127.0.0.1:42422"
CONTROL_CONTAINER = "discovery"  # Pilot's container; Mixer's is "mixer"
_FETCH = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
_POLL_SECONDS = 0.5
_EXEC_SECONDS = 30.0


class KubeMeshError(RuntimeError):
    """The mesh on Kubernetes did not get where a scenario needs it; the message says what was missing."""


def _workload_selector(workload: str) -> str:
    """The pod labels of a demo workload name: ``reviews-v1`` -> ``app=reviews,version=v1``, ``productpage`` ->
    ``app=productpage``."""
    app, _, version = workload.rpartition("-")
    if app and version.startswith("v") and version[1:].isdigit():
        return f"app={app},version={version}"
    return f"app={workload}"


def _resources(path: Path) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object in a YAML file (namespace ``default`` when the file names none)."""
    found: set[tuple[str, str, str]] = set()
    for document in yaml.safe_load_all(path.read_text()):
        if isinstance(document, dict) and "kind" in document:
            metadata = document.get("metadata") or {}
            found.add((str(document["kind"]), str(metadata.get("namespace", APP_NAMESPACE)), str(metadata["name"])))
    return found


@dataclass
class KubeMesh(ExecClientMesh):
    """The demo mesh on the cluster of ``kubectl``'s kubeconfig (installed and deployed by the caller: see
    ``e2e.k8s.kube_install``)."""

    kubectl: Kubectl
    applied: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    _addresses: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------------ the pods
    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The running pods (not being deleted) of ``selector`` in ``namespace``, as the API returns them."""
        found = self.kubectl.json("get", "pods", "-n", namespace, "-l", selector)["items"]
        return [
            pod
            for pod in found
            if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
        ]

    def pod(self, namespace: str, selector: str) -> dict[str, Any]:
        found = self.pods(namespace, selector)
        if len(found) != 1:
            raise KubeMeshError(f"expected one running pod of {selector} in {namespace}, found {len(found)}")
        return found[0]

    def workload_pod(self, workload: str) -> dict[str, Any]:
        if workload == OUTSIDER:
            return self.pod(OUTSIDER_NAMESPACE, f"app={OUTSIDER}")
        return self.pod(APP_NAMESPACE, _workload_selector(workload))

    @property
    def addresses(self) -> Mapping[str, str]:
        """Each demo workload's pod IP (and ``OUTSIDER``'s), read once."""
        if not self._addresses:
            for pod in self.pods(APP_NAMESPACE, "app"):
                labels = pod["metadata"]["labels"]
                name = labels["app"] if labels["app"] == "productpage" else f"{labels['app']}-{labels['version']}"
                self._addresses[name] = pod["status"]["podIP"]
            self._addresses[OUTSIDER] = self.workload_pod(OUTSIDER)["status"]["podIP"]
        return self._addresses

    def node_ids(self) -> dict[str, str]:
        """Istio's node id of every injected pod in the app namespace, by pod name."""
        return {
            pod["metadata"]["name"]: sidecar_node_id(
                workload=pod["metadata"]["name"],
                namespace=APP_NAMESPACE,
                address=pod["status"]["podIP"],
                domain_suffix="cluster.local",
            )
            for pod in self.pods(APP_NAMESPACE, "app")
        }

    # ---------------------------------------------------------------------------------- the control plane
    def _fetch(self, pod: dict[str, Any], container: str, url: str) -> str:
        return self.kubectl.exec_python(
            pod["metadata"]["namespace"], pod["metadata"]["name"], container, ["-c", _FETCH, url], timeout=_EXEC_SECONDS
        )

    def pilot_pods(self) -> list[dict[str, Any]]:
        return self.pods(CONTROL_NAMESPACE, PILOT_SELECTOR)

    def pilot_json(self, pod: dict[str, Any], path: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self._fetch(pod, CONTROL_CONTAINER, PILOT_MONITOR + path))
        return result

    async def pilot_views(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(``/debug/configz``, ``/debug/syncz``) of every running Pilot replica."""

        async def view(pod: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            configz, syncz = await asyncio.gather(
                asyncio.to_thread(self.pilot_json, pod, "/debug/configz"),
                asyncio.to_thread(self.pilot_json, pod, "/debug/syncz"),
            )
            return configz, syncz

        pods = await asyncio.to_thread(self.pilot_pods)
        return list(await asyncio.gather(*(view(pod) for pod in pods)))

    def mixer_pod(self) -> dict[str, Any]:
        return self.pod(CONTROL_NAMESPACE, MIXER_SELECTOR)

    @property
    def mixer_url(self) -> str:
        return f"http://istio-telemetry.{CONTROL_NAMESPACE}:42422"

    async def mixer_metrics(self) -> str:
        return await asyncio.to_thread(lambda: self._fetch(self.mixer_pod(), "mixer", MIXER_MONITOR + "/metrics"))

    async def mixer_configz(self) -> dict[str, Any]:
        text = await asyncio.to_thread(lambda: self._fetch(self.mixer_pod(), "mixer", MIXER_MONITOR + "/debug/configz"))
        result: dict[str, Any] = json.loads(text)
        return result

    # ------------------------------------------------------------------------------------------------ config
    async def apply(self, name: str, path: Path) -> Mapping[str, Any]:
        """``kubectl apply -f path``; objects an earlier apply of the same ``name`` made and this file no longer has
        are deleted (as replacing a file in a config directory); then until the mesh took it in."""
        before = {json.dumps(configz, sort_keys=True) for configz, _ in await self.pilot_views()}
        resources = _resources(path)
        await self.kubectl.arun("apply", "-f", str(path))
        for kind, namespace, object_name in sorted(self.applied.get(name, set()) - resources):
            await self.kubectl.arun("delete", "-n", namespace, kind, object_name, "--ignore-not-found")
        self.applied[name] = resources
        return await self.wait_synced(changed_from=before, expect=resources)

    async def wait_synced(
        self,
        *,
        changed_from: set[str] | None = None,
        expect: set[tuple[str, str, str]] = frozenset(),  # type: ignore[assignment]  # read-only default
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Until every Pilot replica's ``/debug/configz`` moved off ``changed_from`` and lists ``expect`` as
        accepted or rejected, its snapshot caught up, every injected pod's sidecar is connected to a replica and
        ACKed, and Mixer put the same config in force. The first replica's ``/debug/configz``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        problems: list[str] = ["no Pilot replica answered"]
        while loop.time() < deadline:
            try:
                problems = await self._unsynced(changed_from or set(), expect)
            except (KubectlError, KubeMeshError, ValueError) as exc:
                problems = [f"{type(exc).__name__}: {exc}"]
            if not problems:
                return (await self.pilot_views())[0][0]
            await asyncio.sleep(_POLL_SECONDS)
        raise KubeMeshError(f"mesh not synced after {timeout:g}s: " + "; ".join(problems))

    async def _unsynced(self, changed_from: set[str], expect: set[tuple[str, str, str]]) -> list[str]:
        views = await self.pilot_views()
        if not views:
            return ["no Pilot replica is running"]
        problems: list[str] = []
        streams: list[Mapping[str, Any]] = []  # every replica's: a sidecar may be connected to any of them
        for index, (configz, syncz) in enumerate(views):
            if changed_from and json.dumps(configz, sort_keys=True) in changed_from:
                problems.append(f"Pilot replica {index}: /debug/configz has not changed")
            named = {
                (r.get("kind"), r.get("namespace", APP_NAMESPACE), r.get("name"))
                for r in (*configz.get("accepted", ()), *configz.get("rejected", ()))
            }
            missing = {(k, n, o) for k, n, o in expect if k not in ("Namespace",)} - named
            if missing:
                problems.append(f"Pilot replica {index} has not read {sorted(missing)}")
            if int(syncz.get("snapshot_version", -1)) < int(configz.get("version", 0)):
                problems.append(f"Pilot replica {index}: snapshot behind its config")
            streams += syncz.get("proxies", ())
        problems += sidecar_problems(streams, await asyncio.to_thread(self.node_ids))
        if not mixer_in_step(await self.mixer_configz(), views[0][0]):
            problems.append("Mixer has not put in force the config Pilot accepted")
        return problems

    # ------------------------------------------------------------------------------------------------ traffic
    def client_responses(
        self, workload: str, url: str, count: int, headers: Mapping[str, str] | None
    ) -> list[MeshResponse]:
        pod = self.workload_pod(workload)
        container = pod["spec"]["containers"][0]["name"]  # the app's: the injector appends the sidecar
        stdout = self.kubectl.exec_python(
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            container,
            client_arguments(url, count, headers, 5.0),
            timeout=_EXEC_SECONDS + 5 * count,
        )
        return [MeshResponse(status=c, headers=h, text=t, body=app_body(t)) for c, t, h in client_responses(stdout)]

    async def tcp_replies(self, host: str, port: int, count: int) -> list[str]:
        pod = self.workload_pod("productpage")
        arguments: Sequence[str] = tcp_client_arguments(host, port, count)
        stdout = await asyncio.to_thread(
            self.kubectl.exec_python,
            APP_NAMESPACE,
            pod["metadata"]["name"],
            "productpage",
            arguments,
            timeout=tcp_client_timeout(count),
        )
        return tcp_client_replies(stdout)
