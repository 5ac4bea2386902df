"""Policy for pods, end to end: the AuthorizationPolicy and Mixer scenarios of ``test_policy`` in the pod model.
The apps are unmodified (``urllib`` in the productpage pod calling ``http://reviews:9080/``); the reviews pods'
sidecars enforce RBAC on virtualInbound and ask Mixer (on the host, ``--mixer`` relayed into each pod) with the
caller's real address: the productpage pod's IP, which Mixer resolves to its WorkloadEntry."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.pod_mesh import REVIEWS_URL, PodMesh, pod_mesh
from e2e.pods import pod_get, why_pods_cannot_run
from e2e.rules import ALLOW_PRODUCTPAGE, DENY_MALLORY, reviews_policy

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

BLOCKED_USERS = reviews_policy(
    "AccessList",
    """
    value: request.headers["end-user"]
    entries: ["mallory"]
    mode: deny
    """,
    name="blocked-users",
)
QUOTA = reviews_policy(
    "RateLimit",
    """
    match: request.headers["end-user"] == "guest"
    key: source.ip
    limit:
      requests: 3
      per: 60s
    """,
    name="quota",
)


def _statuses(mesh: PodMesh, count: int, user: str) -> list[int]:
    return [status for status, _ in mesh.get(REVIEWS_URL, count, headers={"end-user": user})]


async def test_deny_policy_answers_403_from_the_reviews_pods_sidecar(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, DENY_MALLORY) as mesh:
        denied = mesh.get(REVIEWS_URL, 4, headers={"end-user": "mallory"})
        allowed = _statuses(mesh, 4, "alice")
    assert [status for status, _ in denied] == [403] * 4, denied
    assert denied[0][1].strip() == "RBAC: access denied"
    assert allowed == [200] * 4


async def test_allow_by_principal_lets_only_the_productpage_pod_in(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, ALLOW_PRODUCTPAGE, citadel=True) as mesh:
        await mesh.run_pod("ratings", ["/bin/sleep", "3600"], service_account="bookinfo-ratings", labels="app=ratings")
        await mesh.wait_reviews(403, client="ratings")
        allowed = _statuses(mesh, 4, "alice")
        refused = pod_get(mesh.pod("ratings"), REVIEWS_URL, 4)
    assert allowed == [200] * 4
    assert [status for status, _ in refused] == [403] * 4, refused
    assert refused[0][1].strip() == "RBAC: access denied"


async def test_mixer_access_list_denies_and_logs_the_real_pod_addresses(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, BLOCKED_USERS, mixer=True) as mesh:
        denied = mesh.get(REVIEWS_URL, 2, headers={"end-user": "mallory"})
        allowed = _statuses(mesh, 4, "alice")
        assert mesh.mixer is not None
        log = mesh.mixer.log_path.read_text(errors="replace")
    assert [status for status, _ in denied] == [403] * 2, denied
    assert "blocked-users" in denied[0][1]
    assert allowed == [200] * 4
    denials = [line for line in log.splitlines() if "check denied" in line]
    assert len(denials) == 2, denials
    reviews = {
        f"destination_workload='default/reviews-{v}' destination_ip='{mesh.addresses[f'reviews-{v}']}'"
        for v in ("v1", "v2")
    }
    for line in denials:
        assert f"source_ip='{mesh.addresses['productpage']}'" in line, line  # the client pod's IP
        assert "source_workload='default/productpage'" in line, line  # resolved from it
        assert any(destination in line for destination in reviews), line  # the serving pod, from its IP


async def test_mixer_rate_limit_by_source_ip_answers_429_after_three_requests_from_the_client_pod(
    tmp_path: Path,
) -> None:
    async with pod_mesh(tmp_path, QUOTA, mixer=True) as mesh:
        productpage = mesh.get(REVIEWS_URL, 5, headers={"end-user": "guest"})
        await mesh.run_pod("ratings", ["/bin/sleep", "3600"], service_account="bookinfo-ratings", labels="app=ratings")
        await mesh.wait_reviews(client="ratings")  # not counted: no end-user header
        ratings = [status for status, _ in pod_get(mesh.pod("ratings"), REVIEWS_URL, 2, headers={"end-user": "guest"})]
    assert [status for status, _ in productpage] == [200, 200, 200, 429, 429], productpage
    assert "quota" in productpage[-1][1]
    assert ratings == [200, 200]  # another pod, another source.ip: its own quota
