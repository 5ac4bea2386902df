"""The pod's names: its ``resolv.conf`` and the command line of its DNS agent.

``ip netns exec NETNS`` bind-mounts every file of ``/etc/netns/NETNS/`` over ``/etc/``, so the app, the sidecar and
the agent of a pod all read ``/etc/netns/NETNS/resolv.conf`` as ``/etc/resolv.conf``. It carries Kubernetes' search
list (``<ns>.svc.<suffix> svc.<suffix> <suffix>``, ``ndots:5``) and the upstream resolvers as nameservers: the app's
queries to them are captured (UDP and TCP 53 -> the agent on 127.0.0.1:15053), so the nameserver is only where the
app believes it asks. The pod network has no route to the host's resolver; without an upstream the file names
127.0.0.1 and names outside the mesh get SERVFAIL from the agent.

The agent runs as root with the proxy's gid (1337): the capture rules exclude that gid (``--gid-owner``), so its own
queries upstream are not captured back to itself, and root can read a venv under a 0700 ``/root`` where uid 1337
cannot. It reads its upstreams and search list from its own copy of the file (``agent-resolv.conf`` in the pod's
state directory), which lists only the real upstreams: never 127.0.0.1, which would be itself."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.dns_upstream import parse_upstream
from meshplane.names import DNS_CAPTURE_PORT

__all__ = ["NETNS_ETC", "agent_command", "remove_pod_etc", "resolv_conf", "write_pod_resolv_conf"]

NETNS_ETC = Path("/etc/netns")


def resolv_conf(namespace: str, domain_suffix: str, upstreams: Sequence[str], *, loopback_fallback: bool) -> str:
    """The text of a pod's resolv.conf: Kubernetes' search list and ``upstreams`` (``IP[:PORT]``; a port cannot be
    written in resolv.conf, so only the IP). With none, ``127.0.0.1`` when ``loopback_fallback``."""
    search = f"{namespace}.svc.{domain_suffix} svc.{domain_suffix} {domain_suffix}"
    servers = list(dict.fromkeys(parse_upstream(u).host for u in upstreams))
    if not servers and loopback_fallback:
        servers = ["127.0.0.1"]
    lines = [f"search {search}", *(f"nameserver {s}" for s in servers), "options ndots:5"]
    return (
        "# written by meshplane pod run: UDP/TCP 53 is captured to the sidecar's DNS agent\n" + "\n".join(lines) + "\n"
    )


def write_pod_resolv_conf(netns: str, text: str) -> Path:
    directory = NETNS_ETC / netns
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = directory / "resolv.conf"
    path.write_text(text)
    path.chmod(0o644)
    return path


def remove_pod_etc(netns: str) -> bool:
    """Remove ``/etc/netns/<netns>`` (the pod's resolv.conf); True when it was there."""
    directory = NETNS_ETC / netns
    if not directory.exists():
        return False
    shutil.rmtree(directory)
    return True


def agent_command(*, pilot: str, node_id: str, resolv: Path, upstreams: Sequence[str]) -> list[str]:
    """``meshplane-agent dns`` with this interpreter (the venv's), for the pod's node."""
    argv = [sys.executable, "-m", "agent", "dns", "--pilot", pilot, "--node-id", node_id, "--resolv-conf", str(resolv)]
    argv += ["--listen", f"127.0.0.1:{DNS_CAPTURE_PORT}"]
    for upstream in upstreams:
        argv += ["--upstream", upstream]
    return argv
