"""The list+watch of ``meshplane.kube_watch`` against a real API server (Kubernetes 1.20 here, any with
``MESHPLANE_KUBECONFIG``): relist on ``410 Gone``, reconnects that lose no event, bookmarks that advance the
version, a kind not served; and what Pilot makes of it: a VirtualService created with the client in Pilot's
config store (an invalid one rejected naming the object), a Service, Pod and EndpointSlice in the Kubernetes
registry, and ``pilot --kubeconfig`` serving a Service of the cluster as an Envoy cluster over ADS.

How 410 is made to happen: a watch of core ``Event`` objects from ``resourceVersion=1``. The API server keeps no
watch cache for Events (``--watch-cache-sizes`` default: events 0), so their watches go to etcd, which answers a
compacted revision with an ERROR event of code 410 ("too old"). The API server compacts etcd every 5 minutes, each
time up to the revision of the previous compaction, so revision 1 is compacted ~10 minutes after a cluster starts;
on a younger local cluster the test compacts etcd itself through its loopback HTTP gateway (what the API server
would do a few minutes later), and skips, saying why, where neither holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from kubernetes import client

from e2e.k8s.kube_support import eventually
from e2e.k8s.local_cluster import LocalCluster
from meshplane import names
from meshplane.kube_api import KubeAccess, watch_api_client
from meshplane.kube_kinds import ApiKind, core_kind
from meshplane.kube_watch import Changed, Delivery, Listed, Unavailable, Watcher, WatchOptions
from pilot.config import ConfigSink, ConfigStore, StoreChange
from pilot.config.types import ConfigKey
from pilot.generate.registry import CLUSTER_TYPE
from pilot.kube import KubernetesRegistry
from pilot.kube.api_resources import CONFIG_KINDS, ISTIO_KINDS_NOT_READ, REGISTRY_KINDS
from pilot.kube.config_source import KubernetesConfigSource
from pilot.kube.registry_feed import RegistryFeed
from pilot.kube.sources import store_sources

CONFIG_MAPS = core_kind("ConfigMap", "configmaps")
EVENTS = core_kind("Event", "events")
ETCD_GATEWAY = "http://127.0.0.1:2379"
ISTIO = "networking.istio.io"


@pytest.fixture
def api(local_kubernetes: LocalCluster) -> Iterator[client.ApiClient]:
    api_client = watch_api_client(KubeAccess(kubeconfig=local_kubernetes.kubeconfig), 8)
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]  # untyped upstream


def _namespace(api: client.ApiClient) -> str:
    name = f"watch-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = _namespace(api)
    yield name
    client.CoreV1Api(api).delete_namespace(name)


@pytest.fixture
def other_namespace(api: client.ApiClient) -> Iterator[str]:
    name = _namespace(api)
    yield name
    client.CoreV1Api(api).delete_namespace(name)


class Collected:
    """A watcher's deliveries, as the watch thread hands them over."""

    def __init__(self) -> None:
        self.items: queue.Queue[Delivery] = queue.Queue()
        self.seen: list[Delivery] = []

    def __call__(self, delivery: Delivery) -> None:
        self.items.put(delivery)

    def drain(self) -> list[Delivery]:
        while True:
            try:
                self.seen.append(self.items.get_nowait())
            except queue.Empty:
                return self.seen

    def listing(self) -> Listed | None:
        return next((d for d in self.drain() if isinstance(d, Listed)), None)

    def changed_names(self, prefix: str, types: tuple[str, ...] = ("ADDED",)) -> list[str]:
        """The names of the objects events were delivered for, of those named ``prefix...`` (the namespace's own
        ``kube-root-ca.crt``, which the controller-manager writes at any time, is not the test's)."""
        return [
            name
            for d in self.drain()
            if isinstance(d, Changed) and d.event.type in types
            if (name := d.event.object["metadata"]["name"]).startswith(prefix)
        ]


