"""JWT authentication with authorization, end to end in pods: Istio's task "Authorization with JWT"
(``e2e/istio_docs/authz-jwt/``, applied as written there but for our apps' names) on the reviews pods. The keys
are made per run (``e2e.jwt_tokens``); their JWKS is served by a pod of the mesh (``jwks``, the ``ratings``
workload, behind ServiceEntry ``jwks.default.svc.cluster.local:8080``), and the reviews pods' Envoys fetch it
themselves through their outbound cluster (``remote_jwks``). The caller is plain ``urllib`` in the productpage pod.

What Istio's task shows: without a token 403 (RBAC: no request principal), an invalid token 401 (jwt_authn), a
valid token 200; with the policy requiring ``request.auth.claims[groups]`` to hold ``group1``, a token whose
groups hold it 200 and one whose groups do not 403. Under a Sidecar that hides every service from the reviews pods,
their Envoys still reach the JWKS service (the proxy's own filters' services stay in scope)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from e2e.conftest import POD_WORLD_LOOP
from e2e.jwt_tokens import SigningKey, new_signing_key
from e2e.pod_mesh import NAMESPACE, REVIEWS_SEE_NOTHING, REVIEWS_URL, PodMesh, pod_mesh
from e2e.pods import PYTHON, why_pods_cannot_run
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

TASK = Path(__file__).parent / "istio_docs" / "authz-jwt"
ISSUER = "testing@secure.istio.io"  # the task's issuer and subject
JWKS_PORT = 8080
JWKS_SERVICE = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: jwks
  namespace: {NAMESPACE}
spec:
  hosts: [jwks.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: {JWKS_PORT}, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector:
    labels: {{app: ratings}}
"""
# The JWKS server: any GET answers the key set given as its argument (stdlib only: it runs as the app's uid).
JWKS_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = sys.argv[2].encode()
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jwt_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[PodMesh, SigningKey]]:
    key = new_signing_key("meshplane-e2e")
    async with pod_mesh(tmp_path_factory.mktemp("pod-jwt"), JWKS_SERVICE) as mesh:
        server = [PYTHON, "-c", JWKS_SERVER, str(JWKS_PORT), key.jwks]
        await mesh.run_pod("ratings", server, service_account="bookinfo-ratings", labels="app=ratings")
        yield mesh, key


@pytest_asyncio.fixture(loop_scope="module")
async def jwt_pods(jwt_world: tuple[PodMesh, SigningKey]) -> AsyncIterator[tuple[PodMesh, SigningKey]]:
    yield jwt_world
    await jwt_world[0].reset()


async def _apply(mesh: PodMesh, *files: str) -> None:
    for name in files:
        await mesh.config.apply(f"task-{Path(name).stem}", (TASK / name).read_text())
    configz = await mesh.config.wait_synced()
    assert not configz.get("rejected"), configz["rejected"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _statuses(mesh: PodMesh, headers: dict[str, str], count: int = 4) -> list[int]:
    return [r.status for r in await mesh.responses(REVIEWS_URL, count, headers=headers)]


async def _until(mesh: PodMesh, headers: dict[str, str], status: int, seconds: float = DRAIN_TIME_SECONDS + 10) -> None:
    """Until a batch of requests all answer ``status`` (a listener change reaches pooled connections once Envoy
    drains them; the first token also waits for the JWKS fetch)."""
    deadline = time.monotonic() + seconds
    while (found := await _statuses(mesh, headers)) != [status] * 4:
        assert time.monotonic() < deadline, f"still {found}, expected {status}"
        await asyncio.sleep(0.1)


def _task_token(key: SigningKey, **claims: object) -> str:
    return key.token({"iss": ISSUER, "sub": ISSUER, **claims})


async def test_require_jwt_no_token_403_invalid_token_401_valid_token_200(
    jwt_pods: tuple[PodMesh, SigningKey],
) -> None:
    mesh, key = jwt_pods
    await _apply(mesh, "01-request-authentication.yaml", "02-require-jwt.yaml")
    valid = _task_token(key, groups=["group1", "group2"])
    await _until(mesh, {}, 403)
    await _until(mesh, _bearer(valid), 200)  # Envoy fetched the JWKS from the jwks pod

    without = await mesh.responses(REVIEWS_URL, 2)
    forged = await mesh.responses(REVIEWS_URL, 2, headers=_bearer(_task_token(new_signing_key("meshplane-e2e"))))
    expired_token = key.token({"iss": ISSUER, "sub": ISSUER}, lifetime=-600)  # past Envoy's 60 s clock skew
    expired = await mesh.responses(REVIEWS_URL, 2, headers=_bearer(expired_token))
    garbage = await mesh.responses(REVIEWS_URL, 2, headers=_bearer("not.a.token"))
    other_issuer = await mesh.responses(REVIEWS_URL, 2, headers=_bearer(key.token({"iss": "x", "sub": "y"})))
    allowed = await mesh.responses(REVIEWS_URL, 4, headers=_bearer(valid))

    assert [r.status for r in without] == [403, 403], without
    assert without[0].text.strip() == "RBAC: access denied"
    assert [r.status for r in forged + expired + garbage] == [401] * 6, (forged, expired, garbage)
    assert "Jwt verification fails" in forged[0].text, forged[0].text
    assert "Jwt is expired" in expired[0].text, expired[0].text
    assert [r.status for r in other_issuer] == [401, 401]  # no provider for its issuer: Envoy rejects it
    assert [r.status for r in allowed] == [200] * 4, allowed
    assert allowed[0].body is not None
    assert "authorization" not in {k.lower() for k in allowed[0].body["headers"]}  # forwardOriginalToken: false


async def test_require_jwt_with_groups_claim_group1(jwt_pods: tuple[PodMesh, SigningKey]) -> None:
    mesh, key = jwt_pods
    await _apply(mesh, "01-request-authentication.yaml", "03-require-jwt-group1.yaml")
    with_group1 = _bearer(_task_token(key, groups=["group1", "group2"]))
    only_group2 = _bearer(_task_token(key, groups=["group2"]))
    await _until(mesh, only_group2, 403)

    assert await _statuses(mesh, with_group1) == [200] * 4
    assert await _statuses(mesh, only_group2) == [403] * 4
    assert await _statuses(mesh, _bearer(_task_token(key))) == [403] * 4  # no groups claim at all
    assert await _statuses(mesh, {}) == [403] * 4


async def test_a_sidecar_that_hides_the_jwks_service_keeps_its_cluster(jwt_pods: tuple[PodMesh, SigningKey]) -> None:
    """The reviews sidecars see no service (egress ``~/*``), yet their Envoys still fetch the JWKS through
    ``outbound|8080||jwks...``: the services a proxy's own filters call stay in its CDS under any Sidecar."""
    mesh, key = jwt_pods
    await mesh.config.apply("30-sidecar", REVIEWS_SEE_NOTHING)
    await _apply(mesh, "01-request-authentication.yaml")
    valid = _bearer(_task_token(key, groups=["group1"]))
    await _until(mesh, valid, 200)
    assert await _statuses(mesh, _bearer(_task_token(new_signing_key("meshplane-e2e")))) == [401] * 4
