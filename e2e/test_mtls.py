"""Mutual TLS between sidecars with identities from Citadel, decided by PeerAuthentication: real Envoy, real TLS."""

from __future__ import annotations

import asyncio
import time

import pytest

from e2e.harness import LocalMesh, MtlsMeshFactory
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


async def test_strict_refuses_plaintext_and_serves_sidecars_with_the_callers_identity(
    mtls_mesh: MtlsMeshFactory,
) -> None:
    mesh = await mtls_mesh()
    await _route_to_v1(mesh)
    await mesh.apply("mesh-mtls", peer_authentication("STRICT", namespace="istio-system"))
    await mesh.wait_synced()
    inbound = f"http://{mesh.workloads['reviews-v1'].address}:{REVIEWS_PORT}/"

    plaintext = await plaintext_get(inbound, source=mesh.address(OUTSIDER_HOST))
    through_sidecar = await mesh.request(DEMO_CLIENT.name, DEMO_URL)

    assert isinstance(plaintext, str), f"STRICT must refuse a plaintext caller at the transport, got {plaintext}"
    assert (through_sidecar.status, through_sidecar.version) == (200, "v1")
    assert caller_identity(through_sidecar) == CLIENT_ID


async def test_permissive_serves_plaintext_and_mtls_on_the_same_port(mtls_mesh: MtlsMeshFactory) -> None:
    mesh = await mtls_mesh()
    await _route_to_v1(mesh)
    await mesh.apply("default-mtls", peer_authentication("PERMISSIVE"))
    await mesh.wait_synced()
    inbound = f"http://{mesh.workloads['reviews-v1'].address}:{REVIEWS_PORT}/"

    plaintext = await plaintext_get(inbound, source=mesh.address(OUTSIDER_HOST))
    through_sidecar = await mesh.request(DEMO_CLIENT.name, DEMO_URL)

    assert plaintext == 200
    assert through_sidecar.status == 200 and caller_identity(through_sidecar) == CLIENT_ID


async def test_disable_is_plaintext_between_sidecars(mtls_mesh: MtlsMeshFactory) -> None:
    mesh = await mtls_mesh()
    await _route_to_v1(mesh)
    await mesh.apply("default-mtls", peer_authentication("DISABLE"))
    await mesh.wait_synced()
    inbound = f"http://{mesh.workloads['reviews-v1'].address}:{REVIEWS_PORT}/"

    plaintext = await plaintext_get(inbound, source=mesh.address(OUTSIDER_HOST))
    through_sidecar = await mesh.request(DEMO_CLIENT.name, DEMO_URL)

    assert plaintext == 200
    assert through_sidecar.status == 200
    assert caller_identity(through_sidecar) is None, "no TLS, so no client certificate to forward"


async def test_a_forged_token_gets_no_certificate(mtls_mesh: MtlsMeshFactory) -> None:
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


async def _traffic_for(mesh: LocalMesh, seconds: float) -> list[MeshResponse]:
    responses: list[MeshResponse] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        responses.extend(await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 4, concurrency=4))
        await asyncio.sleep(0.05)
    return responses


def _failures(responses: list[MeshResponse]) -> list[tuple[int, str]]:
    return [(r.status, r.text[:120]) for r in responses if r.status != 200]


async def test_short_lived_certificates_rotate_under_traffic_without_a_failed_request(
    mtls_mesh: MtlsMeshFactory,
) -> None:
    mesh = await mtls_mesh(cert_ttl="20s")
    await _route_to_v1(mesh)
    await mesh.apply("mesh-mtls", peer_authentication("STRICT", namespace="istio-system"))
    await mesh.wait_synced()
    first = {c["serial"] for c in await workload_certificates(mesh, "reviews-v1")}

    responses = await _traffic_for(mesh, 60)

    later = {c["serial"] for c in await workload_certificates(mesh, "reviews-v1")}
    assert first and later and first.isdisjoint(later), f"serial did not change: {first} -> {later}"
    assert not _failures(responses), (
        f"{len(_failures(responses))} of {len(responses)} failed: {_failures(responses)[:3]}"
    )
    assert len(responses) > 100


