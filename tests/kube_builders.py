"""Kubernetes API objects as ``kubectl get -o json`` prints them (Kubernetes 1.27+ and 1.20), for the Kubernetes
registry's tests (``pilot.kube``). Each builder returns the whole object, server-set fields included, so that the
registry is shown to read what the API really returns and to ignore the rest."""

from __future__ import annotations

from typing import Any

NAMESPACE = "bookinfo"
NODE = "node-1"

Obj = dict[str, Any]


def _metadata(name: str, namespace: str | None, labels: dict[str, str] | None, **extra: Any) -> Obj:
    meta: Obj = {
        "creationTimestamp": "2026-11-30T09:12:44Z",
        "name": name,
        "resourceVersion": "48213",
        "uid": "7f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f",
        **extra,
    }
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return meta


def service(
    name: str = "reviews",
    *,
    namespace: str = NAMESPACE,
    cluster_ip: str = "10.96.120.15",
    ports: list[Obj] | None = None,
    selector: dict[str, str] | None = None,
    kind: str = "ClusterIP",
    version: str = "1.27",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    """A Service; ``cluster_ip="None"`` for a headless one. ``version="1.20"``: the spec 1.20 prints (no
    ``internalTrafficPolicy``)."""
    body: Obj = {
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": ports
        if ports is not None
        else [{"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080}],
        "selector": selector if selector is not None else {"app": name},
        "sessionAffinity": "None",
        "type": kind,
        **spec,
    }
    if version != "1.20":
        body.setdefault("internalTrafficPolicy", "Cluster")
    if selector == {}:
        del body["selector"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            name,
            namespace,
            {"app": name, "service": name},
            annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}\n", **(annotations or {})},
        ),
        "spec": body,
        "status": {"loadBalancer": {}},
    }


def endpoint(
    ip: str,
    pod: str,
    *,
    ready: bool | None = True,
    node: str = NODE,
    zone: str = "eu-west-1a",
    region: str = "eu-west-1",
    version: str = "1.27",
    namespace: str = NAMESPACE,
) -> Obj:
    """One endpoint of an EndpointSlice: v1's ``zone``/``nodeName`` (1.27), or v1beta1's ``topology`` (1.20);
    ``ready=None`` leaves the condition out."""
    conditions: Obj = {}
    if ready is not None:
        conditions["ready"] = ready
    entry: Obj = {
        "addresses": [ip],
        "conditions": conditions,
        "targetRef": {
            "kind": "Pod",
            "name": pod,
            "namespace": namespace,
            "uid": "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a",
        },
    }
    if version == "1.20":
        entry["topology"] = {
            "kubernetes.io/hostname": node,
            "topology.kubernetes.io/region": region,
            "topology.kubernetes.io/zone": zone,
        }
    else:
        conditions.setdefault("serving", ready is not False)
        conditions.setdefault("terminating", False)
        entry["nodeName"] = node
        entry["zone"] = zone
    return entry


def endpoint_slice(
    service_name: str = "reviews",
    endpoints: list[Obj] | None = None,
    *,
    name: str | None = None,
    namespace: str = NAMESPACE,
    ports: list[Obj] | None = None,
    version: str = "1.27",
    address_type: str = "IPv4",
) -> Obj:
    """An EndpointSlice as the slice controller writes it: ``discovery.k8s.io/v1`` (1.27) or ``v1beta1`` (1.20)."""
    return {
        "addressType": address_type,
        "apiVersion": "discovery.k8s.io/v1beta1" if version == "1.20" else "discovery.k8s.io/v1",
        "endpoints": endpoints if endpoints is not None else [],
        "kind": "EndpointSlice",
        "metadata": _metadata(
            name or f"{service_name}-x7k2p",
            namespace,
            {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": service_name,
            },
            generateName=f"{service_name}-",
            ownerReferences=[
                {
                    "apiVersion": "v1",
                    "blockOwnerDeletion": True,
                    "controller": True,
                    "kind": "Service",
                    "name": service_name,
                    "uid": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
                }
            ],
        ),
        "ports": ports if ports is not None else [{"name": "http", "port": 9080, "protocol": "TCP"}],
    }


def pod(
    name: str,
    ip: str,
    *,
    labels: dict[str, str] | None = None,
    namespace: str = NAMESPACE,
    service_account: str = "bookinfo-reviews",
    node: str = NODE,
    sidecar: bool = True,
    ready: bool = True,
    phase: str = "Running",
    container_ports: list[Obj] | None = None,
) -> Obj:
    """A running pod of a Deployment, with Istio's injected labels and ``istio-proxy`` container when ``sidecar``."""
    replica_set = name.rsplit("-", 1)[0]  # reviews-v1-7d8f9c6b5-abcde: ReplicaSet reviews-v1-7d8f9c6b5
    all_labels = {
        "pod-template-hash": replica_set.rsplit("-", 1)[-1],
        **(labels if labels is not None else {"app": "reviews", "version": "v1"}),
    }
    containers: list[Obj] = [
        {
            "image": "docker.io/istio/examples-bookinfo-reviews-v1:1.17.0",
            "imagePullPolicy": "IfNotPresent",
            "name": "app",
            "ports": container_ports if container_ports is not None else [{"containerPort": 9080, "protocol": "TCP"}],
        }
    ]
    if sidecar:
        all_labels["security.istio.io/tlsMode"] = "istio"
        all_labels["service.istio.io/canonical-name"] = all_labels.get("app", name)
        containers.append(
            {
                "args": ["proxy", "sidecar"],
                "image": "meshplane:latest",
                "name": "istio-proxy",
                "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
            }
        )
    condition = "True" if ready else "False"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(
            name,
            namespace,
            all_labels,
            generateName=replica_set + "-",
            ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set, "controller": True}],
        ),
        "spec": {
            "containers": containers,
            "dnsPolicy": "ClusterFirst",
            "nodeName": node,
            "restartPolicy": "Always",
            "serviceAccount": service_account,
            "serviceAccountName": service_account,
        },
        "status": {
            "conditions": [
                {"lastTransitionTime": "2026-11-30T09:12:50Z", "status": "True", "type": "Initialized"},
                {"lastTransitionTime": "2026-11-30T09:12:58Z", "status": condition, "type": "Ready"},
                {"lastTransitionTime": "2026-11-30T09:12:58Z", "status": condition, "type": "ContainersReady"},
                {"lastTransitionTime": "2026-11-30T09:12:44Z", "status": "True", "type": "PodScheduled"},
            ],
            "hostIP": "172.18.0.2",
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "qosClass": "BestEffort",
            "startTime": "2026-11-30T09:12:44Z",
        },
    }


def node(name: str = NODE, *, region: str = "eu-west-1", zone: str = "eu-west-1a", subzone: str = "") -> Obj:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if region:
        labels["topology.kubernetes.io/region"] = region
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    if subzone:
        labels["topology.istio.io/subzone"] = subzone
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _metadata(name, None, labels),
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {"addresses": [{"address": "172.18.0.2", "type": "InternalIP"}]},
    }


def namespace(name: str = NAMESPACE, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(name, None, {"kubernetes.io/metadata.name": name, **(labels or {})}),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
