"""Kubernetes objects (as the API returns them, 1.27+ and 1.20) -> the mesh model's services, workloads, instances."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from pilot.config.origin import Origin
from pilot.config.types import ConfigKey, ConfigMeta, Protocol, Resolution, ServicePort, WorkloadEntry
from pilot.kube import KINDS, KubernetesRegistry
from pilot.model.registry import RegistryState
from pilot.model.types import Endpoint, Service
from tests import kube_builders as kb

VERSIONS = ["1.27", "1.20"]
REVIEWS = ConfigKey(kind="Service", namespace="bookinfo", name="reviews")
POD_V1 = ConfigKey(kind="Pod", namespace="bookinfo", name="reviews-v1-7d8f9c6b5-abcde")
POD_V2 = ConfigKey(kind="Pod", namespace="bookinfo", name="reviews-v2-5b8d7f6c4-fghij")


def registry(*objects: Mapping[str, Any]) -> KubernetesRegistry:
    """A registry holding these objects (each list's kind read from its object, as ``kubectl get -o json`` has it)."""
    kube = KubernetesRegistry()
    for kind in KINDS:
        kube.replace(kind, [o for o in objects if o["kind"] == kind])
    return kube


def state(*objects: Mapping[str, Any]) -> RegistryState:
    return registry(*objects).state({})


def only_service(registry_state: RegistryState) -> Service:
    assert len(registry_state.services) == 1
    return registry_state.services[0]


def labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted(pod["metadata"]["labels"].items())))


def bookinfo(version: str) -> list[dict[str, Any]]:
    v1 = kb.pod(POD_V1.name, "10.244.0.12")
    v2 = kb.pod(POD_V2.name, "10.244.0.13", labels={"app": "reviews", "version": "v2"}, ready=False)
    endpoints = [
        kb.endpoint("10.244.0.12", POD_V1.name, version=version),
        kb.endpoint("10.244.0.13", POD_V2.name, ready=False, version=version),
    ]
    return [kb.service(version=version), kb.endpoint_slice(endpoints=endpoints, version=version), v1, v2, kb.node()]


@pytest.mark.parametrize("version", VERSIONS)
def test_service_with_ready_endpoint_and_sidecar_pods(version: str) -> None:
    objects = bookinfo(version)
    v1, v2 = objects[2], objects[3]
    got = state(*objects)
    service = only_service(got)
    assert service == Service(
        host="reviews.bookinfo.svc.cluster.local",
        namespace="bookinfo",
        ports=(ServicePort(number=9080, name="http", protocol=Protocol.HTTP, target_port=9080),),
        resolution=Resolution.STATIC,
        mesh_internal=True,
        endpoints=MappingProxyType(
            {
                9080: (  # the unready v2 pod is no endpoint
                    Endpoint(
                        address="10.244.0.12",
                        port=9080,
                        labels=labels(v1),
                        workload=POD_V1,
                        service_account="bookinfo-reviews",
                        locality="eu-west-1/eu-west-1a",
                    ),
                )
            }
        ),
        source=REVIEWS,
        addresses=("10.96.120.15",),
        selector=MappingProxyType({"app": "reviews"}),  # which gateway pods it fronts (gateway_target_ports)
    )
    assert got.workloads == tuple(
        WorkloadEntry(
            meta=ConfigMeta(key=key, origin=Origin(reference=f"Pod/bookinfo/{key.name}"), labels=labels(pod)),
            address=ip,
            labels=labels(pod),
            locality="eu-west-1/eu-west-1a",
            service_account="bookinfo-reviews",
            workload_name=workload,  # the Deployment's name, as Istio's metrics name the workload
        )
        for key, pod, ip, workload in (
            (POD_V1, v1, "10.244.0.12", "reviews-v1"),
            (POD_V2, v2, "10.244.0.13", "reviews-v2"),
        )
    )
    # both pods serve the port, ready or not (Istio's proxy service targets follow the selector)
    assert {
        key: [(i.service.host, i.port.number, i.target_port, i.workload.meta.key) for i in v]
        for key, v in got.instances.items()
    } == {
        POD_V1: [("reviews.bookinfo.svc.cluster.local", 9080, 9080, POD_V1)],
        POD_V2: [("reviews.bookinfo.svc.cluster.local", 9080, 9080, POD_V2)],
    }
    assert all(i.service is service and i.workload in got.workloads for v in got.instances.values() for i in v)


