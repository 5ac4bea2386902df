"""Policy for pods, end to end: AuthorizationPolicy compiled into the sidecars' RBAC, and Mixer's checks (ext_authz)
for CUSTOM policies, AccessLists and RateLimits, including what happens when Mixer is down. The apps are unmodified
(``urllib`` in the productpage and ratings pods calling ``http://reviews:9080/``); the reviews pods' sidecars enforce
RBAC on virtualInbound and ask Mixer (on the host, ``--mixer`` relayed into each pod) with the caller's real
address: the client pod's IP, which Mixer resolves to its WorkloadEntry. One world of pods for the module
(``mixer_pods``: Citadel, Mixer, reviews v1/v2, productpage and ratings), reset after each test."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import REVIEWS_URL, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import ALLOW_PRODUCTPAGE, DENY_MALLORY, reviews_policy
from e2e.telemetry import counter_total
from e2e.traffic import MeshResponse
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

PRIVATE_URL = f"{REVIEWS_URL}private/data"
_BATCH = 4  # requests in a row that must all show a change: each reviews pod gets some
REVIEWS_PODS = ("reviews-v1", "reviews-v2")  # the mixer_pods world's servers


async def _as(
    mesh: PodMesh, user: str, count: int = 1, *, url: str = REVIEWS_URL, client: str = "productpage"
) -> list[MeshResponse]:
    return await mesh.responses(url, count, headers={"end-user": user}, client=client)


async def _statuses(mesh: PodMesh, user: str, count: int = 1, **options: str) -> list[int]:
    return [response.status for response in await _as(mesh, user, count, **options)]


async def _in_force(
    mesh: PodMesh,
    user: str,
    status: int,
    *,
    url: str = REVIEWS_URL,
    client: str = "productpage",
    batch: int = _BATCH,
    seconds: float = DRAIN_TIME_SECONDS + 1,
) -> None:
    """Until a batch of requests as ``user`` all answer ``status`` (for at most ``seconds``), and then until the
    reviews pods' sidecars drain no filter chain (up to the drain time more). A listener change reaches new
    connections at once; an upstream connection the client's sidecar opened before reaches the old filter chain
    until Envoy drains it (a response on it closes it, and what is left is closed after DRAIN_TIME_SECONDS): a batch
    can pass while such a connection, not used by it, still answers with the previous policy."""
    deadline = time.monotonic() + seconds
    while (found := await _statuses(mesh, user, batch, url=url, client=client)) != [status] * batch:
        assert time.monotonic() < deadline, f"still {found} as {user}, expected {status}"
        await asyncio.sleep(0.05)
    await mesh.until_drained(*REVIEWS_PODS)


async def _checked_by_mixer(mesh: PodMesh, *, url: str = REVIEWS_URL) -> None:
    """Until Mixer checks every one of a batch of requests (as ``probe``: a key no test counts): the reviews pods'
    sidecars ask Mixer, on every connection (as ``_in_force``, then until nothing drains)."""
    deadline = time.monotonic() + DRAIN_TIME_SECONDS + 1
    while True:
        before = await _checks_answered(mesh)
        await _statuses(mesh, "probe", _BATCH, url=url)
        if (checked := await _checks_answered(mesh) - before) == _BATCH:
            await mesh.until_drained(*REVIEWS_PODS)
            return
        assert time.monotonic() < deadline, f"Mixer checked {checked} of {_BATCH} requests to {url}"
        await asyncio.sleep(0.05)


async def _apply(mesh: PodMesh, name: str, text: str) -> None:
    await mesh.config.apply(name, text)
    configz = await mesh.config.wait_synced()
    assert not configz.get("rejected"), configz["rejected"]


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


async def _checks_answered(mesh: PodMesh) -> float:
    assert mesh.mixer is not None
    return counter_total(await mesh.mixer.metrics_text(), "mixer_checks")


async def test_deny_policy_answers_403_from_the_reviews_pods_sidecar_even_with_mixer_stopped(
    mixer_pods: PodMesh,
) -> None:
    await _apply(mixer_pods, "deny-mallory", DENY_MALLORY)
    await _in_force(mixer_pods, "mallory", 403)
    assert mixer_pods.mixer is not None
    await mixer_pods.mixer.stop()  # RBAC is compiled into Envoy: nothing to ask Mixer

    denied = await _as(mixer_pods, "mallory", 4)
    allowed = await _statuses(mixer_pods, "alice", 4)

    assert [r.status for r in denied] == [403] * 4, denied
    assert denied[0].text.strip() == "RBAC: access denied"
    assert allowed == [200] * 4


async def test_allow_by_principal_lets_only_the_productpage_pod_in(mixer_pods: PodMesh) -> None:
    await _apply(mixer_pods, "allow-productpage", ALLOW_PRODUCTPAGE)
    await _in_force(mixer_pods, "alice", 403, client="ratings")

    allowed = await _statuses(mixer_pods, "alice", 4)
    refused = await _as(mixer_pods, "alice", 4, client="ratings")

    assert allowed == [200] * 4
    assert [r.status for r in refused] == [403] * 4, refused
    assert refused[0].text.strip() == "RBAC: access denied"


CUSTOM_PRIVATE = reviews_policy(
    "AuthorizationPolicy",
    """
    action: CUSTOM
    provider:
      name: mixer
    rules:
    - to:
      - operation:
          paths: ["/private/*"]
    """,
    name="custom-private",
)


async def test_custom_policy_sends_only_its_requests_to_mixer(mixer_pods: PodMesh) -> None:
    await _apply(mixer_pods, "custom-private", CUSTOM_PRIVATE)
    await _checked_by_mixer(mixer_pods, url=PRIVATE_URL)
    # an upstream connection pooled before the change keeps its old filter chain until Envoy drains it: wait that
    # out, so that the count below is of the new chains only (one such connection once made it 2 of 3)
    await asyncio.sleep(DRAIN_TIME_SECONDS + 0.5)
    before = await _checks_answered(mixer_pods)

    private = await _statuses(mixer_pods, "alice", 3, url=PRIVATE_URL)
    public = await _statuses(mixer_pods, "alice", 3)
    checked = await _checks_answered(mixer_pods) - before
    assert mixer_pods.mixer is not None
    await mixer_pods.mixer.stop()
    failed_closed = await _as(mixer_pods, "alice", url=PRIVATE_URL)
    unchecked = await _statuses(mixer_pods, "alice")

    assert private == public == [200] * 3
    assert checked == 3  # only the /private/ requests were checked
    assert failed_closed[0].status == 403, failed_closed  # CUSTOM fails closed
    assert unchecked == [200]  # not a CUSTOM request: no check, no failure


BLOCKED_USERS = reviews_policy(
    "AccessList",
    """
    value: request.headers["end-user"]
    entries: ["mallory"]
    mode: deny
    """,
    name="blocked-users",
)


async def test_mixer_access_list_denies_and_logs_the_real_pod_addresses(mixer_pods: PodMesh) -> None:
    await _apply(mixer_pods, "blocked-users", BLOCKED_USERS)
    await _checked_by_mixer(mixer_pods)
    assert mixer_pods.mixer is not None
    logged_before = len(mixer_pods.mixer.log_path.read_bytes())

    denied = await _as(mixer_pods, "mallory", 2)
    allowed = await _statuses(mixer_pods, "alice", 4)
    log = mixer_pods.mixer.log_path.read_bytes()[logged_before:].decode(errors="replace")

    assert [r.status for r in denied] == [403] * 2, denied
    assert "blocked-users" in denied[0].text
    assert allowed == [200] * 4
    denials = [line for line in log.splitlines() if "check denied" in line]
    assert len(denials) == 2, denials
    addresses = mixer_pods.addresses
    reviews = {
        f"destination_workload='default/reviews-{v}' destination_ip='{addresses[f'reviews-{v}']}'" for v in ("v1", "v2")
    }
    for line in denials:
        assert f"source_ip='{addresses['productpage']}'" in line, line  # the client pod's IP
        assert "source_workload='default/productpage'" in line, line  # resolved from it
        assert any(destination in line for destination in reviews), line  # the serving pod, from its IP


async def test_access_list_entries_file_edited_at_runtime_takes_effect_within_a_second(mixer_pods: PodMesh) -> None:
    entries = mixer_pods.pilot.config_dir / "blocked-users.txt"
    entries.write_text("# users kept out of reviews\nmallory\n")
    await _apply(
        mixer_pods,
        "blocked-users",
        reviews_policy(
            "AccessList",
            """
            value: request.headers["end-user"]
            entriesFile: blocked-users.txt
            entryType: CASE_INSENSITIVE_STRINGS
            mode: deny
            """,
            name="blocked-users",
        ),
    )
    await _checked_by_mixer(mixer_pods)
    [denied] = await _as(mixer_pods, "Mallory")
    assert denied.status == 403, denied
    assert "blocked-users" in denied.headers.get("x-mixer-reason", ""), denied.headers
    assert "blocked-users" in denied.text
    assert await _statuses(mixer_pods, "eve") == [200]

    _replace(entries, "mallory\neve\n")
    edited = time.monotonic()
    while (await _statuses(mixer_pods, "eve")) != [403]:
        assert time.monotonic() - edited < 1.0, "the edited entries file was not in force within a second"
        await asyncio.sleep(0.05)
    assert await _statuses(mixer_pods, "alice") == [200]


async def test_rate_limit_answers_429_past_its_limit_and_recovers_after_the_window(mixer_pods: PodMesh) -> None:
    quota = reviews_policy(
        "RateLimit",
        """
        key: request.headers["end-user"]
        limit:
          requests: 3
          per: 2s
        overrides:
        - key: vip
          requests: 10
        """,
        name="quota",
    )
    await _apply(mixer_pods, "quota", quota)
    await _checked_by_mixer(mixer_pods)

    started = time.monotonic()  # guest's window starts at its first request, a little later
    guest = await _as(mixer_pods, "guest", 6)
    vip = await _statuses(mixer_pods, "vip", 5)
    in_window = time.monotonic() - started

    assert in_window < 2.0, f"the requests took {in_window:.1f}s: longer than the window, nothing is measured"
    assert [r.status for r in guest] == [200, 200, 200, 429, 429, 429]
    limited = guest[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 2, limited.headers
    assert "quota" in limited.headers["x-mixer-reason"]
    assert vip == [200] * 5  # its own key and limit
    await asyncio.sleep(max(0.0, started + 2.0 - time.monotonic()))
    await _in_force(mixer_pods, "guest", 200, batch=1, seconds=1.0)  # the window over (and the client's start-up)


async def test_mixer_rate_limit_by_source_ip_gives_each_client_pod_its_own_quota(mixer_pods: PodMesh) -> None:
    quota = reviews_policy(
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
    await _apply(mixer_pods, "quota", quota)
    await _checked_by_mixer(mixer_pods)  # as another user: not counted

    productpage = await _as(mixer_pods, "guest", 5)
    ratings = await _statuses(mixer_pods, "guest", 2, client="ratings")

    assert [r.status for r in productpage] == [200, 200, 200, 429, 429], productpage
    assert "quota" in productpage[-1].text
    assert ratings == [200, 200]  # another pod, another source.ip: its own quota


def _access_list(*, fail_open: bool) -> str:
    return reviews_policy(
        "AccessList",
        f"""
        value: request.headers["end-user"]
        entries: ["mallory"]
        mode: deny
        failOpen: {str(fail_open).lower()}
        """,
        name="blocked",
    )


async def test_mixer_down_denies_unless_the_policies_fail_open(mixer_pods: PodMesh) -> None:
    mixer = mixer_pods.mixer
    assert mixer is not None
    await _apply(mixer_pods, "blocked", _access_list(fail_open=False))
    await _checked_by_mixer(mixer_pods)
    assert await _statuses(mixer_pods, "alice") == [200]
    await mixer.stop()
    assert await _statuses(mixer_pods, "alice") == [403]  # failOpen false: no answer from Mixer, no entry

    await _apply(mixer_pods, "blocked", _access_list(fail_open=True))  # Pilot alone: the sidecars' ext_authz now
    await _in_force(mixer_pods, "alice", 200)  # lets requests through when Mixer does not answer
    assert await _statuses(mixer_pods, "mallory") == [200]  # nobody to say no while Mixer is down
    await mixer.start()
    await mixer_pods.config.wait_synced()
    await _in_force(mixer_pods, "mallory", 403)  # Envoy's gRPC client reconnects to Mixer
    assert await _statuses(mixer_pods, "alice") == [200]
