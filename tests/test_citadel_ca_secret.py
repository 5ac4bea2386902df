"""citadel.ca_secret and ca_secret_store: the self-signed CA in Istio's ``istio-ca-secret`` layout and back, the
Secret's name, and the start-up order (plug-in CA, Secret, new CA; a lost create race) and the Secret following a
root rotation, against an in-memory Secret."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from citadel.ca import cert_pem, key_pem, load_certs_pem
from citadel.ca_dir import (
    CAState,
    load_or_create_ca,
    load_or_create_token_key,
    retire_previous_root,
    rotate_root,
)
from citadel.ca_secret import (
    SecretRef,
    ca_files_from_secret,
    default_ca_secret,
    secret_data,
    state_from_secret,
)
from citadel.ca_secret_store import CASecretSync, StoredSecret, load_or_create_ca_with_secret
from citadel.errors import CAError, KubeApiError
from tests.citadel_builders import TRUST_DOMAIN, CAChain, captured_logs, write_cacerts

REF = SecretRef("istio-system", "istio-ca-secret")


class MemorySecrets:
    """One Secret in memory; ``race`` is created by "another replica" just before our first create."""

    def __init__(self, data: Mapping[str, str] | None = None, *, race: Mapping[str, str] | None = None) -> None:
        self.data = dict(data) if data is not None else None
        self.version = 1
        self.race = dict(race) if race is not None else None
        self.calls: list[str] = []
        self.fail_writes = 0

    @property
    def ref(self) -> SecretRef:
        return REF

    def read(self) -> StoredSecret | None:
        self.calls.append("read")
        return None if self.data is None else StoredSecret(data=dict(self.data), resource_version=str(self.version))

    def create(self, data: Mapping[str, str]) -> bool:
        self.calls.append("create")
        self._maybe_fail()
        if self.race is not None:
            self.data, self.race = self.race, None
        if self.data is not None:
            return False
        self.data = dict(data)
        return True

    def replace(self, data: Mapping[str, str], resource_version: str) -> bool:
        self.calls.append("replace")
        self._maybe_fail()
        if self.data is None or resource_version != str(self.version):
            return False
        self.data, self.version = dict(data), self.version + 1
        return True

    def _maybe_fail(self) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise KubeApiError("HTTP 503")


def _decoded(data: Mapping[str, str], key: str) -> bytes:
    return base64.b64decode(data[key])


def _ca(tmp_path: Path, name: str = "other") -> tuple[CAState, ec.EllipticCurvePrivateKey]:
    directory = tmp_path / name
    return load_or_create_ca(directory, TRUST_DOMAIN), load_or_create_token_key(directory)


# ---- the Secret's name -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("istio-system/istio-ca-secret", SecretRef("istio-system", "istio-ca-secret")),
        ("casec-1/ca.v2", SecretRef("casec-1", "ca.v2")),
        ("istio-ca-secret", "is not NAMESPACE/NAME"),
        ("/istio-ca-secret", "namespace '' is not a DNS label"),
        ("Istio/x", "namespace 'Istio' is not a DNS label"),
        ("istio-system/", "name '' is not a DNS subdomain"),
        ("istio-system/a/b", "name 'a/b' is not a DNS subdomain"),
    ],
    ids=["istio", "dotted-name", "no-slash", "no-namespace", "upper-case", "no-name", "two-slashes"],
)
def test_a_secret_ref_is_namespace_slash_name(text: str, expected: SecretRef | str) -> None:
    if isinstance(expected, SecretRef):
        assert SecretRef.parse(text) == expected
        assert str(SecretRef.parse(text)) == text
    else:
        with pytest.raises(ValueError, match=expected):
            SecretRef.parse(text)


@pytest.mark.parametrize(
    ("environ", "file_text", "expected"),
    [
        ({"POD_NAMESPACE": "istio-system"}, "other", "istio-system/istio-ca-secret"),
        ({}, "mesh-ca\n", "mesh-ca/istio-ca-secret"),
        ({"POD_NAMESPACE": " "}, None, "POD_NAMESPACE is not set"),
    ],
    ids=["pod-namespace-env", "service-account-file", "neither"],
)
def test_in_a_pod_the_secret_is_istio_ca_secret_of_its_namespace(
    tmp_path: Path, environ: dict[str, str], file_text: str | None, expected: str
) -> None:
    namespace_file = tmp_path / "namespace"
    if file_text is not None:
        namespace_file.write_text(file_text)
    if expected.endswith("istio-ca-secret"):
        assert str(default_ca_secret(environ, namespace_file)) == expected
    else:
        with pytest.raises(CAError, match=expected):
            default_ca_secret(environ, namespace_file)


# ---- the layout --------------------------------------------------------------------------------------------------


def test_the_secret_holds_istios_keys_and_meshplanes_token_key(tmp_path: Path) -> None:
    state, token_key = _ca(tmp_path)
    data = secret_data(state, token_key)
    assert sorted(data) == ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "token-signing-key.pem"]
    assert _decoded(data, "ca-cert.pem") == cert_pem(state.root)
    assert _decoded(data, "ca-key.pem") == key_pem(state.signer.key)
    assert _decoded(data, "root-cert.pem") == cert_pem(state.root)
    assert _decoded(data, "token-signing-key.pem") == key_pem(token_key)


def test_a_rotating_ca_keeps_both_roots_in_the_secret_and_loads_back_rotating(tmp_path: Path) -> None:
    load_or_create_ca(tmp_path / "ca", TRUST_DOMAIN)
    rotated = rotate_root(tmp_path / "ca", TRUST_DOMAIN)
    data = secret_data(rotated, load_or_create_token_key(tmp_path / "ca"))
    assert load_certs_pem(_decoded(data, "root-cert.pem")) == list(rotated.trust_bundle)
    assert _decoded(data, "previous-root-cert.pem") == cert_pem(rotated.trust_bundle[1])
    loaded = state_from_secret(REF, data)
    assert loaded.trust_bundle == rotated.trust_bundle
    assert loaded.previous_signer is not None and loaded.previous_signer.cert == rotated.trust_bundle[1]


def test_a_plugged_in_ca_is_never_put_in_the_secret(tmp_path: Path) -> None:
    write_cacerts(tmp_path / "ca", CAChain(1))
    with pytest.raises(CAError, match="plugged-in CA"):
        secret_data(load_or_create_ca(tmp_path / "ca", TRUST_DOMAIN), ec.generate_private_key(ec.SECP256R1()))


def _broken(tmp_path: Path, change: str) -> dict[str, str]:
    state, token_key = _ca(tmp_path)
    data = secret_data(state, token_key)
    other, _ = _ca(tmp_path, "third")
    if change == "no-key":
        del data["ca-key.pem"]
    elif change == "empty-cert":
        data["ca-cert.pem"] = ""
    elif change == "not-base64":
        data["ca-key.pem"] = "%%%"
    elif change == "other-key":
        data["ca-key.pem"] = base64.b64encode(key_pem(other.signer.key)).decode()
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-key", "Secret istio-system/istio-ca-secret holds no ca-key.pem"),
        ("empty-cert", "holds no ca-cert.pem"),
        ("not-base64", "Secret istio-system/istio-ca-secret: ca-key.pem is not base64"),
        ("other-key", "ca-key.pem of Secret istio-system/istio-ca-secret is not the key of ca-cert.pem of Secret"),
    ],
    ids=["no-key", "empty-cert", "not-base64", "other-key"],
)
def test_a_bad_secret_is_refused_naming_its_key(tmp_path: Path, change: str, message: str) -> None:
    with pytest.raises(CAError, match=message):
        state_from_secret(REF, _broken(tmp_path, change))


def test_istios_empty_keys_are_not_files() -> None:
    data = {"ca-cert.pem": "YQ==", "ca-key.pem": "Yg==", "cert-chain.pem": "", "key.pem": "", "root-cert.pem": "Yw=="}
    assert ca_files_from_secret(REF, data) == {"root-cert.pem": b"a", "root-key.pem": b"b"}


# ---- start: plug-in CA, Secret, new CA ---------------------------------------------------------------------------


def test_without_a_secret_the_new_ca_and_token_key_are_stored(tmp_path: Path) -> None:
    secrets = MemorySecrets()
    with captured_logs() as logs:
        state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert secrets.calls == ["read", "create"]
    assert secrets.data == secret_data(state, load_or_create_token_key(tmp_path / "ca"))
    assert "ca_secret_created" in [entry["event"] for entry in logs]
    key_body = _decoded(secrets.data, "ca-key.pem").decode().splitlines()[1]
    assert not [entry for entry in logs if key_body in repr(entry)]


def test_a_secret_replaces_the_ca_directorys_root_and_token_key(tmp_path: Path) -> None:
    stored, stored_token_key = _ca(tmp_path)
    load_or_create_ca(tmp_path / "ca", TRUST_DOMAIN)  # a root of its own, replaced
    secrets = MemorySecrets(secret_data(stored, stored_token_key))
    state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert secrets.calls == ["read"]
    assert state.trust_bundle == stored.trust_bundle
    assert (tmp_path / "ca" / "trust-bundle.pem").read_bytes() == cert_pem(stored.root)
    assert load_or_create_token_key(tmp_path / "ca").private_numbers() == stored_token_key.private_numbers()


def test_a_secret_mid_rotation_restores_the_previous_root_and_an_idle_one_removes_it(tmp_path: Path) -> None:
    load_or_create_ca(tmp_path / "other", TRUST_DOMAIN)
    rotated = rotate_root(tmp_path / "other", TRUST_DOMAIN)
    token_key = load_or_create_token_key(tmp_path / "other")
    secrets = MemorySecrets(secret_data(rotated, token_key))
    state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert state.trust_bundle == rotated.trust_bundle and state.previous_signer is not None
    retired = retire_previous_root(tmp_path / "other")
    secrets.data = secret_data(retired, token_key)
    again = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert again.trust_bundle == retired.trust_bundle
    assert not (tmp_path / "ca" / "previous-root-cert.pem").exists()


def test_a_lost_create_race_loads_the_winners_ca(tmp_path: Path) -> None:
    winner, winner_token_key = _ca(tmp_path)
    secrets = MemorySecrets(race=secret_data(winner, winner_token_key))
    state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert secrets.calls == ["read", "create", "read"]
    assert state.trust_bundle == winner.trust_bundle
    assert (tmp_path / "ca" / "root-cert.pem").read_bytes() == cert_pem(winner.root)


def test_a_secret_istiod_wrote_gets_meshplanes_token_key(tmp_path: Path) -> None:
    stored, _ = _ca(tmp_path)
    istiod = {
        k: v
        for k, v in secret_data(stored, ec.generate_private_key(ec.SECP256R1())).items()
        if k != "token-signing-key.pem"
    }
    secrets = MemorySecrets({**istiod, "cert-chain.pem": "", "key.pem": ""})
    state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert state.root == stored.root
    assert secrets.calls == ["read", "replace"]
    assert secrets.data == secret_data(state, load_or_create_token_key(tmp_path / "ca"))


def test_a_plugged_in_ca_wins_and_the_secret_is_not_touched(tmp_path: Path) -> None:
    stored, token_key = _ca(tmp_path)
    chain = CAChain(1)
    write_cacerts(tmp_path / "ca", chain)
    (tmp_path / "ca").chmod(0o700)
    secrets = MemorySecrets(secret_data(stored, token_key))
    state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert state.mode == "plugged-in" and state.root == chain.root
    assert secrets.calls == []


def test_a_bad_secret_fails_the_start_and_leaves_the_ca_directory_alone(tmp_path: Path) -> None:
    secrets = MemorySecrets(_broken(tmp_path, "other-key"))
    with pytest.raises(CAError, match="is not the key of"):
        load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    assert not (tmp_path / "ca" / "root-key.pem").exists()


# ---- after start: the Secret follows the CA directory ------------------------------------------------------------


async def _until(sync: CASecretSync) -> None:
    async with asyncio.timeout(5):
        while not sync.in_step:
            await asyncio.sleep(0.01)


async def test_the_secret_follows_a_rotation_and_its_retirement(tmp_path: Path) -> None:
    secrets = MemorySecrets()
    state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    token_key = load_or_create_token_key(tmp_path / "ca")
    sync = CASecretSync(secrets, token_key, state)
    task = asyncio.create_task(sync.run())
    try:
        sync.follow(state)  # unchanged: nothing written
        rotated = rotate_root(tmp_path / "ca", TRUST_DOMAIN)
        sync.follow(rotated)
        await _until(sync)
        assert secrets.data is not None and "previous-root-cert.pem" in secrets.data
        assert load_certs_pem(_decoded(secrets.data, "root-cert.pem")) == list(rotated.trust_bundle)
        sync.follow(retire_previous_root(tmp_path / "ca"))
        await _until(sync)
        assert sorted(secrets.data) == ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "token-signing-key.pem"]
        assert _decoded(secrets.data, "ca-cert.pem") == cert_pem(rotated.root)
        assert (sync.writes, secrets.calls.count("replace")) == (2, 2)
    finally:
        task.cancel()


async def test_a_failed_update_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("citadel.ca_secret_store._FIRST_RETRY", 0.01)
    secrets = MemorySecrets()
    state = load_or_create_ca_with_secret(tmp_path / "ca", TRUST_DOMAIN, secrets)
    sync = CASecretSync(secrets, load_or_create_token_key(tmp_path / "ca"), state)
    task = asyncio.create_task(sync.run())
    try:
        secrets.fail_writes = 2
        with captured_logs() as logs:
            sync.follow(rotate_root(tmp_path / "ca", TRUST_DOMAIN))
            await _until(sync)
        assert [entry["event"] for entry in logs].count("ca_secret_update_failed") == 2
        assert secrets.data is not None and "previous-root-cert.pem" in secrets.data
    finally:
        task.cancel()
