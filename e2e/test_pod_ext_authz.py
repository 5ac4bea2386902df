"""External authorization end to end in pods: Istio's task "External Authorization" (``e2e/istio_docs/ext-authz/``:
the mesh config's extensionProviders and the CUSTOM policy, applied as written there but for our apps' names) on
the reviews pods. The authorizer is Istio's sample ext-authz (``e2e.ext_authz_sample``: HTTP on 8000, gRPC on 9000)
in a pod of the mesh (``ext-authz``, the ``ratings`` workload behind ServiceEntry
``ext-authz.default.svc.cluster.local``): it allows a check carrying ``x-ext-authz: allow`` and denies any other
with 403. The reviews sidecars call it through their outbound clusters ``outbound|8000||ext-authz...`` (HTTP) and
``outbound|9000||ext-authz...`` (gRPC, HTTP/2).

What Istio's task shows: ``/headers`` with ``x-ext-authz: deny`` is denied by the authorizer (its body), with
``x-ext-authz: allow`` answered by the app; ``/ip`` is not sent to the authorizer (the policy's rules name
``/headers`` only) and is answered whatever the header. Both providers of the task: the policy as the docs write it
(``sample-ext-authz-grpc``), then with ``sample-ext-authz-http`` as the task's comment suggests. Under a Sidecar
that hides every service from the reviews pods, they still reach the authorizer (the proxy's own filters' services
stay in scope)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from e2e.conftest import POD_WORLD_LOOP
from e2e.ext_authz_sample import SERVED_BY_HEADER
from e2e.l4_apps import TCP_ECHO_PORT, tcp_echo_counts, tcp_echo_replies
from e2e.l4_mesh import start_tcp_echo
from e2e.mesh_config import DEMO_TCP_SERVICES_FILE, render_pod_demo
from e2e.pod_mesh import NAMESPACE, REVIEWS_SEE_NOTHING, PodMesh, pod_mesh
from e2e.pods import why_pods_cannot_run
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

TASK = Path(__file__).parent / "istio_docs" / "ext-authz"
HEADERS_URL = "http://reviews:9080/headers"
DENY = {"x-ext-authz": "deny"}
IP_URL = "http://reviews:9080/ip"
EXT_AUTHZ_SERVICE = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext-authz
  namespace: {NAMESPACE}
spec:
  hosts: [ext-authz.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {{number: 8000, name: http, protocol: HTTP}}
  - {{number: 9000, name: grpc, protocol: GRPC}}
  resolution: STATIC
  workloadSelector:
    labels: {{app: ratings}}
"""


def _mesh_config() -> str:
    return (TASK / "mesh-config.yaml").read_text().replace(".foo.svc.", f".{NAMESPACE}.svc.")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ext_authz_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PodMesh]:
    async with pod_mesh(
        tmp_path_factory.mktemp("pod-ext-authz"), EXT_AUTHZ_SERVICE, mesh_config=_mesh_config(), citadel=True
    ) as mesh:
        # TCP checks (no x-ext-authz header) are allowed for productpage's service account only
        server = [sys.executable, "-m", "e2e.ext_authz_sample", "8000", "9000", "bookinfo-productpage"]
        await mesh.run_pod("ratings", server, service_account="bookinfo-ratings", labels="app=ratings")
        await start_tcp_echo(mesh)
        await mesh.config.apply("tcp-echo", render_pod_demo(DEMO_TCP_SERVICES_FILE, mesh.network))
        await mesh.config.wait_synced()
        yield mesh


async def _statuses(mesh: PodMesh, url: str, decision: str, count: int = 4) -> list[int]:
    return [r.status for r in await mesh.responses(url, count, headers={"x-ext-authz": decision})]


async def _until(mesh: PodMesh, decision: str, status: int, seconds: float = DRAIN_TIME_SECONDS + 10) -> None:
    deadline = time.monotonic() + seconds
    while (found := await _statuses(mesh, HEADERS_URL, decision)) != [status] * 4:
        assert time.monotonic() < deadline, f"still {found}, expected {status}"
        await asyncio.sleep(0.1)


async def _until_served_by(mesh: PodMesh, server: str, seconds: float = DRAIN_TIME_SECONDS + 10) -> None:
    """Until every denial comes from ``server``: the previous provider also answers 403, on the listener still
    draining after the switch."""
    deadline = time.monotonic() + seconds
    while True:
        denied = await mesh.responses(HEADERS_URL, 4, headers={"x-ext-authz": "deny"})
        if (found := [r.headers.get(SERVED_BY_HEADER) for r in denied]) == [server] * 4:
            return
        assert time.monotonic() < deadline, f"denials still served by {found}, expected {server}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("provider", ["sample-ext-authz-grpc", "sample-ext-authz-http"])
