"""The rootless pod network's prerequisites (``agent.rootless``): what is missing is said with the command that adds
it, and the wrapped command is a user namespace with network and mount namespaces of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import agent.rootless
from agent.rootless import SUBORDINATE_IDS, rootless_command, subordinate_start, why_rootless_cannot_run


def _kernel_answers(monkeypatch: pytest.MonkeyPatch, returncode: int, stderr: str = "") -> None:
    """The probe ``unshare --user ... true`` answers ``returncode``, whatever this machine's kernel allows."""
    answer = subprocess.CompletedProcess(args=[], returncode=returncode, stdout="", stderr=stderr)
    monkeypatch.setattr(agent.rootless.subprocess, "run", lambda *_args, **_kwargs: answer)


@pytest.fixture
def id_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """unshare, newuidmap and newgidmap present and user namespaces allowed, whatever this machine has."""
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    _kernel_answers(monkeypatch, 0)


def _ranges(tmp_path: Path, subuid: str, subgid: str) -> dict[str, Path]:
    (tmp_path / "subuid").write_text(subuid)
    (tmp_path / "subgid").write_text(subgid)
    return {"subuid": tmp_path / "subuid", "subgid": tmp_path / "subgid"}


@pytest.mark.parametrize(
    ("subuid", "subgid", "missing"),
    [
        ("", "alice:100000:65536\n", "subordinate uids"),
        ("alice:100000:65536\n", "bob:100000:65536\n", "subordinate gids"),
        ("alice:100000:1000\n", "alice:100000:65536\n", "subordinate uids"),
        ("bob:100000:65536\n", "alice:100000:65536\n", "subordinate uids"),
    ],
    ids=["no-uids", "gids-of-another-user", "too-few-uids", "uids-of-another-user"],
)
def test_a_missing_subordinate_range_names_the_usermod_that_adds_it(
    tmp_path: Path, id_tools: None, subuid: str, subgid: str, missing: str
) -> None:
    reason = why_rootless_cannot_run(user="alice", **_ranges(tmp_path, subuid, subgid))

    assert reason is not None
    assert missing in reason
    assert "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice" in reason


def test_a_range_given_by_uid_is_the_users(tmp_path: Path, id_tools: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    ranges = _ranges(tmp_path, f"4242:100000:{SUBORDINATE_IDS}\n", f"4242:100000:{SUBORDINATE_IDS}\n")

    reason = why_rootless_cannot_run(user="alice", **ranges)

    assert reason is None


def test_a_kernel_refusing_user_namespaces_names_the_sysctls(
    tmp_path: Path, id_tools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kernel_answers(monkeypatch, 1, "unshare: unshare failed: Operation not permitted\n")
    ranges = _ranges(tmp_path, f"alice:100000:{SUBORDINATE_IDS}\n", f"alice:100000:{SUBORDINATE_IDS}\n")

    reason = why_rootless_cannot_run(user="alice", **ranges)

    assert reason is not None
    assert "refuses unprivileged user namespaces (unshare: unshare failed: Operation not permitted;" in reason
    assert "kernel.unprivileged_userns_clone=1" in reason


@pytest.mark.parametrize(
    ("tool", "package"), [("newuidmap", "uidmap"), ("newgidmap", "uidmap"), ("unshare", "util-linux")]
)
def test_a_missing_tool_names_its_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str, package: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == tool else f"/usr/bin/{name}")

    reason = why_rootless_cannot_run(user="alice", **_ranges(tmp_path, "alice:1:65536\n", "alice:1:65536\n"))

    assert reason == f"{tool} is not on PATH (Debian: sudo apt-get install -y {package})"


def test_the_wrapped_command_gets_its_own_namespaces_and_starts_once_its_ids_are_mapped() -> None:
    command = rootless_command(["python", "-m", "e2e.cli", "demo"])

    assert command[: command.index("--")] == [
        *("unshare", "--user", "--net", "--mount", "--propagation", "private", "--pid", "--mount-proc"),
        *("--fork", "--kill-child"),
    ]
    assert command[command.index("--") + 1 :] == [
        *("/bin/sh", "-c", 'until read -r _ </proc/self/uid_map; do sleep 0.02; done 2>/dev/null; exec "$@"', "sh"),
        *("python", "-m", "e2e.cli", "demo"),
    ]


@pytest.mark.parametrize(
    ("lines", "start"),
    [
        ("alice:100000:65536\n", 100000),
        ("bob:100000:65536\nalice:300000:65536\n", 300000),
        ("alice:100000:10\nalice:400000:70000\n", 400000),
        ("4242:500000:65536\n", 500000),
        ("alice:100000:100\n", None),
        ("alice:x:65536\n", None),
    ],
    ids=["first-entry", "a-later-entry", "the-first-big-enough", "by-uid", "too-small", "malformed"],
)
def test_the_subordinate_range_is_the_users_first_big_enough_one(tmp_path: Path, lines: str, start: int | None) -> None:
    (tmp_path / "subuid").write_text(lines)

    assert subordinate_start(tmp_path / "subuid", "alice", 4242) == start
