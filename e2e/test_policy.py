"""Policy with real Envoy: AuthorizationPolicy compiled into the sidecars' RBAC, and Mixer's checks (ext_authz)
for CUSTOM policies, AccessLists and RateLimits, including what happens when Mixer is down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from e2e.harness import DemoMeshFactory, LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_URL
from e2e.rules import ALLOW_PRODUCTPAGE, DENY_MALLORY, reviews_policy
from e2e.telemetry import counter_total
from e2e.traffic import MeshResponse
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS

REVIEWS_PATH_URL = DEMO_URL.rstrip("/")
RATINGS_HOST = 30  # a second client, with its own identity (service account bookinfo-ratings)


async def _until_status(mesh: LocalMesh, user: str, status: int, seconds: float = DRAIN_TIME_SECONDS + 1) -> int:
    """Requests as ``user`` until one answers ``status``; how many it took. A listener change reaches connections
    opened before it only as Envoy drains them (the sidecars drain immediately, within DRAIN_TIME_SECONDS)."""
    deadline = time.monotonic() + seconds
    attempts = 1
    while (response := await _request_as(mesh, user)).status != status:
        assert time.monotonic() < deadline, f"still {response.status} after {attempts} requests: {response}"
        attempts += 1
        await asyncio.sleep(0.05)
    return attempts


def _as(user: str) -> dict[str, str]:
    return {"end-user": user}


async def _request_as(mesh: LocalMesh, user: str, url: str = DEMO_URL, client: str = DEMO_CLIENT.name) -> MeshResponse:
    return await mesh.request(client, url, headers=_as(user))


async def test_deny_policy_answers_403_from_the_sidecar_even_with_mixer_stopped(mixer_mesh: DemoMeshFactory) -> None:
    mesh = await mixer_mesh()
    await mesh.apply("deny-mallory", DENY_MALLORY)
    await mesh.wait_synced()
    await mesh.stop_mixer()  # RBAC is compiled into Envoy: nothing to ask Mixer
    denied = await _request_as(mesh, "mallory")
    assert denied.status == 403, denied
    assert denied.text.strip() == "RBAC: access denied"
    allowed = await _request_as(mesh, "alice")
    assert allowed.status == 200 and allowed.workload == "reviews-v1", allowed


async def test_allow_by_principal_lets_only_that_caller_in(mixer_mesh: DemoMeshFactory) -> None:
    mesh = await mixer_mesh(citadel=True)
    await mesh.start_workload("ratings", host=RATINGS_HOST, service_account="bookinfo-ratings")
    await mesh.apply("allow-productpage", ALLOW_PRODUCTPAGE)
    await mesh.wait_synced()
    assert (await _request_as(mesh, "alice")).status == 200
    refused = await _request_as(mesh, "alice", client="ratings")
    assert refused.status == 403 and refused.text.strip() == "RBAC: access denied", refused


async def _checks_answered(mesh: LocalMesh) -> float:
    assert mesh.mixer is not None
    return counter_total(await mesh.mixer.metrics_text(), "mixer_checks")


async def test_custom_policy_sends_only_its_requests_to_mixer(mixer_mesh: DemoMeshFactory) -> None:
    mesh = await mixer_mesh()
    await mesh.apply(
        "custom-private",
        reviews_policy(
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
        ),
    )
    await mesh.wait_synced()
    before = await _checks_answered(mesh)
    for _ in range(3):
        assert (await _request_as(mesh, "alice", f"{REVIEWS_PATH_URL}/private/data")).status == 200
        assert (await _request_as(mesh, "alice")).status == 200
    assert await _checks_answered(mesh) - before == 3  # only the /private/ requests were checked
    await mesh.stop_mixer()
    failed_closed = await _request_as(mesh, "alice", f"{REVIEWS_PATH_URL}/private/data")
    assert failed_closed.status == 403, failed_closed  # CUSTOM fails closed
    assert (await _request_as(mesh, "alice")).status == 200  # not a CUSTOM request: no check, no failure


async def test_access_list_entries_file_edited_at_runtime_takes_effect_within_a_second(
    mixer_mesh: DemoMeshFactory,
) -> None:
    mesh = await mixer_mesh()
    entries = mesh.config_dir / "blocked-users.txt"
    entries.write_text("# users kept out of reviews\nmallory\n")
    await mesh.apply(
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
    await mesh.wait_synced()
    denied = await _request_as(mesh, "Mallory")
    assert denied.status == 403, denied
    assert "blocked-users" in denied.headers.get("x-mixer-reason", ""), denied.headers
    assert "blocked-users" in denied.text
    assert (await _request_as(mesh, "eve")).status == 200

    _replace(entries, "mallory\neve\n")
    edited = time.monotonic()
    while (await _request_as(mesh, "eve")).status != 403:
        assert time.monotonic() - edited < 1.0, "the edited entries file was not in force within a second"
        await asyncio.sleep(0.05)
    assert (await _request_as(mesh, "alice")).status == 200


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


async def test_rate_limit_answers_429_past_its_limit_and_recovers_after_the_window(
    mixer_mesh: DemoMeshFactory,
) -> None:
    mesh = await mixer_mesh()
    await mesh.apply(
        "quota",
        reviews_policy(
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
        ),
    )
    await mesh.wait_synced()
    started = time.monotonic()
    statuses = [(await _request_as(mesh, "guest")).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = await _request_as(mesh, "guest")
    assert limited.status == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    assert "quota" in limited.headers["x-mixer-reason"]
    vip = [(await _request_as(mesh, "vip")).status for _ in range(5)]
    assert vip == [200] * 5  # its own key and limit
    await asyncio.sleep(max(0.0, started + 2.2 - time.monotonic()))
    assert (await _request_as(mesh, "guest")).status == 200


async def test_mixer_down_denies_unless_the_policies_fail_open(mixer_mesh: DemoMeshFactory) -> None:
    mesh = await mixer_mesh()

    def access_list(fail_open: bool) -> str:
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

    await mesh.apply("blocked", access_list(fail_open=False))
    await mesh.wait_synced()
    assert (await _request_as(mesh, "alice")).status == 200
    await mesh.stop_mixer()
    assert (await _request_as(mesh, "alice")).status == 403  # failOpen false: no answer from Mixer, no entry

    await mesh.apply("blocked", access_list(fail_open=True))
    await mesh.wait_synced()  # Pilot alone: the sidecars' ext_authz filter now lets requests through on failure
    assert await _until_status(mesh, "alice", 200) <= 2  # the connection opened before the change is drained
    assert (await _request_as(mesh, "mallory")).status == 200  # nobody to say no while Mixer is down
    await mesh.start_mixer()
    await mesh.wait_synced()
    await _until_status(mesh, "mallory", 403)  # Envoy's gRPC client reconnects to Mixer
    assert (await _request_as(mesh, "alice")).status == 200
