"""The pod network on one machine: a bridge with the pod CIDR (gateway ``.1`` on the host), one veth per pod, each
pod in its own network namespace with ``eth0``, ``lo`` and a default route via the gateway (as a Kubernetes pod has:
without one, a connection to a service VIP such as 240.240.0.7 fails with "network unreachable" before the capture
rules see it); the host forwards nothing from the bridge elsewhere (below) and there is no NAT, so pods reach each
other (and the host's gateway address) by IP and nothing else. The bridge has a MAC address of its own
(``bridge_mac``): a Linux bridge without one takes the lowest MAC of its ports, so a pod joining or leaving could
change the gateway's MAC under pods that had resolved it, whose packets to the gateway (e.g. Mixer's address with
``pod run --mixer-direct``) the host then drops until their neighbour entry is probed again.

With Docker's engine installed ``br_netfilter`` is on and the FORWARD policy is DROP: bridged traffic between pods
goes through iptables' FORWARD chain, so the network adds ``-i BRIDGE -o BRIDGE -j ACCEPT`` (and drops anything
from the bridge to another interface), each rule tagged with a comment so that teardown removes exactly those.

State lives under a state directory (``/run/meshplane/pods`` unless the caller gives one: ``pod run --state-dir``),
in ``<state-dir>/<namespace>/<name>/pod.json``; the names of the pod's network namespace (``mp-<root>-<pod>``) and
veth (``mpv<root><pod>``, Linux's 15 characters) derive from a hash of the state directory (``<root>``, 4 hex
digits) and one of the pod's namespace and name, so runs with state directories of their own (two test runs, a test
and the demo) never clash even with the same pod names, and what one run left is recognisable by its prefix
(``netns_prefix``, ``veth_prefix``); a pod IP used by another pod of the same state directory is refused. Setup is
idempotent; everything is serialized by one machine-wide lock file, and the bridge goes away with the last veth on
it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.netns import NETNS_DIR, NetnsError, ip
from agent.pod_dns import remove_pod_etc

__all__ = [
    "DEFAULT_BRIDGE",
    "DEFAULT_PODS_DIR",
    "DEFAULT_POD_CIDR",
    "STATE_DIR",
    "PodAddress",
    "PodNetwork",
    "PodNetworkError",
    "bridge_mac",
    "create_pod",
    "delete_pod",
    "netns_prefix",
    "network_lock",
    "pod_dir",
    "pod_names",
    "pods_left",
    "read_pod",
    "setup_network",
    "teardown_network",
    "veth_prefix",
]

STATE_DIR = Path("/run/meshplane")
DEFAULT_PODS_DIR = STATE_DIR / "pods"
DEFAULT_POD_CIDR = "10.89.0.0/16"
DEFAULT_BRIDGE = "mpbr0"
_COMMENT = "meshplane pod network"
_IPTABLES_ATTEMPTS = 40


class PodNetworkError(RuntimeError):
    """The pod network or a pod cannot be set up as asked; the message names the argument."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PodNetwork:
    bridge: str = DEFAULT_BRIDGE
    cidr: str = DEFAULT_POD_CIDR

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class PodAddress:
    """Where a pod is: its name, namespace and IP, and the names of its network namespace and host-side veth."""

    name: str
    namespace: str
    ip: str
    netns: str
    veth: str
    app_uid: int = 0
    app_gid: int = 0
    runner_pid: int = 0
    state_dir: str = str(DEFAULT_PODS_DIR)

    @property
    def directory(self) -> Path:
        return pod_dir(self.namespace, self.name, Path(self.state_dir))