def _config_map(api: client.ApiClient, namespace: str, name: str) -> str:
    created = client.CoreV1Api(api).create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"n": name})
    )
    assert created.metadata is not None and created.metadata.resource_version is not None
    return created.metadata.resource_version


def _watching(api: client.ApiClient, kind: ApiKind, options: WatchOptions) -> tuple[Watcher, Collected]:
    collected = Collected()
    watcher = Watcher(api, kind, collected, options)
    watcher.start()
    return watcher, collected


def _stop(watcher: Watcher) -> None:
    started = time.monotonic()
    watcher.stop()
    assert watcher.join(5.0), "the watch thread did not end"
    assert time.monotonic() - started < 2.0, "stop() took too long"


# ------------------------------------------------------------------------------------------------ 410 Gone


def _events_from_one_expire(api: client.ApiClient) -> bool:
    method, url, headers, _, _ = api.param_serialize(
        "GET",
        "/api/v1/events",
        query_params=[("watch", "true"), ("resourceVersion", "1"), ("timeoutSeconds", "1")],
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers)
    try:
        body: bytes = response.response.data
    finally:
        response.response.release_conn()
    first = body.split(b"\n", 1)[0]
    return response.status == 410 or (bool(first) and json.loads(first).get("object", {}).get("code") == 410)


def _compact_etcd() -> bool:
    """Compact the local cluster's etcd to its current revision (its v3 HTTP gateway on loopback)."""
    try:
        with urllib.request.urlopen(f"{ETCD_GATEWAY}/v3/maintenance/status", b"{}", timeout=2) as answer:
            revision = json.load(answer)["header"]["revision"]
        body = json.dumps({"revision": revision}).encode()
        with urllib.request.urlopen(f"{ETCD_GATEWAY}/v3/kv/compaction", body, timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture
def compacted_first_revision(api: client.ApiClient) -> None:
    """A watch of Events from resourceVersion 1 is answered 410 (see the module's docstring)."""
    if not _events_from_one_expire(api) and not (_compact_etcd() and _events_from_one_expire(api)):
        pytest.skip("revision 1 is not compacted yet (cluster younger than ~10 min) and etcd is not reachable here")


@pytest.mark.usefixtures("compacted_first_revision")
def test_watch_from_an_expired_version_relists(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="made-by-the-test"),
            involved_object=client.V1ObjectReference(kind="ConfigMap", name="any", namespace=namespace),
            reason="Testing",
            message="listed by the relist",
        ),
    )
    options = WatchOptions(namespace=namespace, resume_from="1", timeout_seconds=30)
    watcher, collected = _watching(api, EVENTS, options)
    try:
        listed = eventually(
            "the relist after 410", lambda: next((d for d in collected.drain() if isinstance(d, Listed)), None)
        )
        assert listed.relist and watcher.relists == 1
        assert [o["metadata"]["name"] for o in listed.diff.added] == ["made-by-the-test"]
        assert [o["metadata"]["name"] for o in listed.objects] == ["made-by-the-test"]
        assert int(watcher.resource_version or 0) > 1
    finally:
        _stop(watcher)


# ------------------------------------------------------------------------------------------------ reconnects


def test_reconnects_lose_no_event(api: client.ApiClient, namespace: str) -> None:
    """The server ends every watch after a second and the test cuts the connection meanwhile: each of the objects
    created throughout is delivered once, in order, with no relist."""
    watcher, collected = _watching(api, CONFIG_MAPS, WatchOptions(namespace=namespace, timeout_seconds=1))
    cutting = threading.Event()

    def cut_connections() -> None:
        while not cutting.wait(0.23):
            watcher.interrupt()

    cutter = threading.Thread(target=cut_connections, daemon=True)
    try:
        eventually("the first list", collected.listing)
        cutter.start()
        created = [f"cm-{i:02d}" for i in range(40)]
        for name in created:
            _config_map(api, namespace, name)
            time.sleep(0.1)
        eventually(
            "every object delivered", lambda: True if len(collected.changed_names("cm-")) >= len(created) else None
        )
        time.sleep(1.5)  # a watch resumed from an older version would deliver some again
        assert collected.changed_names("cm-") == created
        assert watcher.relists == 0
        assert watcher.watches > 5, watcher.watches
    finally:
        cutting.set()
        _stop(watcher)


