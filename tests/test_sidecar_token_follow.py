"""A sidecar that follows its token file: the token as a file-based SDS secret (``write_token_secret``) sent by the
credential_injector filter on ``sds-grpc`` (fields, real ``envoy --mode validate``), the bootstrap without the
token, and ``agent.token_follower`` (the document rewritten when the file changes, kept when it is unreadable;
``exp`` for logs)."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from envoy.extensions.filters.http.credential_injector.v3 import credential_injector_pb2
from envoy.extensions.http.injected_credentials.generic.v3 import generic_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from agent import sidecar_files
from agent.sidecar_files import TOKEN_DOCUMENT, write_sidecar_bootstrap
from agent.token_follower import follow_token, token_expiry
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import (
    TOKEN_SECRET,
    BootstrapError,
    bootstrap_to_json,
    build_sds_cluster,
    build_sidecar_bootstrap,
    parse_host_port,
    write_citadel_trust,
    write_token_secret,
)
from tests.citadel_builders import captured_logs
from tests.mtls_builders import write_test_pki

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjE4OTM0NTYwMDB9.c2ln"  # exp 2030-01-01T00:00:00Z


@pytest.fixture
def trust(tmp_path: Path) -> Path:
    return write_citadel_trust(tmp_path / "citadel-trust.json", write_test_pki(tmp_path)["root"])


@pytest.fixture
def token_document(tmp_path: Path) -> Path:
    return write_token_secret(tmp_path / "token.json", TOKEN)


@pytest.fixture(autouse=True)
def _no_chown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sidecar_files.os, "chown", lambda *_: None)  # uid 1337 needs root: not the point here


def _document_token(document: Path) -> str:
    (secret,) = json.loads(document.read_text())["resources"]
    assert (secret["@type"], secret["name"]) == (
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        TOKEN_SECRET,
    )
    value: str = secret["generic_secret"]["secret"]["inline_string"]
    assert value.startswith("Bearer ")
    return value.removeprefix("Bearer ")


def test_the_token_document_is_a_private_generic_secret(token_document: Path) -> None:
    assert _document_token(token_document) == TOKEN
    assert stat.S_IMODE(token_document.stat().st_mode) == 0o600


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak"], ids=["empty", "space", "newline"])
def test_a_bad_token_is_refused_without_echoing_it(tmp_path: Path, token: str) -> None:
    with pytest.raises(BootstrapError, match=r"^token:") as error:
        write_token_secret(tmp_path / "token.json", token)
    assert "words" not in str(error.value) and "break" not in str(error.value)
    assert not (tmp_path / "token.json").exists()


def test_the_sds_cluster_injects_the_token_from_the_document(trust: Path, token_document: Path) -> None:
    cluster = build_sds_cluster(parse_host_port("127.0.0.1:15012", argument="citadel"), citadel_trust=trust,
                                token_secret=token_document)  # fmt: skip
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Unpack(
        options
    )
    assert [f.name for f in options.http_filters] == [
        "envoy.filters.http.credential_injector",
        "envoy.filters.http.upstream_codec",
    ]
    injector = credential_injector_pb2.CredentialInjector()
    assert options.http_filters[0].typed_config.Unpack(injector)
    assert injector.overwrite and not injector.allow_request_without_credential
    assert injector.credential.name == "envoy.http.injected_credentials.generic"
    generic = generic_pb2.Generic()
    assert injector.credential.typed_config.Unpack(generic)
    assert generic.header == ""  # Envoy's default: Authorization
    assert generic.credential.name == TOKEN_SECRET
    assert generic.credential.sds_config.path_config_source.path == str(token_document.resolve())
    assert TOKEN not in str(cluster)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "exactly one is needed"),
        ({"token": TOKEN, "token_secret": "document"}, "exactly one is needed"),
        ({"token_secret": "missing"}, "does not exist"),
    ],
    ids=["neither", "both", "missing-document"],
)
def test_the_sds_cluster_takes_a_token_or_its_document(
    tmp_path: Path, trust: Path, token_document: Path, arguments: dict[str, str], message: str
) -> None:
    given: dict[str, object] = dict(arguments)
    if given.get("token_secret") == "document":
        given["token_secret"] = token_document
    elif given.get("token_secret") == "missing":
        given["token_secret"] = tmp_path / "missing.json"
    with pytest.raises(BootstrapError, match=message):
        build_sds_cluster(parse_host_port("127.0.0.1:15012", argument="citadel"), citadel_trust=trust, **given)  # type: ignore[arg-type]


def test_real_envoy_validates_the_bootstrap_with_the_token_document(
    tmp_path: Path, trust: Path, token_document: Path
) -> None:
    bootstrap = build_sidecar_bootstrap(
        workload="reviews-v1", address="127.0.0.1", citadel="127.0.0.1:15012", citadel_trust=trust,
        token_secret=token_document,
    )  # fmt: skip
    assert bootstrap.node.metadata["MESHPLANE_SDS"] == "true"
    path = tmp_path / "bootstrap.json"
    path.write_text(bootstrap_to_json(bootstrap))
    result = subprocess.run(
        [find_envoy_binary(), "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warning"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr + path.read_text()


def _bootstrap(tmp_path: Path, *, follow_token: bool) -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    return write_sidecar_bootstrap(
        tmp_path / "sidecar", workload="reviews-v1", namespace="bookinfo", address="127.0.0.1",
        domain_suffix="cluster.local", pilot="127.0.0.1:15010", mixer=None, xds_mode="sotw",
        service_account="reviews", labels={}, citadel="127.0.0.1:15012", token_file=tmp_path / "token",
        root_cert=write_test_pki(tmp_path)["root"], follow_token=follow_token,
    )  # fmt: skip


@pytest.mark.parametrize("follow", [True, False], ids=["followed-token", "embedded-token"])
def test_a_followed_token_is_in_its_document_not_in_the_bootstrap(tmp_path: Path, follow: bool) -> None:
    bootstrap = _bootstrap(tmp_path, follow_token=follow)
    document = bootstrap.parent / TOKEN_DOCUMENT
    assert (TOKEN in bootstrap.read_text()) is not follow
    assert document.exists() is follow
    if follow:
        assert _document_token(document) == TOKEN


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_the_follower_rewrites_the_document_when_the_token_file_changes(tmp_path: Path) -> None:
    bootstrap = _bootstrap(tmp_path, follow_token=True)
    document = bootstrap.parent / TOKEN_DOCUMENT
    with captured_logs() as events:
        task = asyncio.create_task(follow_token(tmp_path / "token", bootstrap.parent, interval=0.01))
        try:
            (tmp_path / "token").unlink()  # mid-swap: the last token stays in force
            await _until(lambda: "workload_token_unreadable" in [e["event"] for e in events])
            assert _document_token(document) == TOKEN
            (tmp_path / "token").write_text("second.token.value\n")
            await _until(lambda: _document_token(document) == "second.token.value")
            (tmp_path / "token").write_text("has space\n")  # not a token: refused, the last one kept
            await _until(lambda: "workload_token_not_updated" in [e["event"] for e in events])
            assert _document_token(document) == "second.token.value"
        finally:
            task.cancel()
    refreshed = [e for e in events if e["event"] == "workload_token_refreshed"]
    assert [e["expires_at"] for e in refreshed] == [None]
    assert "second.token.value" not in repr(events)


def _jwt(claims: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{body}.c2ln"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (TOKEN, datetime(2030, 1, 1, tzinfo=UTC)),
        (_jwt({"exp": 1893456000.5}), datetime(2030, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        (_jwt({"sub": "x"}), None),
        (_jwt({"exp": True}), None),
        (_jwt({"exp": 10**20}), None),
        (_jwt(["exp"]), None),
        ("opaque-token", None),
        ("a.%%%.c", None),
    ],
    ids=["jwt", "fractional", "no-exp", "bool-exp", "huge-exp", "not-an-object", "opaque", "bad-base64"],
)
def test_a_tokens_expiry_is_read_for_logs_only(token: str, expected: datetime | None) -> None:
    assert token_expiry(token) == expected
