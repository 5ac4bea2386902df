"""Gateway credentials: SDS names, Istio's Secret key formats, the namespace rule, and what the store serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from google.protobuf.any_pb2 import Any

from citadel.credential_dir import read_credentials_dir
from citadel.credential_secrets import secret_data
from citadel.credential_store import CredentialStore, NotServed
from citadel.credentials import CredentialError, ca_certificates, certificate_key_pair
from meshplane.credential_names import CredentialName, credential_sds_name, parse_credential_name
from tests.credential_builders import TestCA, secret_data_b64, write_credential
from xdscore import Resource


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def _secret(resource: Resource | NotServed) -> Secret:
    assert isinstance(resource, Resource), resource
    packed = Any()
    packed.ParseFromString(resource.any_bytes)
    secret = Secret()
    assert packed.Unpack(secret)
    return secret


@pytest.mark.parametrize(
    ("sds_name", "expected"),
    [
        ("kubernetes://mycred", CredentialName(name="mycred", namespace=None, ca_only=False)),
        ("mycred", CredentialName(name="mycred", namespace=None, ca_only=False)),
        ("kubernetes://mycred-cacert", CredentialName(name="mycred", namespace=None, ca_only=True)),
        ("mycred-cacert", CredentialName(name="mycred", namespace=None, ca_only=True)),
        ("kubernetes://other/mycred", CredentialName(name="mycred", namespace="other", ca_only=False)),
        ("kubernetes://-cacert", CredentialName(name="-cacert", namespace=None, ca_only=False)),
        ("kubernetes://", None),
        ("", None),
        ("kubernetes://a/b/c", None),
        ("kubernetes://a/", None),
    ],
    ids=[
        "prefixed",
        "bare",
        "cacert",
        "bare-cacert",
        "namespaced",
        "only-suffix",
        "empty-prefixed",
        "empty",
        "three-parts",
        "empty-name",
    ],
)
def test_parse_credential_name(sds_name: str, expected: CredentialName | None) -> None:
    assert parse_credential_name(sds_name) == expected


def test_credential_sds_name_is_istios() -> None:
    assert credential_sds_name("mycred") == "kubernetes://mycred"
    assert credential_sds_name("mycred", ca=True) == "kubernetes://mycred-cacert"


@pytest.mark.parametrize("generic", [False, True], ids=["kubernetes.io/tls keys", "generic keys"])
def test_certificate_key_pair_reads_istios_key_names(ca: TestCA, generic: bool) -> None:
    credential = ca.issue(["httpbin.example.com"])
    pair = certificate_key_pair(credential.files(generic=generic))
    assert pair.chain_pem == credential.chain_pem
    assert pair.key_pem == credential.key_pem


def test_generic_keys_win_over_tls_keys_as_in_istio(ca: TestCA) -> None:
    first, second = ca.issue(["a.example.com"]), ca.issue(["b.example.com"])
    pair = certificate_key_pair(first.files(generic=True) | second.files())
    assert pair.chain_pem == first.chain_pem


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"ca.crt": b"x"}, "no certificate and key: expected keys (cert, key) or (tls.crt, tls.key); found ca.crt"),
        ({}, "found none"),
        ({"tls.crt": b"not pem", "tls.key": b"k"}, "the certificate chain does not parse"),
        ({"tls.key": b"not pem"}, "no certificate and key"),
        ("bad-key", "the private key does not parse"),
        ("other-key", "the private key is not the key of the first certificate of the chain"),
        ("ocsp", "tls.ocsp-staple: not supported by meshplane yet"),
    ],
    ids=["only-ca", "empty", "bad-cert", "only-key", "bad-key", "mismatched-key", "ocsp-staple"],
)
def test_certificate_key_pair_refuses_what_envoy_would_nack(
    ca: TestCA, files: dict[str, bytes] | str, message: str
) -> None:
    good = ca.issue(["a.example.com"]).files()
    cases = {
        "bad-key": good | {"tls.key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        "other-key": good | {"tls.key": ca.issue(["b.example.com"]).key_pem},
        "ocsp": good | {"tls.ocsp-staple": b"\x30\x00"},
    }
    data = cases[files] if isinstance(files, str) else files
    with pytest.raises(CredentialError, match=message.replace("(", r"\(").replace(")", r"\)")):
        certificate_key_pair(data)


@pytest.mark.parametrize(
    ("keys", "crl_key"), [(("cacert",), "crl"), (("ca.crt",), "ca.crl")], ids=["generic", "kubernetes.io/tls"]
)
def test_ca_certificates_read_the_roots_and_the_crl(ca: TestCA, keys: tuple[str], crl_key: str) -> None:
    crl = ca.crl_pem()
    found = ca_certificates({keys[0]: ca.pem, crl_key: crl})
    assert found.roots_pem == ca.pem
    assert found.crl_pem == crl


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tls.crt": b"x"}, "no CA certificate: expected key cacert or ca.crt; found tls.crt"),
        ({"ca.crt": b"junk"}, "the CA certificates do not parse"),
        ("bad-crl", "the CRL is not PEM"),
    ],
    ids=["no-ca", "bad-ca", "bad-crl"],
)
def test_ca_certificates_refuse_what_envoy_would_nack(ca: TestCA, data: dict[str, bytes] | str, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        ca_certificates({"ca.crt": ca.pem, "ca.crl": b"junk"} if data == "bad-crl" else data)  # type: ignore[arg-type]


# ---- the store ------------------------------------------------------------------------------------------------------


def test_the_server_secret_is_the_chain_and_key_under_the_requested_name(ca: TestCA) -> None:
    credential = ca.issue(["httpbin.example.com"])
    store = CredentialStore(source="test")
    store.put("istio-system", "httpbin-credential", credential.files())

    for name in ("kubernetes://httpbin-credential", "httpbin-credential"):
        secret = _secret(store.resource(name, "istio-system"))
        assert secret.name == name
        assert secret.WhichOneof("type") == "tls_certificate"
        assert secret.tls_certificate.certificate_chain.inline_bytes == credential.chain_pem
        assert secret.tls_certificate.private_key.inline_bytes == credential.key_pem
        assert not secret.tls_certificate.HasField("ocsp_staple")


@pytest.mark.parametrize("own_cacert_secret", [False, True], ids=["ca.crt of the same secret", "the -cacert secret"])
def test_the_cacert_secret_is_the_validation_context(ca: TestCA, own_cacert_secret: bool) -> None:
    other = TestCA("other.example.com")
    store = CredentialStore(source="test")
    store.put("istio-system", "mycred", ca.issue(["a.example.com"]).files())
    if own_cacert_secret:
        store.put("istio-system", "mycred-cacert", {"cacert": other.pem, "crl": other.crl_pem()})

    secret = _secret(store.resource("kubernetes://mycred-cacert", "istio-system"))

    assert secret.name == "kubernetes://mycred-cacert"
    assert secret.WhichOneof("type") == "validation_context"
    context = secret.validation_context
    assert context.trusted_ca.inline_bytes == (other.pem if own_cacert_secret else ca.pem)
    assert context.HasField("crl") == own_cacert_secret
    assert not context.match_typed_subject_alt_names


@pytest.mark.parametrize(
    ("sds_name", "proxy_namespace", "reason"),
    [
        ("kubernetes://mycred", "default", "secret default/mycred not found (in test)"),
        ("kubernetes://istio-system/mycred", "default", "a proxy of namespace default reads credentials of its own"),
        ("kubernetes://nothere", "istio-system", "secret istio-system/nothere not found"),
        ("kubernetes://nothere-cacert", "istio-system", "secret istio-system/nothere not found"),
        ("kubernetes://a/b/c", "istio-system", "is not a credential name"),
        ("kubernetes://broken", "istio-system", "secret istio-system/broken: no certificate and key"),
        ("kubernetes://broken-cacert", "istio-system", "secret istio-system/broken: no CA certificate"),
    ],
    ids=["other-namespace", "named-other-namespace", "missing", "missing-cacert", "malformed", "no-keys", "no-ca"],
)
def test_what_the_store_does_not_serve_says_why(ca: TestCA, sds_name: str, proxy_namespace: str, reason: str) -> None:
    store = CredentialStore(source="test")
    store.put("istio-system", "mycred", ca.issue(["a.example.com"]).files())
    store.put("istio-system", "broken", {"note": b"x"})

    found = store.resource(sds_name, proxy_namespace)

    assert isinstance(found, NotServed)
    assert reason in found.reason


def test_the_own_namespace_may_be_named(ca: TestCA) -> None:
    store = CredentialStore(source="test")
    store.put("istio-system", "mycred", ca.issue(["a.example.com"]).files())
    assert _secret(store.resource("kubernetes://istio-system/mycred", "istio-system")).tls_certificate.private_key


def test_changes_are_told_per_namespace_and_resources_rebuilt_only_on_change(ca: TestCA) -> None:
    store = CredentialStore(source="test")
    told: list[str] = []
    store.subscribe(told.append)
    files = ca.issue(["a.example.com"]).files()

    store.put("ns1", "a", files)
    first = store.resource("a", "ns1")
    store.put("ns1", "a", dict(files))  # the same content
    assert store.resource("a", "ns1") is first
    store.replace({("ns1", "a"): files, ("ns2", "b"): files})
    store.put("ns1", "a", ca.issue(["a.example.com"]).files())
    second = store.resource("a", "ns1")
    store.delete("ns2", "b")
    store.delete("ns2", "b")

    assert told == ["ns1", "ns2", "ns1", "ns2"]
    assert isinstance(second, Resource) and isinstance(first, Resource) and second.version != first.version


# ---- sources --------------------------------------------------------------------------------------------------------


def test_a_credentials_directory_is_namespace_then_name(ca: TestCA, tmp_path: Path) -> None:
    root = tmp_path
    files = ca.issue(["a.example.com"]).files()
    write_credential(root, "istio-system", "mycred", files)
    write_credential(root, "default", "other", {"tls.crt": b"x"})
    (root / "istio-system" / "mycred" / "..data").mkdir()  # a mounted Secret's hidden entries
    (root / "istio-system" / ".hidden").mkdir()
    (root / "stray-file").write_bytes(b"x")

    assert read_credentials_dir(root) == {("istio-system", "mycred"): files, ("default", "other"): {"tls.crt": b"x"}}
    assert read_credentials_dir(root / "missing") == {}


def test_a_secrets_data_is_decoded(ca: TestCA) -> None:
    files = ca.issue(["a.example.com"]).files()
    obj = {"metadata": {"namespace": "ns", "name": "n"}, "data": secret_data_b64(files) | {"bad": "***"}}
    assert secret_data(obj) == files
    assert secret_data({"metadata": {}}) == {}
