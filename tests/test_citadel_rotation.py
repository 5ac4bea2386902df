"""Certificate rotation and root rotation as a workload sees them on a real SDS stream (SotW and delta)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from cryptography import x509

from citadel.authority import Authority, WorkloadCertificate
from citadel.ca import SigningCA, bundle_pem, create_root, verify_workload_certificate
from citadel.ca_dir import PREVIOUS_ROOT_CERT, ROOT_CERT, TRUST_BUNDLE, load_ca, rotate_root
from citadel.errors import CertificateVerificationError
from tests.citadel_sds_client import SdsClient, decode_secrets, decode_workload
from tests.conftest import StartCitadel

REVIEWS_ID = "spiffe://cluster.local/ns/default/sa/reviews"
MODES = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])


class Held:
    """What the workload holds after each response: the latest ``default`` and ``ROOTCA``, and which changed."""

    def __init__(self, client: SdsClient) -> None:
        self.client = client
        self.chain: tuple[x509.Certificate, ...] = ()
        self.roots: tuple[x509.Certificate, ...] = ()

    async def next(self, timeout: float = 10.0) -> set[str]:
        """Read one response, ACK it, and return the names it carried."""
        response = await self.client.recv(timeout)
        secrets = decode_workload(response)
        names = set(decode_secrets(response))
        if "default" in names:
            self.chain = secrets.chain
        if "ROOTCA" in names:
            self.roots = secrets.roots
        self.client.ack(response, "default", "ROOTCA")
        return names

    @property
    def serial(self) -> int:
        return self.chain[0].serial_number

    def verifies_with(self, *roots: x509.Certificate) -> bool:
        try:
            return verify_workload_certificate(self.chain[0], self.chain[1:], roots) == REVIEWS_ID
        except CertificateVerificationError:
            return False


def test_rotation_time_is_the_fraction_of_the_lifetime_from_issuance() -> None:
    issued = datetime(2030, 1, 1, tzinfo=UTC)
    certificate = _certificate(issued=issued, lifetime=timedelta(hours=24))

    assert certificate.rotate_at(0.5) == issued + timedelta(hours=12)
    assert certificate.rotate_at(0.8) == issued + timedelta(hours=19, minutes=12)


@MODES
async def test_default_is_reissued_and_pushed_when_half_its_lifetime_has_passed(
    start_citadel: StartCitadel, delta: bool
) -> None:
    citadel = await start_citadel(cert_ttl=timedelta(seconds=2), rotation_fraction=0.5)
    async with citadel.channel() as channel:
        held = Held(SdsClient(channel, token=citadel.token(), delta=delta))
        held.client.subscribe("default", "ROOTCA")
        assert await held.next() == {"default", "ROOTCA"}
        first, first_roots, started = held.serial, held.roots, time.monotonic()

        changed = await held.next(timeout=5)
        elapsed = time.monotonic() - started
        await held.client.close()

    assert "default" in changed and held.serial != first
    assert held.roots == first_roots
    assert held.verifies_with(*held.roots)
    assert 0.5 < elapsed < 3.0, f"re-issued after {elapsed:.2f}s; half of a 2s lifetime is about 1s"


@MODES
async def test_root_rotation_trusts_both_roots_then_reissues_then_retires_the_old_root(
    start_citadel: StartCitadel, delta: bool
) -> None:
    citadel = await start_citadel()
    async with citadel.channel() as channel:
        held = Held(SdsClient(channel, token=citadel.token(), delta=delta))
        held.client.subscribe("default", "ROOTCA")
        await held.next()
        [old_root] = held.roots
        original = held.serial

        with structlog.testing.capture_logs() as logs:
            await asyncio.to_thread(rotate_root, citadel.ca_dir, "cluster.local")
            new_root = load_ca(citadel.ca_dir).root

            # phase 1: both roots trusted, the certificate is still the old root's
            assert "ROOTCA" in await held.next()
            assert held.roots == (new_root, old_root) and held.serial == original

            # phase 2: re-issued under the new root
            assert "default" in await held.next()
            assert held.serial != original and held.verifies_with(new_root) and not held.verifies_with(old_root)
            assert held.roots == (new_root, old_root)

            # phase 3: the old root retired
            assert await held.next() == ({"ROOTCA"} if delta else {"ROOTCA", "default"})
            assert held.roots == (new_root,)
            await held.client.silent_for(0.3)
        await held.client.close()

    assert not (citadel.ca_dir / PREVIOUS_ROOT_CERT).exists()
    assert (citadel.ca_dir / TRUST_BUNDLE).read_bytes() == bundle_pem([new_root])
    phases = [e["phase"] for e in logs if e["event"] == "root rotation phase started"]
    assert phases == ["trust-both", "reissue", "retire"]
    # Citadel's own serving certificate moved to the new root too: a client trusting only the new root connects.
    async with citadel.channel(bundle_pem([new_root])) as fresh:
        client = SdsClient(fresh, token=citadel.token())
        client.subscribe("ROOTCA")
        assert decode_workload(await client.recv()).roots == (new_root,)
        await client.close()


async def test_a_root_rotation_phase_waits_for_every_stream_to_ack(start_citadel: StartCitadel) -> None:
    citadel = await start_citadel(root_rotation_ack_timeout=5.0)
    async with citadel.channel() as channel:
        held = Held(SdsClient(channel, token=citadel.token()))
        held.client.subscribe("default", "ROOTCA")
        await held.next()
        quiet = SdsClient(channel, token=citadel.token("default", "ratings"))  # never ACKs phase 1 at first
        quiet.subscribe("ROOTCA")
        await quiet.recv()

        await asyncio.to_thread(rotate_root, citadel.ca_dir, "cluster.local")
        await held.next()  # phase 1, ACKed by held
        phase_one = await quiet.recv()
        await held.client.silent_for(1.0)  # phase 2 waits for the quiet stream's ACK
        quiet.ack(phase_one, "ROOTCA")

        assert "default" in await held.next(timeout=2.0)
        await held.client.close()
        await quiet.close()


async def test_a_rotation_found_in_progress_at_startup_is_finished(start_citadel: StartCitadel, tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = await start_citadel(ca_dir=ca_dir)
    await first.server.stop(grace=0)
    rotate_root(ca_dir, "cluster.local")
    old_root = load_ca(ca_dir).trust_bundle[1]

    new_root = load_ca(ca_dir).trust_bundle[0]

    citadel = await start_citadel(ca_dir=ca_dir, root_rotation_ack_timeout=1.0)
    async with citadel.channel() as channel:
        held = Held(SdsClient(channel, token=citadel.token()))
        held.client.subscribe("default", "ROOTCA")
        await held.next()
        # Restarted mid-rotation, Citadel signs with the previous root, which every workload still trusts ...
        assert held.roots == (new_root, old_root) and held.verifies_with(old_root)
        seen = []
        for _ in range(6):  # ... then re-issues under the new root and retires the old one, phase by phase
            await held.next(timeout=10)
            seen.append((len(held.roots), held.verifies_with(new_root) and not held.verifies_with(old_root)))
            if len(held.roots) == 1:
                break
        await held.client.close()

    assert (2, True) in seen, f"re-issued under the new root while both were trusted: {seen}"
    assert held.roots == (new_root,)
    assert not (ca_dir / PREVIOUS_ROOT_CERT).exists()


async def test_an_unreadable_ca_directory_keeps_the_current_ca(start_citadel: StartCitadel) -> None:
    citadel = await start_citadel()
    root_file = citadel.ca_dir / ROOT_CERT
    good = root_file.read_bytes()
    async with citadel.channel() as channel:
        held = Held(SdsClient(channel, token=citadel.token()))
        held.client.subscribe("default", "ROOTCA")
        await held.next()

        with structlog.testing.capture_logs() as logs:
            root_file.write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated")
            await held.client.silent_for(0.5)
            root_file.write_bytes(good)
            await held.client.silent_for(0.3)
        await held.client.close()

    assert [e for e in logs if e["event"] == "CA directory unreadable; keeping the current CA"]
    assert citadel.server.rotation is not None and citadel.server.rotation.rotations == 0


def _certificate(*, issued: datetime, lifetime: timedelta) -> WorkloadCertificate:
    """A WorkloadCertificate whose leaf expires ``lifetime`` after ``issued`` (signed by a throwaway CA)."""
    root, key = create_root("cluster.local", now=issued)
    authority = Authority(signer=SigningCA(cert=root, key=key), trust_bundle=(root,), cert_ttl=lifetime)
    return authority.issue_workload(REVIEWS_ID, now=issued)
