"""citadel.ca_dir: create-then-load, file modes, plugged-in cacerts, root rotation and retirement, the token key."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from citadel._files import create_file, replace_file
from citadel.ca import (
    SigningCA,
    cert_pem,
    certificate_fingerprint,
    chain_pem,
    create_root,
    generate_key,
    issue_workload_certificate,
    key_pem,
    load_certs_pem,
    verify_workload_certificate,
)
from citadel.ca_dir import (
    CAState,
    load_ca,
    load_or_create_ca,
    load_or_create_token_key,
    retire_previous_root,
    rotate_root,
    write_trust_bundle,
)
from citadel.errors import CAError, CertificateVerificationError
from tests.citadel_builders import TRUST_DOMAIN, WORKLOAD_ID, CAChain, captured_logs, write_cacerts

TTL = timedelta(hours=1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def bundle_on_disk(ca_dir: Path) -> list[object]:
    return list(load_certs_pem((ca_dir / "trust-bundle.pem").read_bytes()))


def issue_and_verify(state: CAState) -> str:
    """Issue a workload certificate from ``state`` and verify the chain it would send against its trust bundle."""
    leaf = issue_workload_certificate(
        state.signer, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=TTL
    )
    sent = load_certs_pem(chain_pem(leaf, state.signer))
    return verify_workload_certificate(sent[0], sent[1:], state.trust_bundle)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return tmp_path / "ca"


@pytest.fixture
def created(ca_dir: Path) -> CAState:
    return load_or_create_ca(ca_dir, TRUST_DOMAIN)


# ---------------------------------------------------------------------------------------------------------------
# self-signed: create, load, modes
# ---------------------------------------------------------------------------------------------------------------


def test_creates_a_self_signed_root_with_safe_modes(ca_dir: Path, created: CAState) -> None:
    assert mode(ca_dir) == 0o700
    assert mode(ca_dir / "root-key.pem") == 0o600
    assert mode(ca_dir / "root-cert.pem") == 0o644
    assert mode(ca_dir / "trust-bundle.pem") == 0o644
    assert sorted(p.name for p in ca_dir.iterdir()) == ["root-cert.pem", "root-key.pem", "trust-bundle.pem"]
    assert created.mode == "self-signed"
    assert created.signer.chain == ()
    assert created.root == created.signer.cert
    assert created.trust_bundle == (created.root,)
    assert created.previous_root is None
    assert created.root.subject.rfc4514_string() == f"O={TRUST_DOMAIN}"
    assert (ca_dir / "root-key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert bundle_on_disk(ca_dir) == [created.root]
    assert issue_and_verify(created) == WORKLOAD_ID


def test_create_then_load_is_stable(ca_dir: Path, created: CAState) -> None:
    again = load_or_create_ca(ca_dir, TRUST_DOMAIN)
    loaded = load_ca(ca_dir)
    for state in (again, loaded):
        assert state.root == created.root
        assert state.signer.key.private_numbers() == created.signer.key.private_numbers()
        assert state.fingerprint == created.fingerprint
        assert state.trust_bundle == created.trust_bundle


def test_fingerprint_follows_the_files(ca_dir: Path, created: CAState) -> None:
    cert, key = create_root(TRUST_DOMAIN)
    (ca_dir / "root-cert.pem").write_bytes(cert_pem(cert))
    (ca_dir / "root-key.pem").write_bytes(key_pem(key))
    reloaded = load_ca(ca_dir)
    assert reloaded.fingerprint != created.fingerprint
    assert reloaded.root == cert
    (ca_dir / "trust-bundle.pem").write_bytes(b"")  # an output, not an input
    assert load_ca(ca_dir).fingerprint == reloaded.fingerprint


def test_load_or_create_refreshes_a_stale_trust_bundle(ca_dir: Path, created: CAState) -> None:
    (ca_dir / "trust-bundle.pem").unlink()
    load_or_create_ca(ca_dir, TRUST_DOMAIN)
    assert bundle_on_disk(ca_dir) == [created.root]


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o660], ids=["0644", "0640", "0604", "0660"])
@pytest.mark.parametrize("key_file", ["root-key.pem", "previous-root-key.pem"], ids=["root", "previous-root"])
def test_refuses_a_key_file_looser_than_0600(ca_dir: Path, created: CAState, key_file: str, loose: int) -> None:
    if key_file.startswith("previous"):
        rotate_root(ca_dir, TRUST_DOMAIN)
    path = ca_dir / key_file
    path.chmod(loose)
    expected = (
        f"{path} has mode {loose:04o}, looser than 0600: a private key must be readable by its owner only; "
        f"run: chmod 600 {path}"
    )
    with pytest.raises(CAError) as raised:
        load_ca(ca_dir)
    assert raised.value.reason == expected
    with pytest.raises(CAError) as raised:
        load_or_create_ca(ca_dir, TRUST_DOMAIN)
    assert raised.value.reason == expected
    path.chmod(0o400)  # stricter is fine
    load_ca(ca_dir)


def _other_key(d: Path) -> None:
    (d / "root-key.pem").write_bytes(key_pem(generate_key()))


def _two_roots(d: Path) -> None:
    (d / "root-cert.pem").write_bytes(2 * (d / "root-cert.pem").read_bytes())


def _ca_cert_without_key(d: Path) -> None:
    (d / "ca-cert.pem").write_bytes((d / "root-cert.pem").read_bytes())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_other_key, r"root-key.pem is not the key of .*root-cert"),
        (lambda d: (d / "root-cert.pem").unlink(), r"root-key.pem exists but .*root-cert.pem does not"),
        (lambda d: (d / "root-key.pem").unlink(), r"root-cert.pem exists but .*root-key.pem does not"),
        (lambda d: (d / "root-cert.pem").write_bytes(b"junk"), "root-cert.pem: no valid PEM certificate"),
        (lambda d: (d / "root-key.pem").write_bytes(b"junk"), "root-key.pem: not a PEM private key"),
        (_two_roots, "holds 2 certificates"),
        (_ca_cert_without_key, "ca-key.pem does not"),
    ],
    ids=["mismatched-key", "no-cert", "no-key", "bad-cert", "bad-key", "two-roots", "ca-cert-without-key"],
)
def test_refuses_an_inconsistent_self_signed_dir(
    ca_dir: Path, created: CAState, damage: Callable[[Path], object], message: str
) -> None:
    damage(ca_dir)
    with pytest.raises(CAError, match=message):
        load_ca(ca_dir)
    with pytest.raises(CAError, match=message):  # never overwritten by a new root either
        load_or_create_ca(ca_dir, TRUST_DOMAIN)


def test_refuses_a_root_that_is_not_self_signed(ca_dir: Path) -> None:
    chain = CAChain(1)
    ca_dir.mkdir(mode=0o700)
    (ca_dir / "root-cert.pem").write_bytes(cert_pem(chain.signer))
    (ca_dir / "root-key.pem").write_bytes(key_pem(chain.signer_key))
    (ca_dir / "root-key.pem").chmod(0o600)
    with pytest.raises(CAError, match="is not self-signed; to sign with an intermediate, use Istio's cacerts"):
        load_ca(ca_dir)


def test_load_without_a_ca_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CAError, match="does not exist"):
        load_ca(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CAError, match=r"no CA in .*empty: expected root-cert.pem and root-key.pem"):
        load_ca(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_refuses_a_file_where_the_dir_should_be(tmp_path: Path) -> None:
    (tmp_path / "ca").write_text("")
    with pytest.raises(CAError, match="is not a directory"):
        load_or_create_ca(tmp_path / "ca", TRUST_DOMAIN)


# ---------------------------------------------------------------------------------------------------------------
# plugged-in CA (Istio's cacerts)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "cert_chain"),
    [
        (1, None),  # Istio's default: ca-cert, root
        (1, ()),  # no cert-chain.pem: the root signed ca-cert directly
        (1, "signer-only"),  # cert-chain.pem holds ca-cert.pem only
        (2, None),  # ca-cert, intermediate, root
        (2, "without-self-and-root"),  # just the intermediate in between
        (3, None),
    ],
    ids=["istio-layout", "no-cert-chain", "cert-chain-is-ca-cert", "two-levels", "two-levels-middle-only", "three"],
)
def test_plugged_in_intermediate_signs_complete_chains(ca_dir: Path, depth: int, cert_chain: object) -> None:
    chain = CAChain(depth)
    if cert_chain == "signer-only":
        cert_chain = (chain.signer,)
    elif cert_chain == "without-self-and-root":
        cert_chain = chain.above_signer[:-1]
    write_cacerts(ca_dir, chain, cert_chain=cert_chain)  # type: ignore[arg-type]

    state = load_or_create_ca(ca_dir, TRUST_DOMAIN)
    assert state.mode == "plugged-in"
    assert state.signer.cert == chain.signer
    assert state.signer.chain == chain.above_signer
    assert state.trust_bundle == (chain.root,)
    assert state.previous_root is None
    assert not (ca_dir / "root-key.pem").exists()  # nothing self-signed was created
    assert bundle_on_disk(ca_dir) == [chain.root]
    assert issue_and_verify(state) == WORKLOAD_ID
    assert load_ca(ca_dir).fingerprint == state.fingerprint


def test_plugged_in_with_two_roots_trusts_both(ca_dir: Path) -> None:
    chain, other_root = CAChain(1), create_root(TRUST_DOMAIN)[0]
    write_cacerts(ca_dir, chain, roots=(other_root, chain.root))
    state = load_ca(ca_dir)
    assert state.signer.root == chain.root
    assert state.trust_bundle == (chain.root, other_root)  # the root of the signer first


def _missing_intermediate(d: Path, c: CAChain) -> None:
    write_cacerts(d, c, cert_chain=(c.signer,))


def _out_of_order(d: Path, c: CAChain) -> None:
    write_cacerts(d, c, cert_chain=(c.signer, c.root, c.intermediates[0]))


def _no_root_cert(d: Path, c: CAChain) -> None:
    write_cacerts(d, c)
    (d / "root-cert.pem").unlink()


def _mismatched_ca_key(d: Path, c: CAChain) -> None:
    write_cacerts(d, c)
    (d / "ca-key.pem").write_bytes(key_pem(generate_key()))


def _loose_ca_key(d: Path, c: CAChain) -> None:
    write_cacerts(d, c)
    (d / "ca-key.pem").chmod(0o640)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (_missing_intermediate, r"does not reach a root in .*list every intermediate"),
        (_out_of_order, "is not signed by the next certificate"),
        (_no_root_cert, r"plugged-in CA .*root-cert.pem missing"),
        (_mismatched_ca_key, "ca-key.pem is not the key"),
        (_loose_ca_key, "ca-key.pem has mode 0640"),
    ],
    ids=["missing-intermediate", "out-of-order", "no-root-cert", "mismatched-key", "loose-key"],
)
def test_refuses_a_broken_cacerts(ca_dir: Path, setup: Callable[[Path, CAChain], None], message: str) -> None:
    setup(ca_dir, CAChain(2))
    with pytest.raises(CAError, match=message):
        load_or_create_ca(ca_dir, TRUST_DOMAIN)


def test_refuses_a_plugged_in_cert_that_is_not_a_ca(ca_dir: Path) -> None:
    chain = CAChain(1)
    write_cacerts(ca_dir, chain)
    leaf_key = generate_key()
    leaf = issue_workload_certificate(
        SigningCA(cert=chain.signer, key=chain.signer_key, chain=chain.above_signer),
        spiffe_id=WORKLOAD_ID,
        public_key=leaf_key.public_key(),
        ttl=TTL,
    )
    (ca_dir / "ca-cert.pem").write_bytes(cert_pem(leaf))
    (ca_dir / "ca-key.pem").write_bytes(key_pem(leaf_key))
    with pytest.raises(CAError, match="is not a CA certificate"):
        load_ca(ca_dir)


# ---------------------------------------------------------------------------------------------------------------
# root rotation
# ---------------------------------------------------------------------------------------------------------------


def test_rotation_keeps_both_roots_until_the_previous_one_is_retired(ca_dir: Path, created: CAState) -> None:
    old_root = created.root
    old_leaf = issue_workload_certificate(
        created.signer, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=TTL
    )
    old_key_file = (ca_dir / "root-key.pem").read_bytes()

    rotating = rotate_root(ca_dir, TRUST_DOMAIN)
    new_root = rotating.root
    assert new_root != old_root
    assert rotating.signer.cert == new_root  # new certificates come from the new root
    assert rotating.previous_root == old_root
    assert rotating.trust_bundle == (new_root, old_root)
    assert bundle_on_disk(ca_dir) == [new_root, old_root]
    assert (ca_dir / "previous-root-key.pem").read_bytes() == old_key_file
    assert mode(ca_dir / "previous-root-key.pem") == 0o600
    assert mode(ca_dir / "root-key.pem") == 0o600
    assert rotating.fingerprint != created.fingerprint
    assert load_ca(ca_dir).fingerprint == rotating.fingerprint
    # during the rotation, certificates from either root verify against the bundle
    assert verify_workload_certificate(old_leaf, [], rotating.trust_bundle) == WORKLOAD_ID
    assert issue_and_verify(rotating) == WORKLOAD_ID

    with pytest.raises(CAError, match="a root rotation is already in progress"):
        rotate_root(ca_dir, TRUST_DOMAIN)

    retired = retire_previous_root(ca_dir)
    assert retired.trust_bundle == (new_root,)
    assert retired.previous_root is None
    assert retired.signer.cert == new_root
    assert bundle_on_disk(ca_dir) == [new_root]
    assert not (ca_dir / "previous-root-cert.pem").exists()
    assert not (ca_dir / "previous-root-key.pem").exists()
    with pytest.raises(CertificateVerificationError):  # the old root has left the bundle
        verify_workload_certificate(old_leaf, [], retired.trust_bundle)
    assert issue_and_verify(retired) == WORKLOAD_ID

    assert rotate_root(ca_dir, TRUST_DOMAIN).previous_root == new_root  # the next rotation may start


def test_retire_without_a_rotation_changes_nothing(ca_dir: Path, created: CAState) -> None:
    state = retire_previous_root(ca_dir)
    assert state.trust_bundle == created.trust_bundle
    assert state.fingerprint == created.fingerprint


def test_rotation_of_a_plugged_in_ca_is_refused(ca_dir: Path) -> None:
    write_cacerts(ca_dir, CAChain(1))
    before = sorted(p.name for p in ca_dir.iterdir())
    with pytest.raises(CAError, match="replace cacerts to rotate a plugged-in CA"):
        rotate_root(ca_dir, TRUST_DOMAIN)
    with pytest.raises(CAError, match="plugged-in CA has no previous root"):
        retire_previous_root(ca_dir)
    assert sorted(p.name for p in ca_dir.iterdir()) == before


def test_rotation_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(CAError, match="does not exist"):
        rotate_root(tmp_path / "absent", TRUST_DOMAIN)
    with pytest.raises(CAError, match="no CA in"):
        rotate_root(tmp_path, TRUST_DOMAIN)


# crash states: what a rotate-root or retire stopped half way leaves, and how loading reads it


def test_crash_after_copying_the_root_is_no_rotation(ca_dir: Path, created: CAState) -> None:
    shutil.copy2(ca_dir / "root-key.pem", ca_dir / "previous-root-key.pem")
    shutil.copy2(ca_dir / "root-cert.pem", ca_dir / "previous-root-cert.pem")
    state = load_ca(ca_dir)
    assert state.previous_root is None
    assert state.trust_bundle == (created.root,)
    assert rotate_root(ca_dir, TRUST_DOMAIN).previous_root == created.root  # and a rotation can start again


def test_lone_previous_key_is_a_harmless_leftover(ca_dir: Path, created: CAState) -> None:
    shutil.copy2(ca_dir / "root-key.pem", ca_dir / "previous-root-key.pem")
    assert load_ca(ca_dir).trust_bundle == (created.root,)
    assert load_or_create_ca(ca_dir, TRUST_DOMAIN).root == created.root
    retire_previous_root(ca_dir)
    assert not (ca_dir / "previous-root-key.pem").exists()


def test_lone_previous_cert_is_refused(ca_dir: Path, created: CAState) -> None:
    rotate_root(ca_dir, TRUST_DOMAIN)
    (ca_dir / "previous-root-key.pem").unlink()
    with pytest.raises(CAError, match=r"previous-root-cert.pem exists without .*previous-root-key.pem"):
        load_ca(ca_dir)


def test_crash_while_writing_the_new_root_says_how_to_restore(ca_dir: Path, created: CAState) -> None:
    shutil.copy2(ca_dir / "root-key.pem", ca_dir / "previous-root-key.pem")
    shutil.copy2(ca_dir / "root-cert.pem", ca_dir / "previous-root-cert.pem")
    (ca_dir / "root-key.pem").write_bytes(key_pem(generate_key()))  # the new key, but not yet the new cert
    with pytest.raises(CAError, match=r"rotate-root was interrupted.*mv .*previous-root-cert.pem .*root-cert.pem"):
        load_ca(ca_dir)
    (ca_dir / "previous-root-cert.pem").rename(ca_dir / "root-cert.pem")
    (ca_dir / "previous-root-key.pem").rename(ca_dir / "root-key.pem")
    assert load_ca(ca_dir).root == created.root


def test_write_trust_bundle(ca_dir: Path, created: CAState) -> None:
    (ca_dir / "trust-bundle.pem").unlink()
    path = write_trust_bundle(ca_dir, created)
    assert path == ca_dir / "trust-bundle.pem"
    assert bundle_on_disk(ca_dir) == [created.root]
    assert not [p for p in ca_dir.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------------------------
# the token signing key
# ---------------------------------------------------------------------------------------------------------------


def test_token_key_is_created_once_and_survives_root_rotation(ca_dir: Path) -> None:
    key = load_or_create_token_key(ca_dir)
    assert isinstance(key.curve, ec.SECP256R1)
    assert mode(ca_dir) == 0o700
    assert mode(ca_dir / "token-signing-key.pem") == 0o600
    state = load_or_create_ca(ca_dir, TRUST_DOMAIN)  # a token key alone is not a CA: the root is created
    assert state.signer.key.public_key() != key.public_key()
    rotate_root(ca_dir, TRUST_DOMAIN)
    assert load_or_create_token_key(ca_dir).private_numbers() == key.private_numbers()


@pytest.mark.parametrize(
    ("content", "file_mode", "message"),
    [
        (lambda: key_pem(ec.generate_private_key(ec.SECP256R1())), 0o644, r"has mode 0644, .*chmod 600"),
        (lambda: key_pem(ec.generate_private_key(ec.SECP384R1())), 0o600, "must hold an ECDSA P-256 key"),
        (lambda: key_pem(generate_key("rsa")), 0o600, "must hold an ECDSA P-256 key"),
        (lambda: b"junk", 0o600, "not a PEM private key"),
    ],
    ids=["loose-mode", "p384", "rsa", "junk"],
)
def test_token_key_refusals(ca_dir: Path, content: Callable[[], bytes], file_mode: int, message: str) -> None:
    ca_dir.mkdir(mode=0o700)
    path = ca_dir / "token-signing-key.pem"
    path.write_bytes(content())
    path.chmod(file_mode)
    with pytest.raises(CAError, match=message):
        load_or_create_token_key(ca_dir)


def test_creating_a_file_never_overwrites_one_another_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "token-signing-key.pem"
    assert create_file(path, b"first", 0o600)
    assert not create_file(path, b"second", 0o600)
    assert path.read_bytes() == b"first"
    assert mode(path) == 0o600
    replace_file(path, b"third", 0o644)
    assert (path.read_bytes(), mode(path)) == (b"third", 0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token-signing-key.pem"]  # no temporary files left


def test_logs_name_roots_by_fingerprint_and_never_carry_keys(ca_dir: Path) -> None:
    with captured_logs() as logs:
        created = load_or_create_ca(ca_dir, TRUST_DOMAIN)
        load_or_create_token_key(ca_dir)
        rotated = rotate_root(ca_dir, TRUST_DOMAIN)
        retire_previous_root(ca_dir)
    events = [entry["event"] for entry in logs]
    assert events == [
        "ca_root_created",
        "ca_loaded",
        "token_signing_key_created",
        "ca_root_rotated",
        "ca_previous_root_retired",
    ]
    assert logs[3]["root"] == certificate_fingerprint(rotated.root)
    assert logs[3]["previous_root"] == certificate_fingerprint(created.root)
    secrets = [(ca_dir / name).read_bytes().decode() for name in ("root-key.pem", "token-signing-key.pem")] + [
        key_pem(created.signer.key).decode()
    ]
    text = repr(logs)
    assert "PRIVATE KEY" not in text
    assert not any(secret.splitlines()[1] in text for secret in secrets)