async def test_provider_denies_without_allow_header_and_only_for_headers(
    ext_authz_world: PodMesh, provider: str
) -> None:
    mesh = ext_authz_world
    policy = (TASK / "ext-authz.yaml").read_text().replace("name: sample-ext-authz-grpc", f"name: {provider}")
    await mesh.config.apply("task-ext-authz", policy)
    configz = await mesh.config.wait_synced()
    assert not configz.get("rejected"), configz["rejected"]
    await _until(mesh, "deny", 403)
    await _until_served_by(mesh, provider.rsplit("-", 1)[1])

    denied = await mesh.responses(HEADERS_URL, 2, headers={"x-ext-authz": "deny"})
    without = await mesh.responses(HEADERS_URL, 2)
    allowed = await mesh.responses(HEADERS_URL, 4, headers={"x-ext-authz": "allow"})

    assert [r.status for r in denied + without] == [403] * 4, denied + without
    assert denied[0].text.strip() == "denied by ext_authz for not found header `x-ext-authz: allow` in the request"
    assert [r.headers.get(SERVED_BY_HEADER) for r in denied] == [provider.rsplit("-", 1)[1]] * 2
    assert [r.status for r in allowed] == [200] * 4, allowed
    assert await _statuses(mesh, IP_URL, "deny") == [200] * 4  # not a /headers request: no check


async def test_provider_not_in_mesh_config_fails_closed(ext_authz_world: PodMesh) -> None:
    """A CUSTOM policy naming a provider MeshConfig does not have is accepted, and denies what it would check."""
    mesh = ext_authz_world
    policy = (TASK / "ext-authz.yaml").read_text().replace("name: sample-ext-authz-grpc", "name: not-in-mesh-config")
    await mesh.config.apply("task-ext-authz", policy)
    configz = await mesh.config.wait_synced()
    assert not configz.get("rejected"), configz["rejected"]
    await _until(mesh, "allow", 403)

    assert await _statuses(mesh, HEADERS_URL, "allow") == [403] * 4
    assert await _statuses(mesh, IP_URL, "allow") == [200] * 4


TCP_POLICY = f"""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ext-authz-tcp
  namespace: {NAMESPACE}
spec:
  selector:
    matchLabels:
      app: tcp-echo
  action: CUSTOM
  provider:
    name: sample-ext-authz-grpc
  rules:
  - to:
    - operation:
        ports: ["{TCP_ECHO_PORT}"]
"""


async def _echo(mesh: PodMesh, client: str, count: int = 4) -> Counter[str]:
    return tcp_echo_counts(
        await asyncio.to_thread(tcp_echo_replies, mesh.pod(client), "tcp-echo", TCP_ECHO_PORT, count)
    )


async def test_grpc_provider_checks_each_tcp_connection(ext_authz_world: PodMesh) -> None:
    """On tcp-echo's TCP port the gRPC provider is asked once per connection (Envoy's network ext_authz): it allows
    productpage's identity and refuses the ext-authz pod's own (ratings'; the connection is closed); the HTTP
    provider cannot check a connection, so with it every connection the rule covers is refused (Istio would let
    them through)."""
    mesh = ext_authz_world
    before = await _echo(mesh, "ratings")
    assert set(before) <= {"v1", "v2"}, before  # without the policy every client reaches tcp-echo
    await mesh.config.apply("task-ext-authz-tcp", TCP_POLICY)
    configz = await mesh.config.wait_synced()
    assert not configz.get("rejected"), configz["rejected"]
    deadline = time.monotonic() + DRAIN_TIME_SECONDS + 10
    while set(denied := await _echo(mesh, "ratings")) - {"closed", "error"}:
        assert time.monotonic() < deadline, f"the ext-authz pod's connections still answered: {denied}"
        await asyncio.sleep(0.2)
    allowed = await _echo(mesh, "productpage", 6)
    assert set(allowed) <= {"v1", "v2"} and sum(allowed.values()) == 6, allowed

    await mesh.config.apply("task-ext-authz-tcp", TCP_POLICY.replace("sample-ext-authz-grpc", "sample-ext-authz-http"))
    await mesh.config.wait_synced()
    deadline = time.monotonic() + DRAIN_TIME_SECONDS + 10
    while set(refused := await _echo(mesh, "productpage")) - {"closed", "error"}:
        assert time.monotonic() < deadline, f"productpage's connections still answered: {refused}"
        await asyncio.sleep(0.2)
    await mesh.config.remove("task-ext-authz-tcp")
    await mesh.config.wait_synced()


async def test_a_sidecar_that_hides_the_provider_keeps_its_cluster(ext_authz_world: PodMesh) -> None:
    """The reviews sidecars see no service (egress ``~/*``), yet still call the authorizer through
    ``outbound|8000||ext-authz...``: an allowed check is answered by the app, not denied for a missing cluster."""
    mesh = ext_authz_world
    policy = (TASK / "ext-authz.yaml").read_text().replace("name: sample-ext-authz-grpc", "name: sample-ext-authz-http")
    await mesh.config.apply("task-ext-authz", policy)
    await mesh.config.apply("30-sidecar", REVIEWS_SEE_NOTHING)
    try:
        configz = await mesh.config.wait_synced()
        assert not configz.get("rejected"), configz["rejected"]
        await _until(mesh, "deny", 403)
        await _until(mesh, "allow", 200)
        # the denial is the provider's own, not RBAC's: a connection between the sidecars pooled on the listener
        # still draining after the change can carry a request or two through the previous config (seen once)
        expected = "denied by ext_authz for not found header `x-ext-authz: allow` in the request"
        deadline = time.monotonic() + DRAIN_TIME_SECONDS + 10
        while (texts := [r.text.strip() for r in await mesh.responses(HEADERS_URL, 4, headers=DENY)]) != [expected] * 4:
            assert time.monotonic() < deadline, f"denials still {texts}"
            await asyncio.sleep(0.1)
    finally:
        await mesh.config.remove("30-sidecar")
        await mesh.config.wait_synced()
