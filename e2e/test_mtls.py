"""Mutual TLS between sidecars with identities from Citadel, decided by PeerAuthentication: real Envoy, real TLS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from e2e.harness import DemoMeshFactory, LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_URL, REVIEWS_PORT, render_demo_mesh
from e2e.mtls import caller_identity, peer_authentication, plaintext_get, workload_certificates
from e2e.rules import weighted_reviews
from e2e.traffic import MeshResponse
from envoy_bootstrap.bootstrap import XdsMode

CLIENT_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
OUTSIDER_HOST = 99  # an address in the mesh's subnet with no sidecar: a plaintext caller


async def _route_to_v1(mesh: LocalMesh) -> None:
    await mesh.apply("reviews-vs", weighted_reviews(v1=100))
    await mesh.wait_synced()


async def _mesh_with_policy(mtls_mesh: DemoMeshFactory, mode: str, **options: Any) -> LocalMesh:
    """The demo mesh with Citadel, every request to reviews-v1, and a PeerAuthentication ``mode`` in force
    (STRICT mesh-wide from the root namespace, the others for namespace default)."""
    mesh = await mtls_mesh(**options)
    await _route_to_v1(mesh)
    namespace = "istio-system" if mode == "STRICT" else "default"
    await mesh.apply(f"{mode.lower()}-mtls", peer_authentication(mode, namespace=namespace))
    await mesh.wait_synced()
    return mesh


async def _both_ways(mesh: LocalMesh) -> tuple[int | str, MeshResponse]:
    """A plaintext call straight to reviews-v1's inbound port, and a call from productpage through its sidecar."""
    inbound = f"http://{mesh.workloads['reviews-v1'].address}:{REVIEWS_PORT}/"
    plaintext = await plaintext_get(inbound, source=mesh.address(OUTSIDER_HOST))
    return plaintext, await mesh.request(DEMO_CLIENT.name, DEMO_URL)


async def _eventually(condition: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)
    return True


async def _traffic_for(mesh: LocalMesh, seconds: float) -> list[MeshResponse]:
    responses: list[MeshResponse] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        responses.extend(await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 4, concurrency=4))
        await asyncio.sleep(0.05)
    return responses


def _assert_no_failure(responses: list[MeshResponse]) -> None:
    failures = [(r.status, r.text[:120]) for r in responses if r.status != 200]
    assert not failures, f"{len(failures)} of {len(responses)} failed: {failures[:3]}"


async def _ca_serials(mesh: LocalMesh, workload: str) -> set[str]:
    return {serial for cert in await workload_certificates(mesh, workload) for serial in cert["ca_serials"]}


async def _rotate_root_under_traffic(mesh: LocalMesh, *, restart_citadel: bool, seconds: float) -> None:
    """``citadel rotate-root`` while productpage calls reviews-v1 (optionally with Citadel stopped for the command
    and started again): the rotation finishes, every certificate moves to the new root, no request fails."""
    assert mesh.citadel is not None
    old_roots = await _ca_serials(mesh, "reviews-v1")
    traffic = asyncio.create_task(_traffic_for(mesh, seconds))
    if restart_citadel:
        await mesh.citadel.stop()
    process = await asyncio.create_subprocess_exec(
        *mesh.citadel.command()[:3], "rotate-root", "--ca-dir", str(mesh.citadel.ca_dir)
    )
    assert await process.wait() == 0
    if restart_citadel:
        await mesh.citadel.start()
    previous = mesh.citadel.ca_dir / "previous-root-cert.pem"

    async def retired() -> bool:  # Citadel retires the old root when its last phase is done
        return not previous.exists()

    finished = await _eventually(retired, seconds - 5)
    responses = await traffic

    assert finished, f"the rotation did not finish within {seconds - 5:g} s"
    new_roots = await _ca_serials(mesh, "reviews-v1")
    assert new_roots and new_roots.isdisjoint(old_roots), (old_roots, new_roots)
    _assert_no_failure(responses)


async def test_strict_refuses_plaintext_and_serves_sidecars_with_the_callers_identity(
    mtls_mesh: DemoMeshFactory,
) -> None:
    mesh = await _mesh_with_policy(mtls_mesh, "STRICT")

    plaintext, through_sidecar = await _both_ways(mesh)

    assert isinstance(plaintext, str), f"STRICT must refuse a plaintext caller at the transport, got {plaintext}"
    assert (through_sidecar.status, through_sidecar.version) == (200, "v1")
    assert caller_identity(through_sidecar) == CLIENT_ID


async def test_permissive_serves_plaintext_and_mtls_on_the_same_port(mtls_mesh: DemoMeshFactory) -> None:
    mesh = await _mesh_with_policy(mtls_mesh, "PERMISSIVE")

    plaintext, through_sidecar = await _both_ways(mesh)

    assert plaintext == 200
    assert through_sidecar.status == 200 and caller_identity(through_sidecar) == CLIENT_ID


async def test_disable_is_plaintext_between_sidecars(mtls_mesh: DemoMeshFactory) -> None:
    mesh = await _mesh_with_policy(mtls_mesh, "DISABLE")

    plaintext, through_sidecar = await _both_ways(mesh)

    assert plaintext == 200
    assert through_sidecar.status == 200
    assert caller_identity(through_sidecar) is None, "no TLS, so no client certificate to forward"


