"""Pods without root, as rootless container tools do: the whole pod network inside one user namespace.

A normal user with a range of subordinate ids (``/etc/subuid`` and ``/etc/subgid``, at least 65536 of each, and
``newuidmap``/``newgidmap`` from Debian's ``uidmap``) runs a command as root of a new user namespace that maps
the user to 0 and the range to 1-65535 (so the proxy's uid 1337 and the apps' 65534 exist), with network and mount
namespaces of its own:

- the network namespace is the pod network's "host": the bridge, the pods, the control plane on its 127.0.0.1;
  nothing in it reaches the machine's network (it has no other interface);
- the mount namespace makes what pods write writable for the namespace's root: a tmpfs on ``/run`` (``/run/netns``
  and the pods' state under ``/run/meshplane``), and ``/etc/netns`` and ``/var/lib/meshplane`` (the pods'
  resolv.conf and the Envoy copy readable by uid 1337) as a tmpfs, or through an overlay of their parent when they
  do not exist on the machine. Nothing of it outlives the command.

``run_rootless`` runs a command so (``unshare`` in new user, network, mount and PID namespaces, the ids mapped with
shadow's ``newuidmap``/``newgidmap``); the command calls ``enter_rootless`` first.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from agent.netns import ip

__all__ = [
    "ROOTLESS_ENV",
    "enter_rootless",
    "in_rootless_namespace",
    "rootless_command",
    "run_rootless",
    "subordinate_start",
    "why_rootless_cannot_run",
]

ROOTLESS_ENV = "MESHPLANE_ROOTLESS"  # set for the wrapped command: it runs as root of the user namespace
SUBORDINATE_IDS = 65536  # uids 1-65535 inside: 1337 (the proxy) and 65534 (the apps) among them
_WRITABLE = (Path("/etc/netns"), Path("/var/lib/meshplane"))
_SCRATCH = Path("/run/meshplane-rootless")


def why_rootless_cannot_run(
    *, subuid: Path = Path("/etc/subuid"), subgid: Path = Path("/etc/subgid"), user: str | None = None
) -> str | None:
    """None when this user can run pods in a user namespace; otherwise what is missing and how to add it."""
    uid = os.getuid()
    user = user or getpass.getuser()
    for tool in ("unshare", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            package = "util-linux" if tool == "unshare" else "uidmap"
            return f"{tool} is not on PATH (Debian: sudo apt-get install -y {package})"
    for path, kind in ((subuid, "uids"), (subgid, "gids")):
        if subordinate_start(path, user, uid) is None:
            return (
                f"{path} gives {user} no range of {SUBORDINATE_IDS} subordinate {kind} (an administrator adds one "
                f"once: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user})"
            )
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return (
            f"this kernel refuses unprivileged user namespaces ({probe.stderr.strip()}; "
            "sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0 allow them)"
        )
    return None


_WAIT_FOR_MAPS = 'until read -r _ </proc/self/uid_map; do sleep 0.02; done 2>/dev/null; exec "$@"'


def rootless_command(argv: Sequence[str]) -> list[str]:
    """``argv`` in new user, network, mount and PID namespaces (so that nothing it starts outlives it), started
    once its user namespace has its id maps (``run_rootless`` writes them)."""
    return [
        *("unshare", "--user", "--net", "--mount", "--propagation", "private", "--pid", "--mount-proc"),
        *("--fork", "--kill-child", "--", "/bin/sh", "-c", _WAIT_FOR_MAPS, "sh"),
        *argv,
    ]


def subordinate_start(path: Path, user: str, uid: int) -> int | None:
    """The first id of the user's first range of at least ``SUBORDINATE_IDS - 1`` ids in ``path``."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        numbers = len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()
        if numbers and parts[0] in (user, str(uid)) and int(parts[2]) >= SUBORDINATE_IDS - 1:
            return int(parts[1])
    return None


def _map_ids(pid: int, tool: str, own: int, start: int) -> None:
    # inside: 0 is the user, 1-65535 its subordinate ids (shadow's newuidmap/newgidmap check them against
    # /etc/subuid and /etc/subgid, which util-linux's --map-users=auto of 2.38 reads wrongly for a later entry)
    done = subprocess.run(
        [tool, str(pid), "0", str(own), "1", "1", str(start), str(SUBORDINATE_IDS - 1)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(f"{tool}: {done.stderr.strip()}")


def run_rootless(argv: Sequence[str], *, subuid: Path = Path("/etc/subuid"), subgid: Path = Path("/etc/subgid")) -> int:
    """Run ``argv`` as root of a user namespace of its own (see the module's docstring); its exit code.
    ``ROOTLESS_ENV`` tells it to call ``enter_rootless``."""
    user, uid, gid = getpass.getuser(), os.getuid(), os.getgid()
    uid_start, gid_start = subordinate_start(subuid, user, uid), subordinate_start(subgid, user, uid)
    if uid_start is None or gid_start is None:
        raise OSError(why_rootless_cannot_run(subuid=subuid, subgid=subgid) or "no subordinate ids")
    own_namespace = os.readlink("/proc/self/ns/user")
    process = subprocess.Popen(rootless_command(argv), env={**os.environ, ROOTLESS_ENV: "1"})
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{process.pid}/ns/user") == own_namespace:
            if process.poll() is not None or time.monotonic() > deadline:
                raise OSError("unshare did not create the user namespace")
            time.sleep(0.01)
        _map_ids(process.pid, "newuidmap", uid, uid_start)
        _map_ids(process.pid, "newgidmap", gid, gid_start)
        try:
            return process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the demo too: it stops its pods; wait for that, once
            return process.wait()
    finally:
        if process.poll() is None:  # a second Ctrl-C: the namespaces go with their last process
            process.kill()
            process.wait()


def in_rootless_namespace() -> bool:
    return os.environ.get(ROOTLESS_ENV) == "1" and os.geteuid() == 0


def _mount(*arguments: str) -> None:
    done = subprocess.run(["mount", *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"mount {' '.join(arguments)}: {done.stderr.strip()}")


def _make_writable(path: Path, scratch: Path) -> None:
    """``path`` writable by the namespace's root: a tmpfs on it, or an overlay of its parent when it is missing."""
    if path.is_dir():
        _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(path))
        return
    upper, work = scratch / "upper", scratch / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    _mount(
        "-t", "overlay", "overlay", "-o", f"lowerdir={path.parent},upperdir={upper},workdir={work}", str(path.parent)
    )
    path.mkdir(mode=0o755)


def enter_rootless() -> None:
    """Inside ``rootless_command``: loopback up and the directories pods write made writable (in this mount
    namespace only)."""
    if not in_rootless_namespace():
        raise RuntimeError("enter_rootless: not inside rootless_command's user namespace")
    search = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([*search, *(d for d in ("/usr/sbin", "/sbin") if d not in search)])
    ip("link", "set", "lo", "up")
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
    for index, path in enumerate(_WRITABLE):
        _make_writable(path, _SCRATCH / str(index))