async def test_root_rotation_under_traffic_without_a_failed_request(mtls_mesh: MtlsMeshFactory) -> None:
    mesh = await mtls_mesh(citadel_arguments=("--root-rotation-grace", "1s"))
    await _route_to_v1(mesh)
    await mesh.apply("mesh-mtls", peer_authentication("STRICT", namespace="istio-system"))
    await mesh.wait_synced()
    assert mesh.citadel is not None
    old_roots = {s for c in await workload_certificates(mesh, "reviews-v1") for s in c["ca_serials"]}
    traffic = asyncio.create_task(_traffic_for(mesh, 25))

    process = await asyncio.create_subprocess_exec(
        *mesh.citadel.command()[:3], "rotate-root", "--ca-dir", str(mesh.citadel.ca_dir)
    )
    assert await process.wait() == 0
    previous = mesh.citadel.ca_dir / "previous-root-cert.pem"
    deadline = time.monotonic() + 20
    while previous.exists() and time.monotonic() < deadline:  # Citadel retires the old root when done
        await asyncio.sleep(0.5)
    responses = await traffic

    assert not previous.exists(), "the rotation did not finish within 20 s"
    new_roots = {s for c in await workload_certificates(mesh, "reviews-v1") for s in c["ca_serials"]}
    assert new_roots and new_roots.isdisjoint(old_roots), (old_roots, new_roots)
    assert not _failures(responses), (
        f"{len(_failures(responses))} of {len(responses)} failed: {_failures(responses)[:3]}"
    )

    # Sidecars bootstrapped under the old root reconnect to a restarted Citadel, whose serving certificate now
    # chains to the new root: their bootstrap reloads the trust bundle Citadel rewrote.
    await mesh.citadel.stop()
    await mesh.citadel.start()
    deadline = time.monotonic() + 20
    accounts: set[str] = set()
    while time.monotonic() < deadline:
        streams = (await mesh.citadel.get_json("/debug/sdsz"))["streams"]
        accounts = {stream["identity"].rsplit("/", 1)[-1] for stream in streams}
        if accounts == {"bookinfo-productpage", "bookinfo-reviews"}:
            break
        await asyncio.sleep(0.5)
    assert accounts == {"bookinfo-productpage", "bookinfo-reviews"}, "sidecars did not reconnect to Citadel"


async def test_sidecars_keep_working_while_citadel_is_down(mtls_mesh: MtlsMeshFactory) -> None:
    mesh = await mtls_mesh()
    await _route_to_v1(mesh)
    await mesh.apply("mesh-mtls", peer_authentication("STRICT", namespace="istio-system"))
    await mesh.wait_synced()
    assert mesh.citadel is not None

    await mesh.citadel.stop()
    responses = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 40)
    await mesh.client(DEMO_CLIENT.name).close()  # new connections too: handshakes use the certificates held
    more = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, 20)

    assert not _failures(responses + more)
    assert all(caller_identity(r) == CLIENT_ID for r in responses + more)


def _mesh_with_reviews_tls(mesh: LocalMesh, mode: str) -> str:
    """The demo registry with ``trafficPolicy.tls.mode`` set on the reviews DestinationRule."""
    text = render_demo_mesh(mesh.subnet)
    marker = "  host: reviews\n  subsets:"
    assert marker in text
    return text.replace(marker, f"  host: reviews\n  trafficPolicy:\n    tls:\n      mode: {mode}\n  subsets:")


@pytest.mark.parametrize("xds_mode", ["sotw", "delta"])
async def test_destination_rule_tls_overrides_auto_mtls(mtls_mesh: MtlsMeshFactory, xds_mode: XdsMode) -> None:
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


async def test_root_rotation_interrupted_by_a_citadel_restart_loses_no_request(mtls_mesh: MtlsMeshFactory) -> None:
    """Citadel stops right after rotate-root and starts again: it resumes the rotation from the previous root
    (which every sidecar still trusts) through the same ACK-gated phases."""
    mesh = await mtls_mesh(citadel_arguments=("--root-rotation-grace", "1s"))
    await _route_to_v1(mesh)
    await mesh.apply("mesh-mtls", peer_authentication("STRICT", namespace="istio-system"))
    await mesh.wait_synced()
    assert mesh.citadel is not None
    old_roots = {s for c in await workload_certificates(mesh, "reviews-v1") for s in c["ca_serials"]}
    traffic = asyncio.create_task(_traffic_for(mesh, 30))

    await mesh.citadel.stop()
    process = await asyncio.create_subprocess_exec(
        *mesh.citadel.command()[:3], "rotate-root", "--ca-dir", str(mesh.citadel.ca_dir)
    )
    assert await process.wait() == 0
    await mesh.citadel.start()
    previous = mesh.citadel.ca_dir / "previous-root-cert.pem"
    deadline = time.monotonic() + 25
    while previous.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    responses = await traffic

    assert not previous.exists(), "the resumed rotation did not finish within 25 s"
    new_roots = {s for c in await workload_certificates(mesh, "reviews-v1") for s in c["ca_serials"]}
    assert new_roots and new_roots.isdisjoint(old_roots), (old_roots, new_roots)
    assert not _failures(responses), (
        f"{len(_failures(responses))} of {len(responses)} failed: {_failures(responses)[:3]}"
    )