async def test_a_forged_token_gets_no_certificate(mtls_mesh: DemoMeshFactory) -> None:
    mesh = await mtls_mesh()
    genuine = mesh.workload_token("default", "bookinfo-ratings")
    header, claims, signature = genuine.split(".")
    forged = f"{header}.{claims}.{signature[::-1]}"

    await mesh.start_workload("intruder", host=60, service_account="bookinfo-ratings", token=forged, wait_ready=False)
    await asyncio.sleep(3)

    assert await workload_certificates(mesh, "intruder") == []
    assert await workload_certificates(mesh, DEMO_CLIENT.name), "the genuine sidecars have theirs"
    assert mesh.citadel is not None
    _, metrics = await mesh.citadel.get("/metrics")
    refusals = [line for line in metrics.splitlines() if line.startswith("citadel_certificate_failures_total")]
    assert any('reason="unauthenticated"' in line and not line.endswith(" 0.0") for line in refusals), refusals
    assert "signature" in mesh.citadel.log_path.read_text(), "Citadel logs why the token was refused"
    assert forged not in mesh.citadel.log_path.read_text(), "and never the token itself"


async def test_short_lived_certificates_rotate_under_traffic_without_a_failed_request(
    mtls_mesh: DemoMeshFactory,
) -> None:
    mesh = await _mesh_with_policy(mtls_mesh, "STRICT", cert_ttl="20s")
    first = {c["serial"] for c in await workload_certificates(mesh, "reviews-v1")}

    responses = await _traffic_for(mesh, 60)

    later = {c["serial"] for c in await workload_certificates(mesh, "reviews-v1")}
    assert first and later and first.isdisjoint(later), f"serial did not change: {first} -> {later}"
    _assert_no_failure(responses)
    assert len(responses) > 100


async def test_root_rotation_under_traffic_without_a_failed_request(mtls_mesh: DemoMeshFactory) -> None:
    mesh = await _mesh_with_policy(mtls_mesh, "STRICT", citadel_arguments=("--root-rotation-grace", "1s"))
    assert mesh.citadel is not None

    await _rotate_root_under_traffic(mesh, restart_citadel=False, seconds=25)

    # Sidecars bootstrapped under the old root reconnect to a restarted Citadel, whose serving certificate now
    # chains to the new root: their bootstrap reloads the trust bundle Citadel rewrote.
    await mesh.citadel.stop()
    await mesh.citadel.start()
    citadel = mesh.citadel

    async def reconnected() -> bool:
        streams = (await citadel.get_json("/debug/sdsz"))["streams"]
        return {s["identity"].rsplit("/", 1)[-1] for s in streams} == {"bookinfo-productpage", "bookinfo-reviews"}

    assert await _eventually(reconnected, 20), "sidecars did not reconnect to Citadel"


async def test_root_rotation_interrupted_by_a_citadel_restart_loses_no_request(mtls_mesh: DemoMeshFactory) -> None:
    """Citadel stops right after rotate-root and starts again: it resumes the rotation from the previous root
    (which every sidecar still trusts) through the same ACK-gated phases."""
    mesh = await _mesh_with_policy(mtls_mesh, "STRICT", citadel_arguments=("--root-rotation-grace", "1s"))

    await _rotate_root_under_traffic(mesh, restart_citadel=True, seconds=30)


async def test_sidecars_keep_working_while_citadel_is_down(mtls_mesh: DemoMeshFactory) -> None:
    mesh = await _mesh_with_policy(mtls_mesh, "STRICT")
    assert mesh.citadel is not None

    await mesh.citadel.stop()
    responses = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 40)
    await mesh.client(DEMO_CLIENT.name).close()  # new connections too: handshakes use the certificates held
    more = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 20)

    _assert_no_failure(responses + more)
    assert all(caller_identity(r) == CLIENT_ID for r in responses + more)


def _mesh_with_reviews_tls(mesh: LocalMesh, mode: str) -> str:
    """The demo registry with ``trafficPolicy.tls.mode`` set on the reviews DestinationRule."""
    text = render_demo_mesh(mesh.subnet)
    marker = "  host: reviews\n  subsets:"
    assert marker in text
    return text.replace(marker, f"  host: reviews\n  trafficPolicy:\n    tls:\n      mode: {mode}\n  subsets:")


@pytest.mark.parametrize("xds_mode", ["sotw", "delta"])
async def test_destination_rule_tls_overrides_auto_mtls(mtls_mesh: DemoMeshFactory, xds_mode: XdsMode) -> None:
    """Each step changes the DestinationRule, so the client's cluster (and its connection pool) is new: a server's
    mode change alone would leave already-open connections draining gracefully, as Envoy does."""
    mesh = await mtls_mesh(xds_mode=xds_mode)
    await _route_to_v1(mesh)
    await mesh.apply("default-mtls", peer_authentication("STRICT"))
    await mesh.apply("reviews-mesh", _mesh_with_reviews_tls(mesh, "DISABLE"))
    configz = await mesh.wait_synced()
    assert not configz["rejected"], configz["rejected"]

    refused = await mesh.request(DEMO_CLIENT.name, DEMO_URL)
    assert refused.status == 503, "tls DISABLE: a plaintext client meets a STRICT server"

    await mesh.apply("reviews-mesh", _mesh_with_reviews_tls(mesh, "ISTIO_MUTUAL"))
    await mesh.wait_synced()
    mutual = await mesh.request(DEMO_CLIENT.name, DEMO_URL)
    assert mutual.status == 200 and caller_identity(mutual) == CLIENT_ID

    await mesh.apply("default-mtls", peer_authentication("PERMISSIVE"))
    await mesh.apply("reviews-mesh", _mesh_with_reviews_tls(mesh, "DISABLE"))
    await mesh.wait_synced()
    plaintext = await mesh.request(DEMO_CLIENT.name, DEMO_URL)
    assert plaintext.status == 200 and caller_identity(plaintext) is None, "tls DISABLE: the client sends plaintext"