def test_bookmarks_advance_the_version(api: client.ApiClient, namespace: str, other_namespace: str) -> None:
    """Nothing changes in the namespace watched; the other namespace's writes move the kind's version, which
    bookmarks carry (the next watch starts there, not at the list's)."""
    watcher, collected = _watching(api, CONFIG_MAPS, WatchOptions(namespace=namespace, timeout_seconds=4))
    try:
        listing = eventually(
            "the first list", lambda: next((d for d in collected.drain() if isinstance(d, Listed)), None)
        )
        latest = max(int(_config_map(api, other_namespace, f"elsewhere-{i}")) for i in range(3))
        eventually(
            "a bookmark at or past the other namespace's writes",
            lambda: True if watcher.bookmarks and int(watcher.resource_version or 0) >= latest else None,
            timeout=15,
        )
        assert int(watcher.resource_version or 0) > int(listing.resource_version)
        assert collected.changed_names("", ("ADDED", "MODIFIED", "DELETED")) in ([], ["kube-root-ca.crt"])
    finally:
        _stop(watcher)


def test_kind_not_served_is_reported_once(api: client.ApiClient) -> None:
    kind = ApiKind(kind="NoSuchKind", group="watch.meshplane.test", plural="nosuchkinds", versions=("v1",))
    watcher, collected = _watching(api, kind, WatchOptions(rediscover_seconds=0.2))
    try:
        eventually("Unavailable", lambda: True if collected.drain() else None)
        time.sleep(1.0)  # discovery retried several times meanwhile
        assert [type(d) for d in collected.drain()] == [Unavailable]
    finally:
        _stop(watcher)


# ------------------------------------------------------------------------------------------------ Pilot's sources


def _virtual_service(name: str, weight: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{ISTIO}/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {"hosts": [name], "http": [{"route": [{"destination": {"host": name}, "weight": weight}]}]},
    }


async def test_virtual_services_reach_the_config_store(api: client.ApiClient, namespace: str) -> None:
    store = ConfigStore(sources=store_sources(kubernetes=True, files=False))
    changes: list[StoreChange] = []
    source = KubernetesConfigSource(api, ConfigSink(store, changes.append), kinds=CONFIG_KINDS + ISTIO_KINDS_NOT_READ)
    custom = client.CustomObjectsApi(api)

    def create(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created = custom.create_namespaced_custom_object(ISTIO, "v1beta1", namespace, "virtualservices", body)
        assert isinstance(created, dict)
        return created

    await source.load_initial()
    watching = asyncio.create_task(source.watch())
    try:
        created = await asyncio.to_thread(create, namespace, _virtual_service("reviews", 100))
        key = ConfigKey(kind="VirtualService", namespace=namespace, name="reviews")
        await _until(lambda: key in store.accepted)
        version = created["metadata"]["resourceVersion"]
        assert str(store.accepted[key].meta.origin) == f"VirtualService/{namespace}/reviews@{version}"
        await asyncio.to_thread(create, namespace, _virtual_service("bad", -5))
        bad_key = ConfigKey(kind="VirtualService", namespace=namespace, name="bad")
        await _until(lambda: any(r.key == bad_key for r in store.rejections))
        (rejection,) = [r for r in store.rejections if r.key == bad_key]
        assert str(rejection.origin).startswith(f"VirtualService/{namespace}/bad@")
        assert [e.path for e in rejection.errors] == ["spec.http[0].route[0].weight"]
        await asyncio.to_thread(
            custom.delete_namespaced_custom_object, ISTIO, "v1beta1", namespace, "virtualservices", "reviews"
        )
        await _until(lambda: key not in store.accepted)
    finally:
        source.stop()
        await asyncio.wait_for(watching, 10)


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def _web_pod(name: str, image: str) -> client.V1Pod:
    labels = {"app": "web", "security.istio.io/tlsMode": "istio"}  # as injection labels a sidecar pod
    server = client.V1Container(
        name="web",
        image=image,
        image_pull_policy="Never",
        command=["python3", "-m", "http.server", "8080"],
        ports=[client.V1ContainerPort(container_port=8080, name="http-web")],
        readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=8080), period_seconds=1),
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[server], termination_grace_period_seconds=1, service_account_name="default"),
    )