def test_headless_service_has_no_vip_and_resolution_none() -> None:
    got = state(
        kb.service("ratings", cluster_ip="None", selector={"app": "ratings"}),
        kb.endpoint_slice("ratings", [kb.endpoint("10.244.0.20", "ratings-v1-6d5c4b3a2-klmno")]),
        kb.pod("ratings-v1-6d5c4b3a2-klmno", "10.244.0.20", labels={"app": "ratings"}, service_account="ratings"),
    )
    service = only_service(got)
    assert (service.host, service.addresses, service.resolution) == (
        "ratings.bookinfo.svc.cluster.local",
        (),
        Resolution.NONE,
    )
    assert [(e.address, e.port, e.service_account) for e in service.endpoints[9080]] == [
        ("10.244.0.20", 9080, "ratings")
    ]


def test_ports_named_target_port_and_protocols() -> None:
    ports = [
        {"name": "http-web", "port": 80, "protocol": "TCP", "targetPort": "web"},  # named: the container port
        {"name": "metrics", "port": 9090, "protocol": "TCP", "appProtocol": "http", "targetPort": 9090},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},  # not proxied
        {"name": "grpc", "port": 7070, "protocol": "TCP"},  # no targetPort: the port itself
    ]
    slice_ports = [
        {"name": "http-web", "port": 8080, "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "protocol": "TCP", "appProtocol": "http"},
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "grpc", "port": 7070, "protocol": "TCP"},
    ]
    container_ports = [
        {"containerPort": 8080, "name": "web", "protocol": "TCP"},
        {"containerPort": 9090, "protocol": "TCP"},
    ]
    kube = registry(
        kb.service("web", ports=ports),
        kb.endpoint_slice("web", [kb.endpoint("10.244.0.30", "web-1-abc")], ports=slice_ports),
        kb.pod("web-1-abc", "10.244.0.30", labels={"app": "web"}, container_ports=container_ports),
    )
    got = kube.state({})
    service = only_service(got)
    assert service.ports == (
        ServicePort(number=80, name="http-web", protocol=Protocol.HTTP, target_port=None),
        ServicePort(number=9090, name="metrics", protocol=Protocol.HTTP, target_port=9090),
        ServicePort(number=7070, name="grpc", protocol=Protocol.GRPC, target_port=None),
    )
    assert {number: [(e.address, e.port) for e in eps] for number, eps in service.endpoints.items()} == {
        80: [("10.244.0.30", 8080)],  # the slice's resolved port
        7070: [("10.244.0.30", 7070)],
        9090: [("10.244.0.30", 9090)],
    }
    pod_key = ConfigKey(kind="Pod", namespace="bookinfo", name="web-1-abc")
    assert [(i.port.number, i.target_port) for i in got.instances[pod_key]] == [(80, 8080), (9090, 9090), (7070, 7070)]
    assert kube.notes == (
        "Service bookinfo/web: spec.ports[2]: UDP port 53 is not proxied (Istio's sidecars capture TCP only): left "
        "out of the mesh, its traffic goes to the pods directly",
    )


def test_pod_without_the_named_port_serves_no_instance() -> None:
    got = state(
        kb.service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}]),
        kb.pod("web-1-abc", "10.244.0.30", labels={"app": "web"}),
    )
    assert got.instances == {}
    assert len(got.workloads) == 1


@pytest.mark.parametrize(
    ("pod_overrides", "is_workload"),
    [
        ({}, True),
        ({"sidecar": False}, False),
        ({"phase": "Succeeded"}, False),
        ({"ip": ""}, False),
    ],
    ids=["sidecar", "no-sidecar", "finished", "no-ip-yet"],
)
def test_which_pods_are_workloads(pod_overrides: dict[str, Any], is_workload: bool) -> None:
    arguments: dict[str, Any] = {"ip": "10.244.0.12", **pod_overrides}
    ip = arguments.pop("ip")
    got = state(
        kb.service(),
        kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", POD_V1.name)]),
        kb.pod(POD_V1.name, ip, **arguments),
    )
    assert [w.meta.key for w in got.workloads] == ([POD_V1] if is_workload else [])
    # a pod without sidecar is still the endpoint, plaintext (no workload: no auto mTLS)
    assert [e.workload for e in only_service(got).endpoints[9080]] == [POD_V1 if is_workload else None]


def test_host_network_pod_is_no_workload() -> None:
    host_pod = kb.pod(POD_V1.name, "172.18.0.2")
    host_pod["spec"]["hostNetwork"] = True
    assert state(host_pod).workloads == ()


