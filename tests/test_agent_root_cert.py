"""``agent.pod.follow_root_cert``: a running pod's copy of ``--root-cert`` follows the source (Citadel rewrites it
during a root rotation); a missing or empty source leaves the last copy in force."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from agent.pod import follow_root_cert
from meshplane.names import PROXY_UID

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the copy is chowned to the proxy's uid: needs root")

OLD = b"-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n"
NEW = b"-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("source_now", "expected"),
    [(NEW, NEW), (None, OLD), (b"", OLD), (OLD, OLD)],
    ids=["rewritten-is-copied", "missing-keeps-the-copy", "empty-keeps-the-copy", "unchanged"],
)
async def test_the_copy_follows_the_source(tmp_path: Path, source_now: bytes | None, expected: bytes) -> None:
    source, copy = tmp_path / "trust-bundle.pem", tmp_path / "root-cert.pem"
    source.write_bytes(OLD)
    copy.write_bytes(OLD)
    if source_now is None:
        source.unlink()
    else:
        source.write_bytes(source_now)

    follower = asyncio.create_task(follow_root_cert(source, copy, interval=0.01))
    await asyncio.sleep(0.1)
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower

    assert copy.read_bytes() == expected
    if source_now == NEW:  # replaced by rename: the proxy's, private, and no temporary left beside it
        assert (copy.stat().st_uid, copy.stat().st_mode & 0o777) == (PROXY_UID, 0o600)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["root-cert.pem", "trust-bundle.pem"]