def _hex(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def netns_prefix(state_dir: Path = DEFAULT_PODS_DIR) -> str:
    """The prefix of every network namespace name of the pods of ``state_dir``."""
    return f"mp-{_hex(str(state_dir.absolute()), 4)}-"


def veth_prefix(state_dir: Path = DEFAULT_PODS_DIR) -> str:
    """The prefix of every host-side veth name of the pods of ``state_dir``."""
    return f"mpv{_hex(str(state_dir.absolute()), 4)}"


def pod_names(state_dir: Path, namespace: str, name: str) -> tuple[str, str]:
    """The pod's network namespace and veth names."""
    key = _hex(f"{namespace}/{name}", 8)
    return f"{netns_prefix(state_dir)}{key}", f"{veth_prefix(state_dir)}{key}"


def pod_dir(namespace: str, name: str, state_dir: Path = DEFAULT_PODS_DIR) -> Path:
    return state_dir / namespace / name


def bridge_mac(network: PodNetwork) -> str:
    """The bridge's own MAC address: ``0a:58`` and the gateway's four IPv4 octets (the Kubernetes CNI bridge's
    convention), unique per gateway on the machine and the same every time the bridge is made."""
    octets = ipaddress.IPv4Address(network.gateway).packed
    return ":".join(f"{byte:02x}" for byte in (0x0A, 0x58, *octets))


def _forward_rules(network: PodNetwork) -> list[list[str]]:
    tag = ["-m", "comment", "--comment", _COMMENT]
    return [
        ["-i", network.bridge, "-o", network.bridge, *tag, "-j", "ACCEPT"],
        ["-i", network.bridge, "!", "-o", network.bridge, *tag, "-j", "DROP"],
    ]


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    """``iptables -w ARGS``, retried while it fails for a reason other than its answer (exit status 1: no such
    rule, a bad rule): with the nf_tables backend a change made meanwhile by another process (another pod's
    capture, another network's setup) fails it with "Resource temporarily unavailable"."""
    for _ in range(_IPTABLES_ATTEMPTS):
        done = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=False, timeout=30)
        if done.returncode in (0, 1) and "temporarily unavailable" not in done.stderr:
            return done
        time.sleep(0.05)
    return done


