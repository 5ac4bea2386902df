"""bench._pod_load, the in-pod load generator of the Mixer benchmark: its HTTP/1.1 client reads every answer to
the last byte and reuses only connections that stay open; the script runs under the system interpreter with the
standard library alone and speaks its stdin/stdout protocol; and bench.mixer_policy without pods says why and
skips part 1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench import _pod_load, mixer_policy
from e2e.pods import PYTHON

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
_CHUNKED = b"HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n3\r\nRBA\r\n2\r\nC!\r\n0\r\n\r\n"
_CLOSE = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno"
_CUT = b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort"


class _Server:
    """A loopback HTTP server answering every request with ``answer`` (closing after it when ``close``); it
    counts connections and the requests' raw heads."""

    def __init__(self, answer: bytes, close: bool) -> None:
        self.answer, self.close = answer, close
        self.connections = 0
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.heads.append(head)
                writer.write(self.answer)
                await writer.drain()
                if self.close:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def _serving(answer: bytes, close: bool = False) -> AsyncIterator[tuple[_Server, int]]:
    server = _Server(answer, close)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with listening:
        yield server, listening.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("answer", "close", "status", "connections"),
    [
        (_OK, False, "200", 1),
        (_CHUNKED, False, "403", 1),
        (_CLOSE, True, "503", 3),
        (_CUT, True, "IncompleteReadError", 3),
    ],
    ids=["content-length-kept-alive", "chunked-kept-alive", "connection-close-reconnects", "cut-body-is-an-error"],
)
async def test_each_answer_is_read_to_its_end_and_only_open_connections_are_reused(
    answer: bytes, close: bool, status: str, connections: int
) -> None:
    async with _serving(answer, close) as (server, port):
        pool = _pod_load._Pool(("127.0.0.1", port))
        url = urllib.parse.urlsplit(f"http://reviews:{port}/reviews/bench?x=1")
        request = _pod_load._request(url, {"end-user": "alice", "x-bench": "rbac"})
        results = [await _pod_load._send(pool, request, timeout=2.0) for _ in range(3)]
        pool.close()
        assert [found for found, _ in results] == [status] * 3
        assert all(seconds > 0 for _, seconds in results)
        assert server.connections == connections
        assert (
            server.heads[0]
            == (
                f"GET /reviews/bench?x=1 HTTP/1.1\r\nHost: reviews:{port}\r\nend-user: alice\r\nx-bench: rbac\r\n\r\n"
            ).encode()
        )


def test_the_order_interleaves_the_variants_shuffled_in_every_round() -> None:
    order = _pod_load._order(["none", "rbac", "custom"], 10, seed=2)
    assert len(order) == 10
    for start in (0, 3, 6):
        assert sorted(order[start : start + 3]) == ["custom", "none", "rbac"]
    assert order != ["none", "rbac", "custom"] * 3 + ["none"]  # shuffled (seed 2 is not the identity)


@pytest.mark.skipif(not Path(PYTHON).exists(), reason=f"{PYTHON} (the pods' interpreter) is missing")
async def test_the_script_runs_under_the_system_python_warm_up_then_go_then_answers() -> None:
    async with _serving(_OK) as (server, port):
        plan = {
            "url": f"http://localhost:{port}/",
            "rate": 40,
            "seconds": 0.25,
            "warmup": 0.1,
            "variants": ["none", "rbac"],
            "headers": {},
            "timeout": 2,
        }
        source = Path(_pod_load.__file__).read_text()
        process = await asyncio.create_subprocess_exec(
            *(PYTHON, "-I", "-S", "-c", source, json.dumps(plan)),  # no site-packages: the standard library alone
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={},
        )
        assert process.stdin is not None and process.stdout is not None
        warm = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
        warmed = len(server.heads)
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        measured = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert warm == {"warm": True, "address": "127.0.0.1"}
    assert warmed == 4  # 40/s for 0.1 s
    assert (
        sorted((variant, status) for variant, status, _ in measured["answers"])
        == [("none", "200")] * 5 + [("rbac", "200")] * 5
    )
    assert len(server.heads) == warmed + 10
    assert len(measured["lags"]) == 10 and measured["cpu"] >= 0


def test_without_pods_part_1_is_skipped_saying_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mixer_policy, "why_pods_cannot_run", lambda: "pods need root (network namespaces, iptables)")
    assert mixer_policy.main(["--skip-checks", "--skip-logs"]) == 0
    captured = capsys.readouterr()
    reason = (
        "part 1 (latency through Envoy) skipped: it runs its workloads as pods, and pods need root (network "
        "namespaces, iptables). Run it as root: sudo .venv/bin/python -m bench.mixer_policy (--skip-envoy runs "
        "only parts 2 and 3)"
    )
    assert captured.err == f"bench.mixer_policy: {reason}\n"
    assert captured.out.splitlines()[:4] == ["Mixer / policy benchmark", "=" * 24, "", reason]
    assert "1. Latency through Envoy" not in captured.out