def _web_service(name: str = "web") -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(
            selector={"app": "web"}, ports=[client.V1ServicePort(name="http", port=80, target_port="http-web")]
        ),
    )


async def test_service_pod_and_endpoint_slice_reach_the_registry(api: client.ApiClient, namespace: str) -> None:
    from e2e.k8s.local_cluster import localhost_image

    registry = KubernetesRegistry()
    changes: list[Any] = []
    feed = RegistryFeed(api, registry, changes.append, kinds=tuple(REGISTRY_KINDS.values()))
    await feed.load_initial()
    watching = asyncio.create_task(feed.watch())
    core = client.CoreV1Api(api)
    host = f"web.{namespace}.svc.cluster.local"
    try:
        service = await asyncio.to_thread(core.create_namespaced_service, namespace, _web_service())
        await asyncio.to_thread(
            core.create_namespaced_pod, namespace, _web_pod("web-1", localhost_image("meshplane-base:bookworm"))
        )

        def served() -> list[tuple[str, int]]:
            found = [s for s in registry.state({}).services if s.host == host]
            return [(e.address, e.port) for s in found for e in s.endpoints.get(80, ())]

        await _until(lambda: bool(served()), timeout=60)
        (web,) = [s for s in registry.state({}).services if s.host == host]
        assert service.spec is not None and web.addresses == (service.spec.cluster_ip,)
        pod = await asyncio.to_thread(core.read_namespaced_pod, "web-1", namespace)
        assert pod.status is not None
        assert served() == [(pod.status.pod_ip, 8080)]
        (endpoint,) = web.endpoints[80]
        assert endpoint.workload == ConfigKey(kind="Pod", namespace=namespace, name="web-1")
        state = registry.state({})
        instances = state.instances[ConfigKey(kind="Pod", namespace=namespace, name="web-1")]
        assert [(i.service.host, i.port.number, i.target_port) for i in instances] == [(host, 80, 8080)]
        assert changes, "the feed told nobody"
    finally:
        feed.stop()
        await asyncio.wait_for(watching, 10)


