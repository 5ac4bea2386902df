"""The sidecar injector against the real API server: ``sidecar-injector`` runs on the host (its serving certificate
from a CA directory made here, its caBundle written by the injector itself), a MutatingWebhookConfiguration of its
own calls it by ``url:`` on the node's address (10.200.0.1, which the apiserver reaches), scoped by
namespaceSelector to this test's namespaces only (other suites share the cluster). A pod in a namespace labelled
``istio-injection=enabled`` is created with the init and sidecar containers, volumes, annotations and labels; a pod
in an unlabelled namespace is created untouched unless labelled ``sidecar.istio.io/inject: "true"``; a pod asking
for what meshplane cannot do is not created, and the API server's error carries the injector's message."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from citadel.ca_dir import load_or_create_ca
from e2e.k8s.kube_support import eventually
from e2e.k8s.local_cluster import LocalCluster
from injector.webhook_config import webhook_configuration

NODE_ADDRESS = "10.200.0.1"  # e2e/k8s/cluster.sh's node IP: the apiserver dials the webhook here
IMAGE = "localhost/meshplane:latest"
SCOPE_LABEL = "meshplane-test"


@dataclass(frozen=True)
class Injection:
    api: client.ApiClient
    enabled: str  # a namespace labelled istio-injection=enabled
    plain: str  # a namespace without that label
    pilot_ip: str  # the ClusterIP of the (selector-less) Pilot Service the injector was given


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((NODE_ADDRESS, 0))
        return int(sock.getsockname()[1])


def _namespace(core: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))


def _ca_bundle(admission: client.AdmissionregistrationV1Api, name: str) -> str | None:
    config = admission.read_mutating_webhook_configuration(name)
    bundles = {str(hook.client_config.ca_bundle or "") for hook in config.webhooks or ()}
    return bundles.pop() if len(bundles) == 1 and "" not in bundles else None


@pytest.fixture
def injection(local_kubernetes: LocalCluster, kube_api: client.ApiClient, tmp_path: Path) -> Iterator[Injection]:
    suffix = uuid.uuid4().hex[:6]
    scope = f"inject-{suffix}"
    enabled, plain, config_name = f"inject-{suffix}-on", f"inject-{suffix}-off", f"inject-{suffix}"
    core = client.CoreV1Api(kube_api)
    admission = client.AdmissionregistrationV1Api(kube_api)
    ca_state = load_or_create_ca(tmp_path / "ca", "cluster.local")
    port = _free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        _namespace(core, enabled, {"istio-injection": "enabled", SCOPE_LABEL: scope})
        _namespace(core, plain, {SCOPE_LABEL: scope})
        pilot = core.create_namespaced_service(
            enabled,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="pilot"),
                spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="grpc-xds", port=15010)]),
            ),
        )
        url = {"url": f"https://{NODE_ADDRESS}:{port}/inject"}
        body = webhook_configuration(url, name=config_name, namespace_scope={SCOPE_LABEL: scope})
        admission.create_mutating_webhook_configuration(body)  # type: ignore[arg-type]  # a dict is sent as is; caBundle empty: the injector sets it
        command = [sys.executable, "-m", "injector", "--ca-dir", str(tmp_path / "ca"), "--image", IMAGE]
        command += ["--kubeconfig", str(local_kubernetes.kubeconfig), "--address", f"{NODE_ADDRESS}:{port}"]
        command += ["--webhook-config", config_name, "--pilot-service", f"pilot.{enabled}:15010"]
        command += ["--citadel-service", f"citadel.{enabled}:15012", "--mixer-service", ""]
        command += ["--ca-poll-interval", "0.5"]
        with (tmp_path / "injector.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        bundle = eventually("the injector writing the caBundle", lambda: _ca_bundle(admission, config_name), 20)
        assert base64.b64decode(bundle).decode().count("BEGIN CERTIFICATE") == len(ca_state.trust_bundle)
        assert pilot.spec is not None and pilot.spec.cluster_ip
        yield Injection(api=kube_api, enabled=enabled, plain=plain, pilot_ip=pilot.spec.cluster_ip)
    finally:
        _delete(admission.delete_mutating_webhook_configuration, config_name)
        _delete(core.delete_namespace, enabled)
        _delete(core.delete_namespace, plain)
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
            print((tmp_path / "injector.log").read_text()[-3000:])


def _delete(delete: Callable[[str], object], name: str) -> None:
    try:
        delete(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _pod(name: str, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web", "version": "v1"}, "annotations": annotations},
        "spec": {
            "containers": [{"name": "web", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def _create(injection: Injection, namespace: str, pod: Any) -> dict[str, Any]:
    core = client.CoreV1Api(injection.api)
    created = core.create_namespaced_pod(namespace, pod)
    result: dict[str, Any] = injection.api.sanitize_for_serialization(created)  # type: ignore[no-untyped-call]
    return result


def _names(items: list[dict[str, Any]] | None) -> list[str]:
    return [item["name"] for item in items or ()]


def test_pod_in_an_enabled_namespace_is_injected(injection: Injection) -> None:
    pod = _create(injection, injection.enabled, _pod("web"))
    spec, meta = pod["spec"], pod["metadata"]
    assert _names(spec["containers"]) == ["web", "istio-proxy"]
    assert _names(spec["initContainers"]) == ["istio-init"]
    assert [v["name"] for v in spec["volumes"] if v["name"].startswith("istio")] == [
        "istio-envoy",
        "istio-token",
        "istiod-ca-cert",
    ]
    init, sidecar = spec["initContainers"][0], spec["containers"][1]
    assert init["command"][:4] == ["meshplane", "capture", "install", "-p"] and "--redirect-dns" in init["command"]
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    assert (init["securityContext"]["runAsUser"], init["securityContext"]["runAsNonRoot"]) == (0, False)
    args = sidecar["args"]
    assert args[args.index("--pilot") + 1] == f"{injection.pilot_ip}:15010"  # the ClusterIP: no cluster DNS needed
    assert args[args.index("--citadel") + 1] == f"citadel.{injection.enabled}.svc.cluster.local:15012"  # no Service
    assert "--mixer" not in args
    assert args[args.index("--dns-upstreams-from") + 1] == "/etc/resolv.conf"  # the kubelet's choice for the pod
    labels = ["app", "security.istio.io/tlsMode", "service.istio.io/canonical-name"]
    labels += ["service.istio.io/canonical-revision", "version"]
    expected_labels = ",".join(f"{key}=$(ISTIO_LABEL_{index})" for index, key in enumerate(labels))
    assert args[args.index("--labels") + 1] == expected_labels  # values from the downward API
    assert (sidecar["securityContext"]["runAsUser"], sidecar["securityContext"]["runAsGroup"]) == (1337, 1337)
    token = next(v for v in spec["volumes"] if v["name"] == "istio-token")["projected"]["sources"][0]
    assert token["serviceAccountToken"]["audience"] == "istio-ca"
    assert meta["labels"]["security.istio.io/tlsMode"] == "istio"
    assert meta["labels"]["service.istio.io/canonical-name"] == "web"
    assert meta["labels"]["service.istio.io/canonical-revision"] == "v1"
    status = json.loads(meta["annotations"]["sidecar.istio.io/status"])
    assert status["containers"] == ["istio-proxy"] and status["initContainers"] == ["istio-init"]
    assert meta["annotations"]["kubectl.kubernetes.io/default-container"] == "web"


def test_pod_in_an_unlabelled_namespace_is_untouched(injection: Injection) -> None:
    pod = _create(injection, injection.plain, _pod("web"))
    assert _names(pod["spec"]["containers"]) == ["web"]
    assert pod["spec"].get("initContainers") is None
    assert "sidecar.istio.io/status" not in (pod["metadata"].get("annotations") or {})


def test_pod_labelled_inject_true_is_injected_in_an_unlabelled_namespace(injection: Injection) -> None:
    pod = _create(injection, injection.plain, _pod("asks", labels={"app": "asks", "sidecar.istio.io/inject": "true"}))
    assert _names(pod["spec"]["containers"]) == ["web", "istio-proxy"]


def test_pod_annotated_inject_false_is_untouched_in_an_enabled_namespace(injection: Injection) -> None:
    pod = _create(injection, injection.enabled, _pod("optout", annotations={"sidecar.istio.io/inject": "false"}))
    assert _names(pod["spec"]["containers"]) == ["web"]


def test_pod_asking_for_tproxy_is_refused_with_the_reason(injection: Injection) -> None:
    with pytest.raises(ApiException) as refused:
        _create(
            injection, injection.enabled, _pod("tproxy", annotations={"sidecar.istio.io/interceptionMode": "TPROXY"})
        )
    assert refused.value.status == 403
    message = json.loads(refused.value.body or "{}")["message"]
    assert "sidecar.istio.io/interceptionMode: TPROXY is not supported by meshplane yet (REDIRECT only)" in message
    with pytest.raises(ApiException):
        client.CoreV1Api(injection.api).read_namespaced_pod("tproxy", injection.enabled)
