"""The local Kubernetes cluster's own smoke test (``local_kubernetes``, ``e2e/k8s/cluster.sh``), through the official
``kubernetes`` client: a Deployment of two ``python3 -m http.server`` pods, a Service, the EndpointSlices the
controller-manager makes for it, and HTTP from another pod to the Service's ClusterIP reaching both backends
(kube-proxy's iptables rules, the CNI bridge). The meshplane scenarios on Kubernetes build on a cluster that passes
this.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

from kubernetes import client

from e2e.k8s.kube_support import endpointslices, eventually, exec_in_pod, pod_status
from e2e.k8s.local_cluster import LocalCluster, localhost_image

T = TypeVar("T")
BASE_IMAGE = "meshplane-base:bookworm"
WEB_LABELS = {"app": "web"}


def container(name: str, image: str, command: list[str], port: int | None = None) -> client.V1Container:
    return client.V1Container(
        name=name,
        image=image,
        image_pull_policy="Never",  # offline: images exist only in the local Docker engine
        command=command,
        ports=[client.V1ContainerPort(container_port=port)] if port else None,
        readiness_probe=(
            client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=port), period_seconds=1) if port else None
        ),
    )


def web_deployment(image: str) -> client.V1Deployment:
    server = container("web", image, ["python3", "-m", "http.server", "8080", "--directory", "/etc"], port=8080)
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=WEB_LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=WEB_LABELS),
                spec=client.V1PodSpec(containers=[server], termination_grace_period_seconds=1),
            ),
        ),
    )


def web_service() -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector=WEB_LABELS, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )


def ready_endpoint_ips(slices: list[dict[str, Any]]) -> set[str]:
    return {
        address
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
        if endpoint.get("conditions", {}).get("ready")
        for address in endpoint["addresses"]
    }


def pod_name(pod: client.V1Pod) -> str:
    assert pod.metadata is not None and pod.metadata.name is not None
    return pod.metadata.name


FETCH_HOSTNAMES = """
import sys, urllib.request
for _ in range(int(sys.argv[2])):
    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())
"""


def test_deployment_service_endpointslices_and_clusterip_traffic(
    local_kubernetes: LocalCluster, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    image = localhost_image(BASE_IMAGE)
    api, namespace = kube_api, kube_namespace
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    started = time.monotonic()
    apps.create_namespaced_deployment(namespace, web_deployment(image))
    service = core.create_namespaced_service(namespace, web_service())
    client_pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="client"),
        spec=client.V1PodSpec(
            containers=[container("client", image, ["sleep", "infinity"])], termination_grace_period_seconds=1
        ),
    )
    core.create_namespaced_pod(namespace, client_pod)

    def web_pods_ready() -> dict[str, str] | None:
        ready = {
            pod_name(pod): pod_status(pod).pod_ip or ""
            for pod in core.list_namespaced_pod(namespace, label_selector="app=web").items
            if any(c.type == "Ready" and c.status == "True" for c in pod_status(pod).conditions or [])
        }
        return ready if len(ready) == 2 else None

    web_pods = eventually("2 ready web pods", web_pods_ready)
    rollout_seconds = time.monotonic() - started
    assert all(ip.startswith("10.244.0.") for ip in web_pods.values()), web_pods

    slice_ips = eventually(
        "EndpointSlices listing both ready web pods",
        lambda: (
            ips
            if (ips := ready_endpoint_ips(endpointslices(api, namespace, "web"))) == set(web_pods.values())
            else None
        ),
    )
    assert slice_ips == set(web_pods.values())

    eventually(
        "the client pod running",
        lambda: True if pod_status(core.read_namespaced_pod("client", namespace)).phase == "Running" else None,
    )
    assert service.spec is not None and service.spec.cluster_ip is not None
    cluster_ip = service.spec.cluster_ip
    assert cluster_ip.startswith("10.96."), cluster_ip
    # /etc/hostname in each web container is its pod's name: both backends answer through the ClusterIP (once
    # kube-proxy has programmed both: its rules can trail the EndpointSlice by a sync)
    answered: set[str] = set()

    refused: list[str] = []

    def both_backends_answered() -> bool | None:
        fetch = ["python3", "-c", FETCH_HOSTNAMES, f"http://{cluster_ip}/hostname", "10"]
        try:
            answered.update(exec_in_pod(api, namespace, "client", fetch).split())
        except AssertionError as exc:  # refused until kube-proxy has the Service's rules
            refused.append(str(exc).strip().splitlines()[-1])
            return None
        assert answered <= set(web_pods), answered
        return True if answered == set(web_pods) else None

    try:
        eventually("both web pods answering through the ClusterIP", both_backends_answered, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last refusal: {refused[-1:]}") from exc
    print(
        f"\nlocal kubernetes: up {local_kubernetes.up_seconds:.1f}s, 2 web pods ready {rollout_seconds:.1f}s "
        f"after create, ClusterIP {cluster_ip} -> {sorted(web_pods)}"
    )