# ------------------------------------------------------------------------------------------------ pilot --kubeconfig


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _AdsClient:
    """A real SotW ADS stream to a Pilot process: requests CDS, hands over each response."""

    def __init__(self, address: str, node: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._requests: queue.Queue[DiscoveryRequest | None] = queue.Queue()
        self._requests.put(DiscoveryRequest(type_url=CLUSTER_TYPE, node={"id": node}))
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self._responses = stub.StreamAggregatedResources(iter(self._requests.get, None))

    def next_clusters(self) -> tuple[DiscoveryResponse, list[str]]:
        response: DiscoveryResponse = next(self._responses)
        self._requests.put(
            DiscoveryRequest(type_url=CLUSTER_TYPE, version_info=response.version_info, response_nonce=response.nonce)
        )
        clusters = []
        for packed in response.resources:
            cluster = Cluster()
            packed.Unpack(cluster)
            clusters.append(cluster.name)
        return response, clusters

    def close(self) -> None:
        self._requests.put(None)
        self._responses.cancel()
        self._channel.close()


EXTERNAL_ENTRY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
"""


@contextlib.contextmanager
def _pilot(kubeconfig: Path, tmp_path: Path, *arguments: str) -> Iterator[str]:
    """A real ``pilot --kubeconfig`` process (with ``arguments``) until the block ends; its xDS address. It must
    exit 0 on SIGTERM."""
    xds = f"127.0.0.1:{_free_port()}"
    log = (tmp_path / "pilot.log").open("w")
    command = [sys.executable, "-m", "pilot", "--kubeconfig", str(kubeconfig), "--xds-address", xds, *arguments]
    command += ["--monitor-address", f"127.0.0.1:{_free_port()}", "--debounce", "50ms"]
    pilot = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        channel = grpc.insecure_channel(xds)
        grpc.channel_ready_future(channel).result(timeout=30)
        channel.close()
        yield xds
    finally:
        pilot.terminate()
        try:
            pilot.wait(10)
        finally:
            if pilot.poll() is None:
                pilot.kill()
            log.close()
    assert pilot.returncode == 0, (tmp_path / "pilot.log").read_text()[-3000:]


def test_pilot_serves_a_service_of_the_cluster_over_ads(
    local_kubernetes: LocalCluster, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """With ``--config-dir`` too: the directory's ServiceEntry and the cluster's Services in one CDS."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service(namespace, _web_service("first"))
    config = tmp_path / "config"
    config.mkdir()
    (config / "external.yaml").write_text(EXTERNAL_ENTRY)
    no_status = "--no-status-writes"
    with _pilot(local_kubernetes.kubeconfig, tmp_path, "--config-dir", str(config), no_status) as xds:
        ads = _AdsClient(xds, f"sidecar~10.244.0.99~client.{namespace}~{namespace}.svc.cluster.local")
        try:
            _, clusters = ads.next_clusters()
            first = names.outbound_cluster_name(80, "", f"first.{namespace}.svc.cluster.local")
            assert first in clusters, clusters
            assert names.outbound_cluster_name(443, "", "api.example.com") in clusters, clusters
            core.create_namespaced_service(namespace, _web_service("second"))
            second = names.outbound_cluster_name(80, "", f"second.{namespace}.svc.cluster.local")
            deadline = time.monotonic() + 30
            while second not in clusters:
                assert time.monotonic() < deadline, f"{second} never pushed; {clusters}"
                _, clusters = ads.next_clusters()
        finally:
            ads.close()


def test_pilot_writes_a_rejected_virtual_services_reason_to_its_status(
    local_kubernetes: LocalCluster, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """``kubectl get vs bad -o yaml`` says why it is not in force; fixed, the status is cleared."""
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(ISTIO, "v1beta1", namespace, "virtualservices", _virtual_service("bad", -5))

    def read() -> dict[str, Any]:
        obj = custom.get_namespaced_custom_object(ISTIO, "v1beta1", namespace, "virtualservices", "bad")
        assert isinstance(obj, dict)
        return obj

    def status() -> dict[str, Any]:
        found: dict[str, Any] = read().get("status") or {}
        return found

    with _pilot(local_kubernetes.kubeconfig, tmp_path, "--status-lease-namespace", namespace):
        deadline = time.monotonic() + 30
        while not status().get("validationMessages"):
            assert time.monotonic() < deadline, f"no status written; {status()}"
            time.sleep(0.2)
        [message] = status()["validationMessages"]
        assert message["level"] == "ERROR"
        assert "spec.http[0].route[0].weight" in message["description"], message
        assert status()["observedGeneration"] == 1
        fixed = read()
        fixed["spec"] = _virtual_service("bad", 100)["spec"]
        custom.replace_namespaced_custom_object(ISTIO, "v1beta1", namespace, "virtualservices", "bad", fixed)
        deadline = time.monotonic() + 30
        while status().get("validationMessages"):
            assert time.monotonic() < deadline, f"status not cleared; {status()}"
            time.sleep(0.2)
    lease = client.CoordinationV1Api(api).read_namespaced_lease("meshplane-pilot-status", namespace)
    assert lease.spec is not None and lease.spec.holder_identity in (None, "")  # released on exit
