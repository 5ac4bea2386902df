"""Network namespaces by name (``ip netns``): run commands in one as a given uid, and open listening sockets in one
from a process that stays in the host namespace.

``listen_in_netns`` moves one short-lived thread into the pod's namespace with ``setns(2)`` (through ctypes:
Python 3.11 has no ``os.setns``), creates and binds the sockets there and ends: a network namespace is per thread,
and a socket keeps the namespace it was created in. The caller then accepts connections inside the pod on those
sockets while every connection it opens itself is made in the host namespace (see ``agent.relay``)."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["NETNS_DIR", "NetnsError", "in_netns_command", "ip", "listen_in_netns"]

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000


class NetnsError(RuntimeError):
    """An ``ip`` command or a namespace switch failed; the message says which."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``ip ARGS``; raises ``NetnsError`` with its stderr when it fails and ``check``."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def in_netns_command(netns: str, argv: Sequence[str], *, uid: int | None = None, gid: int | None = None) -> list[str]:
    """The command line that runs ``argv`` in ``netns`` (``ip netns exec``), as ``uid``/``gid`` (``setpriv``, no
    supplementary groups) when given."""
    command = ["ip", "netns", "exec", netns]
    if uid is not None:
        group = uid if gid is None else gid
        command += ["setpriv", f"--reuid={uid}", f"--regid={group}", "--clear-groups", "--"]
    return [*command, *argv]


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(error)}")


def listen_in_netns(netns: str, addresses: Sequence[tuple[str, int]]) -> list[socket.socket]:
    """Listening TCP sockets bound to ``addresses`` inside ``netns``."""
    result: list[socket.socket] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with open(NETNS_DIR / netns, "rb") as namespace:
                _setns(namespace.fileno())
            for host, port in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(128)
                sock.setblocking(False)
                result.append(sock)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=work, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if failure:
        for sock in result:
            sock.close()
        raise NetnsError(f"listening in {netns} on {addresses}: {failure[0]}") from failure[0]
    return result
