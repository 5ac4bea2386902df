"""Citadel's identities in pods, with every request from the productpage pod's unmodified ``urllib`` app calling
``http://reviews:9080/`` by name under a mesh-wide STRICT PeerAuthentication: short-lived certificates rotating
over SDS (through the pod's relay to Citadel on the host) under traffic, a root rotation under traffic that the
running pods follow (the pod runner keeps the sidecar's copy of ``--root-cert`` in step with Citadel's bundle),
Citadel down while the pods keep serving with the certificates they hold, and a pod with a forged token that gets
no certificate, so its STRICT peers refuse it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.mtls import peer_authentication
from e2e.pod_mesh import REVIEWS_URL, PodMesh, pod_mesh
from e2e.pod_mtls import (
    assert_no_failure,
    ca_serials,
    caller_identity,
    eventually,
    pod_certificates,
    sds_streams,
    traffic_for,
    workload_streams,
)
from e2e.pods import pod_get, why_pods_cannot_run
from e2e.rules import weighted_reviews

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

CLIENT_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
REVIEWS_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
STRICT_TO_V1 = "---\n".join([peer_authentication("STRICT", namespace="istio-system"), weighted_reviews(v1=100)])


def _serials(mesh: PodMesh, pod: str) -> set[int]:
    return {int(cert["serial"], 16) for cert in pod_certificates(mesh.pod(pod))}


async def test_short_lived_certificates_rotate_over_sds_under_traffic_without_a_failed_request(
    tmp_path: Path,
) -> None:
    async with pod_mesh(tmp_path, STRICT_TO_V1, citadel=True, citadel_arguments=("--cert-ttl", "20s")) as mesh:
        first = _serials(mesh, "reviews-v1")
        responses = await traffic_for(mesh, 45)
        later = _serials(mesh, "reviews-v1")

        async def citadel_sent_what_pods_hold() -> bool:  # read twice: a rotation may fall between the reads
            streams = await workload_streams(mesh, REVIEWS_ID)
            held = _serials(mesh, "reviews-v1") | _serials(mesh, "reviews-v2")
            return len(streams) == 2 and all(s["acked"] and int(s["serial"], 16) in held for s in streams)

        # one SDS stream for ``default`` per reviews pod, through its relay: what Citadel last sent on each is held
        consistent = await eventually(citadel_sent_what_pods_hold, 5)

    assert first and later and first.isdisjoint(later), f"serial did not change: {first} -> {later}"
    assert consistent, "Citadel's SDS streams and the reviews pods' certificates disagree"
    assert_no_failure(responses)
    assert len(responses) > 100
    assert caller_identity(responses[-1][1]) == CLIENT_ID


@pytest.mark.parametrize(
    "interrupted", [False, True], ids=["citadel-running", "citadel-restarted-right-after-rotate-root"]
)
async def test_root_rotation_under_traffic_is_followed_by_running_pods(tmp_path: Path, interrupted: bool) -> None:
    """``citadel rotate-root`` while productpage calls reviews: every certificate moves to the new root with no
    failed request (interrupted: Citadel stops for the command and resumes the rotation from the previous root,
    which every sidecar still trusts); then a restarted Citadel, serving under the new root only, is verified by
    the pods with the bundle their runner copied from ``--root-cert`` after Citadel rewrote it."""
    seconds = 30 if interrupted else 25
    arguments = ("--root-rotation-grace", "1s")
    async with pod_mesh(tmp_path, STRICT_TO_V1, citadel=True, citadel_arguments=arguments) as mesh:
        assert mesh.citadel is not None
        citadel = mesh.citadel
        old_roots = ca_serials(mesh.pod("reviews-v1"))
        traffic = asyncio.create_task(traffic_for(mesh, seconds))
        if interrupted:
            await citadel.stop()
        process = await asyncio.create_subprocess_exec(
            *citadel.command()[:3], "rotate-root", "--ca-dir", str(citadel.ca_dir)
        )
        assert await process.wait() == 0
        if interrupted:
            await citadel.start()
        previous = citadel.ca_dir / "previous-root-cert.pem"

        async def retired() -> bool:  # Citadel retires the old root when its last phase is done
            return not previous.exists()

        finished = await eventually(retired, seconds - 5)
        responses = await traffic
        new_roots = ca_serials(mesh.pod("reviews-v1"))

        await citadel.stop()
        await citadel.start()

        async def reconnected() -> bool:
            return {s["identity"] for s in await sds_streams(mesh) if s["acked"]} == {CLIENT_ID, REVIEWS_ID}

        back = await eventually(reconnected, 20)
        after_restart = await asyncio.to_thread(mesh.get, REVIEWS_URL, 5)

    assert finished, f"the rotation did not finish within {seconds - 5} s"
    assert new_roots and new_roots.isdisjoint(old_roots), (old_roots, new_roots)
    assert_no_failure(responses + after_restart)
    assert back, "the pods' sidecars did not reconnect to the restarted Citadel"


async def test_pods_keep_serving_while_citadel_is_down(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, STRICT_TO_V1, citadel=True) as mesh:
        assert mesh.citadel is not None
        await mesh.citadel.stop()
        # each GET is a new connection from the app; the sidecars hold their certificates for new handshakes
        responses = await traffic_for(mesh, 5)
        await mesh.run_pod("ratings", ["/bin/sleep", "3600"], service_account="bookinfo-ratings", labels="app=ratings")
        await asyncio.sleep(3)
        newcomer = await asyncio.to_thread(pod_get, mesh.pod("ratings"), REVIEWS_URL, 2)

    assert_no_failure(responses)
    assert all(caller_identity(body) == CLIENT_ID for _, body in responses)
    assert 200 not in [status for status, _ in newcomer], "a pod started while Citadel is down has no identity yet"


async def test_a_forged_token_gets_no_certificate_and_strict_peers_refuse_the_pod(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, STRICT_TO_V1, citadel=True) as mesh:
        assert mesh.citadel is not None
        header, claims, signature = mesh.workload_token("bookinfo-ratings").split(".")
        forged = f"{header}.{claims}.{signature[::-1]}"
        app = ["/bin/sleep", "3600"]
        await mesh.run_pod("ratings", app, service_account="bookinfo-ratings", labels="app=ratings", token=forged)
        await asyncio.sleep(3)
        held = pod_certificates(mesh.pod("ratings"))
        genuine = pod_certificates(mesh.pod("productpage"))
        refused = await asyncio.to_thread(pod_get, mesh.pod("ratings"), REVIEWS_URL, 2)
        served = await asyncio.to_thread(mesh.get, REVIEWS_URL, 2)
        identities = {s["identity"] for s in await sds_streams(mesh)}
        _, metrics = await mesh.citadel.get("/metrics")
        citadel_log = mesh.citadel.log_path.read_text()

    assert held == [], "the forged token must get no certificate"
    assert genuine, "the genuine sidecars have theirs"
    assert [status for status, _ in served] == [200, 200], served
    assert 200 not in [status for status, _ in refused], refused
    assert identities == {CLIENT_ID, REVIEWS_ID}, identities
    refusals = [line for line in metrics.splitlines() if line.startswith("citadel_certificate_failures_total")]
    assert any('reason="unauthenticated"' in line and not line.endswith(" 0.0") for line in refusals), refusals
    assert "signature" in citadel_log, "Citadel logs why the token was refused"
    assert forged not in citadel_log, "and never the token itself"
