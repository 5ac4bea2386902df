"""``meshplane demo`` in a user namespace (``--rootless``, what a normal user gets): the pod network, the control
plane and the pods inside one user namespace with network, mount and PID namespaces of its own; none of its pods
appears on the machine, and nothing of it is left afterwards.

Run as root here (CI's user), so the run needs a range of subordinate ids for root: the fixture adds one for the
test and removes it after (root gets no privilege from it: newuidmap maps the ids as for any user). A normal user
has a range from ``useradd`` or an administrator's ``usermod``; from there on its ``make demo`` takes this path
(run by hand as a uid-1000 user: README)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.pod_network import DEFAULT_PODS_DIR, pod_names
from agent.rootless import SUBORDINATE_IDS, subordinate_start, why_rootless_cannot_run
from e2e.pods import why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

_ROOT_RANGE = f"root:1000000:{SUBORDINATE_IDS}\n"
_ID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))


@pytest.fixture
def subordinate_ids_for_root() -> Iterator[None]:
    """A range for root in /etc/subuid and /etc/subgid while the test runs (a line of its own, removed after;
    ``usermod`` refuses to change root while root's processes run)."""
    added = [path for path in _ID_FILES if subordinate_start(path, "root", 0) is None]
    for path in added:
        text = path.read_text() if path.exists() else ""
        separator = "" if not text or text.endswith("\n") else "\n"  # never glue onto a last line without one
        with path.open("a") as file:
            file.write(separator + _ROOT_RANGE)
    try:
        missing = why_rootless_cannot_run()
        assert missing is None, missing
        yield
    finally:
        for path in added:
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(line for line in lines if line != _ROOT_RANGE))


def _host_netns() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


async def test_the_rootless_demo_runs_every_step_inside_its_own_namespaces(
    tmp_path: Path, subordinate_ids_for_root: None
) -> None:
    demo_netns = {pod_names(DEFAULT_PODS_DIR, "default", name)[0] for name in ("productpage", "reviews-v1")}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "e2e.cli", "demo", "--rootless", "--requests", "40", "--workdir", str(tmp_path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    seen_on_host: set[str] = set()
    before = _host_netns()
    async with asyncio.timeout(300):
        while line := (await process.stdout.readline()).decode(errors="replace"):
            lines.append(line)
            if line.startswith("Step "):  # the pods are running now, in the demo's own namespaces
                seen_on_host |= (_host_netns() - before) & demo_netns
        await process.wait()
    output = "".join(lines)

    assert process.returncode == 0, output
    assert "running the pods inside a user namespace of their own (rootless)" in output
    assert "All measured splits match their rules." in output
    assert "mutual TLS enforced" in output and "policy enforced" in output
    assert "Stopped Pilot, Citadel, Mixer and all pods; nothing left on the machine." in output
    assert seen_on_host == set(), "the rootless demo's pods were visible on the machine"