@contextlib.contextmanager
def network_lock() -> Iterator[None]:
    """The machine-wide lock of every pod network and pod change (whatever the state directory)."""
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(STATE_DIR / "network.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def setup_network(network: PodNetwork) -> None:
    """Create the bridge (with a MAC address of its own, ``bridge_mac``) with the gateway address and the FORWARD
    rules, if they are not there yet."""
    if shutil.which("iptables") is None:
        raise PodNetworkError("iptables: not on PATH (Debian: apt-get install -y iptables)")
    if ip("link", "show", network.bridge, check=False).returncode != 0:
        # an address of its own: without one the bridge takes the lowest MAC of its ports, and pods that resolved
        # the gateway would send to a stale MAC (dropped) when a pod with a lower one joins or the lowest one leaves
        ip("link", "add", network.bridge, "address", bridge_mac(network), "type", "bridge")
    gateway = f"{network.gateway}/{network.network.prefixlen}"
    if gateway not in ip("-o", "addr", "show", "dev", network.bridge).stdout:
        ip("addr", "add", gateway, "dev", network.bridge)
    ip("link", "set", network.bridge, "up")
    for position, rule in enumerate(_forward_rules(network), start=1):
        if _iptables("-C", "FORWARD", *rule).returncode != 0:
            done = _iptables("-I", "FORWARD", str(position), *rule)
            if done.returncode != 0:
                raise PodNetworkError(f"iptables -I FORWARD {' '.join(rule)}: {done.stderr.strip()}")


def teardown_network(network: PodNetwork) -> None:
    """Remove the FORWARD rules and the bridge (nothing else was made)."""
    for rule in _forward_rules(network):
        while _iptables("-C", "FORWARD", *rule).returncode == 0:
            done = _iptables("-D", "FORWARD", *rule)
            if done.returncode != 0:
                raise PodNetworkError(f"iptables -D FORWARD {' '.join(rule)}: {done.stderr.strip()}")
    ip("link", "del", network.bridge, check=False)


def _write_atomically(path: Path, text: str) -> None:
    """Readers (``pod exec``, a test waiting for the pod) see the whole file or none of it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)


def read_pod(namespace: str, name: str, state_dir: Path = DEFAULT_PODS_DIR) -> PodAddress | None:
    try:
        return PodAddress(**json.loads((pod_dir(namespace, name, state_dir) / "pod.json").read_text()))
    except FileNotFoundError:
        return None


def _pods(state_dir: Path) -> list[PodAddress]:
    found = []
    for path in sorted(state_dir.glob("*/*/pod.json")):
        with contextlib.suppress(OSError, ValueError, TypeError):
            found.append(PodAddress(**json.loads(path.read_text())))
    return found


def _check_ip(network: PodNetwork, pod_ip: str, namespace: str, name: str, state_dir: Path) -> str:
    try:
        address = ipaddress.IPv4Address(pod_ip)
    except ValueError:
        raise PodNetworkError(f"--ip: {pod_ip!r} is not an IPv4 address") from None
    net = network.network
    if address not in net or address in (net.network_address, net.broadcast_address) or str(address) == network.gateway:
        raise PodNetworkError(f"--ip: {pod_ip} is not a pod address of {net} (the gateway is {network.gateway})")
    for other in _pods(state_dir):
        if other.ip == str(address) and (other.namespace, other.name) != (namespace, name):
            raise PodNetworkError(f"--ip: {pod_ip} is already the address of pod {other.name}.{other.namespace}")
    return str(address)


def create_pod(
    network: PodNetwork,
    *,
    name: str,
    namespace: str,
    pod_ip: str,
    app_uid: int,
    app_gid: int,
    runner_pid: int,
    state_dir: Path = DEFAULT_PODS_DIR,
) -> PodAddress:
    """The pod's network namespace with ``eth0`` on the bridge at ``pod_ip`` and ``lo`` up, and its state file
    under ``state_dir`` (created 0755: the sidecar's uid must reach its own directory inside). Call ``delete_pod``
    first for a pod that may be left over."""
    netns, veth = pod_names(state_dir, namespace, name)
    pod = PodAddress(
        name=name,
        namespace=namespace,
        ip=_check_ip(network, pod_ip, namespace, name, state_dir),
        netns=netns,
        veth=veth,
        app_uid=app_uid,
        app_gid=app_gid,
        runner_pid=runner_pid,
        state_dir=str(state_dir),
    )
    directory = pod.directory
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    _write_atomically(directory / "pod.json", json.dumps(asdict(pod), indent=2) + "\n")
    ip("netns", "add", pod.netns)
    ip("link", "add", pod.veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
    ip("link", "set", pod.veth, "master", network.bridge, "up")
    ip("-n", pod.netns, "addr", "add", f"{pod.ip}/{network.network.prefixlen}", "dev", "eth0")
    ip("-n", pod.netns, "link", "set", "eth0", "up")
    ip("-n", pod.netns, "link", "set", "lo", "up")
    ip("-n", pod.netns, "route", "add", "default", "via", network.gateway, "dev", "eth0")
    return pod


def _kill_namespace_processes(netns: str) -> None:
    pids = ip("netns", "pids", netns, check=False).stdout.split()
    if pids:
        subprocess.run(["kill", "-KILL", *pids], capture_output=True, check=False)


def delete_pod(namespace: str, name: str, state_dir: Path = DEFAULT_PODS_DIR) -> bool:
    """Kill what still runs in the pod's namespace, delete the namespace (its rules and eth0 go with it), the veth
    its ``/etc/netns/<netns>`` (resolv.conf) and the state directory. True when something was there."""
    netns, veth = pod_names(state_dir, namespace, name)
    found = False
    if (NETNS_DIR / netns).exists():
        found = True
        _kill_namespace_processes(netns)
        try:
            ip("netns", "del", netns)
        except NetnsError:
            if (NETNS_DIR / netns).exists():
                raise
    if ip("link", "show", veth, check=False).returncode == 0:
        found = True
        ip("link", "del", veth, check=False)
    found = remove_pod_etc(netns) or found
    directory = pod_dir(namespace, name, state_dir)
    if directory.exists():
        found = True
        shutil.rmtree(directory)
    for parent in (directory.parent, directory.parent.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()  # only when empty
    return found


def pods_left(network: PodNetwork) -> bool:
    """Whether any pod (of any state directory) is still on ``network``: a veth attached to its bridge."""
    return bool(ip("-o", "link", "show", "master", network.bridge, check=False).stdout.strip())
