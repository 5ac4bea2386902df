"""``citadel token`` and ``citadel rotate-root``: what they print, what they change, how they refuse."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citadel.ca_dir import load_ca, load_or_create_ca, load_or_create_token_key
from citadel.commands import add_rotate_root_arguments, add_token_arguments, run_rotate_root, run_token
from citadel.tokens import verify_token
from tests.citadel_builders import TRUST_DOMAIN, CAChain, captured_logs, write_cacerts


def token_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="citadel token")
    add_token_arguments(parser)
    return parser.parse_args(list(argv))


def rotate_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="citadel rotate-root")
    add_rotate_root_arguments(parser)
    return parser.parse_args(list(argv))


async def test_token_prints_only_a_valid_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_dir = tmp_path / "ca"
    before = datetime.now(UTC).replace(microsecond=0)
    args = token_args("--ca-dir", str(ca_dir), "--namespace", "bookinfo", "--service-account", "reviews")
    with captured_logs() as logs:
        assert await run_token(args) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.endswith("\n") and out.count("\n") == 1
    token = out.strip()
    identity = verify_token(load_or_create_token_key(ca_dir).public_key(), token, trust_domain=TRUST_DOMAIN)
    assert identity.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/reviews"
    assert before + timedelta(hours=24) <= identity.expires_at <= datetime.now(UTC) + timedelta(hours=24)
    assert [entry["event"] for entry in logs] == ["token_signing_key_created"]
    assert token not in repr(logs)
    assert "PRIVATE KEY" not in repr(logs)


async def test_token_ttl_and_trust_domain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_dir = tmp_path / "ca"
    with captured_logs():
        load_or_create_ca(ca_dir, "example.org")  # a running Citadel's directory: the same token key is used
    args = token_args(
        "--ca-dir", str(ca_dir), "--namespace", "ns1", "--service-account", "sa1", "--ttl", "90m",
        "--trust-domain", "example.org",
    )  # fmt: skip
    with captured_logs():
        assert await run_token(args) == 0
    identity = verify_token(
        load_or_create_token_key(ca_dir).public_key(), capsys.readouterr().out, trust_domain="example.org"
    )
    remaining = identity.expires_at - datetime.now(UTC)
    assert timedelta(minutes=89) < remaining <= timedelta(minutes=90)


async def test_token_refuses_an_identity_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = token_args("--ca-dir", str(tmp_path), "--namespace", "Book/Info", "--service-account", "reviews")
    with captured_logs():
        assert await run_token(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("citadel token: ") and "SPIFFE ID" in err


async def test_token_refuses_a_loose_token_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with captured_logs():
        load_or_create_token_key(tmp_path)
    (tmp_path / "token-signing-key.pem").chmod(0o644)
    args = token_args("--ca-dir", str(tmp_path), "--namespace", "bookinfo", "--service-account", "reviews")
    assert await run_token(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "chmod 600" in err


@pytest.mark.parametrize("ttl", ["0s", "500ms", "soon", "-1h"], ids=["zero", "sub-second", "word", "negative"])
def test_token_ttl_must_be_a_positive_duration(ttl: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        token_args("--ca-dir", "x", "--namespace", "a", "--service-account", "b", "--ttl", ttl)
    assert "--ttl" in capsys.readouterr().err


async def test_rotate_root_starts_a_rotation_and_says_what_follows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with captured_logs():
        old_root = load_or_create_ca(tmp_path, TRUST_DOMAIN).root
        assert await run_rotate_root(rotate_args("--ca-dir", str(tmp_path))) == 0
    out, err = capsys.readouterr()
    state = load_ca(tmp_path)
    assert state.previous_root == old_root
    assert state.trust_bundle == (state.root, old_root)
    assert err == ""
    assert f"{tmp_path / 'trust-bundle.pem'} now holds both roots" in out
    assert "previous-root-cert.pem" in out
    assert "re-issue every workload certificate under the new root, then retire the previous root" in out
    assert "PRIVATE KEY" not in out

    assert await run_rotate_root(rotate_args("--ca-dir", str(tmp_path))) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("citadel rotate-root: a root rotation is already in progress")


async def test_rotate_root_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_rotate_root(rotate_args("--ca-dir", str(tmp_path / "absent"))) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()
    write_cacerts(tmp_path / "cacerts", CAChain(1))
    assert await run_rotate_root(rotate_args("--ca-dir", str(tmp_path / "cacerts"))) == 1
    assert "replace cacerts to rotate a plugged-in CA" in capsys.readouterr().err