def test_endpoint_without_ready_condition_is_ready_and_without_pod_has_no_labels() -> None:
    entry = kb.endpoint("10.0.0.9", "ignored", ready=None)
    del entry["targetRef"]
    got = state(kb.service("legacy", selector={}), kb.endpoint_slice("legacy", [entry]))
    assert only_service(got).endpoints[9080] == (
        Endpoint(address="10.0.0.9", port=9080, labels=MappingProxyType({}), locality=""),
    )


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        pytest.param(
            [kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", POD_V1.name, version="1.20")], version="1.20")],
            "eu-west-1/eu-west-1a",
            id="v1beta1-topology",
        ),
        pytest.param(
            [kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", POD_V1.name)])], "", id="v1-zone-without-region"
        ),
        pytest.param(
            [kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", POD_V1.name)]), kb.node(subzone="rack-7")],
            "eu-west-1/eu-west-1a/rack-7",
            id="node-labels",
        ),
        pytest.param(
            [kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", POD_V1.name)]), kb.node(zone="")],
            "eu-west-1",
            id="node-region-only",
        ),
    ],
)
def test_endpoint_locality(objects: list[dict[str, Any]], expected: str) -> None:
    got = state(kb.service(), kb.pod(POD_V1.name, "10.244.0.12"), *objects)
    assert [e.locality for e in only_service(got).endpoints[9080]] == [expected]


def test_pod_locality_label_overrides_the_node() -> None:
    pod = kb.pod(POD_V1.name, "10.244.0.12")
    pod["metadata"]["labels"]["istio-locality"] = "us-east.us-east-1b.rack-2"
    got = state(kb.service(), kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", POD_V1.name)]), pod, kb.node())
    assert [e.locality for e in only_service(got).endpoints[9080]] == ["us-east/us-east-1b/rack-2"]
    assert got.workloads[0].locality == "us-east/us-east-1b/rack-2"


def test_slices_of_other_services_and_namespaces_are_not_mixed_in() -> None:
    got = state(
        kb.service(),
        kb.endpoint_slice("ratings", [kb.endpoint("10.244.0.20", "ratings-1")]),
        kb.endpoint_slice("reviews", [kb.endpoint("10.1.0.5", "reviews-1", namespace="other")], namespace="other"),
        kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", POD_V1.name)], name="reviews-aaaaa"),
        kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.14", "reviews-v3-1")], name="reviews-bbbbb"),
    )
    assert [e.address for e in only_service(got).endpoints[9080]] == ["10.244.0.12", "10.244.0.14"]


@pytest.mark.parametrize(
    ("objects", "note"),
    [
        pytest.param(
            [kb.service("db", kind="ExternalName", cluster_ip="", externalName="db.example.com")],
            "Service bookinfo/db: spec.type: ExternalName is not supported by meshplane yet (left out)",
            id="external-name",
        ),
        pytest.param(
            [kb.service(), kb.endpoint_slice(address_type="FQDN", endpoints=[kb.endpoint("db.example.com", "x")])],
            "EndpointSlice bookinfo/reviews-x7k2p: addressType: FQDN is not supported by meshplane yet (left out)",
            id="fqdn-slice",
        ),
        pytest.param(
            [kb.service(internalTrafficPolicy="Local")],
            "Service bookinfo/reviews: spec.internalTrafficPolicy: Local is not supported by meshplane yet (every "
            "endpoint of the Service is used, on any node)",
            id="internal-traffic-policy-local",
        ),
        pytest.param(
            [kb.service(annotations={"networking.istio.io/exportTo": "."})],
            "Service bookinfo/reviews: metadata.annotations.networking.istio.io/exportTo: not supported by meshplane "
            "yet (the Service is visible to every namespace)",
            id="export-to-annotation",
        ),
        pytest.param(
            [kb.service(externalIPs=["192.0.2.10"])],
            "Service bookinfo/reviews: spec.externalIPs: not routed by the mesh (as in Istio's sidecars); only the "
            "ClusterIP is a VIP",
            id="external-ips",
        ),
    ],
)
def test_left_out_with_a_note(objects: list[dict[str, Any]], note: str) -> None:
    assert registry(*objects).notes == (note,)


def test_domain_suffix() -> None:
    kube = KubernetesRegistry(domain_suffix="mesh.example")
    kube.replace("Service", [kb.service()])
    assert [s.host for s in kube.state({}).services] == ["reviews.bookinfo.svc.mesh.example"]
