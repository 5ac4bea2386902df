"""``meshplane pod run``: one pod in the foreground. Creates the pod's network namespace on the pod network, installs
the capture (with DNS capture unless ``dns`` is off), writes the pod's resolv.conf, relays the control plane (Pilot,
Citadel, Mixer) into the pod (Mixer not with ``mixer_direct``: see ``PodSpec``), starts the DNS agent (root, gid 1337,
see ``agent.pod_dns``), Envoy (uid 1337, with the ProxyConfig Pilot resolves for its node:
``envoy_bootstrap.proxy_config``) bootstrapped for Pilot with ``INTERCEPTION_MODE=REDIRECT`` (and Citadel's SDS with the
workload's token and trust bundle, copied where uid 1337 reads them and kept in step with ``--root-cert``, see
``follow_root_cert``) and the app (never uid 1337); on SIGTERM/SIGINT or when one of them exits, stops all and removes
the namespace, its rules, its resolv.conf and, with the last pod, the pod network. A pod left by a crash is cleaned
first."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import structlog

from agent.capture import CaptureOptions
from agent.iptables import install_capture
from agent.netns import in_netns_command
from agent.pod_dns import agent_command, resolv_conf, write_pod_resolv_conf
from agent.pod_network import (
    DEFAULT_PODS_DIR,
    PodAddress,
    PodNetwork,
    PodNetworkError,
    create_pod,
    delete_pod,
    network_lock,
    pods_left,
    read_pod,
    setup_network,
    teardown_network,
)
from agent.relay import Relay
from agent.shared_files import shared_envoy_binary, write_private
from agent.sidecar_files import ROOT_CERT_COPY, SidecarFilesError, citadel_flags_problem, write_sidecar_bootstrap
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import XdsMode, parse_host_port, sidecar_node_id
from envoy_bootstrap.proxy_config import fetch_launch_settings
from envoy_bootstrap.runner import sidecar_command
from meshplane.names import PROXY_UID

__all__ = [
    "PodSpec",
    "exec_in_pod",
    "mixer_direct_problem",
    "relayed_addresses",
    "run_pod",
    "sidecar_mixer_address",
]

log = structlog.get_logger(__name__)

_STOP_SECONDS = 5.0
_ROOT_CERT_POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PodSpec:
    """One pod. The control plane's addresses are host-side: ``pod run`` relays each into the pod on its
    ``127.0.0.1:<same port>`` (``agent.relay``: a listening socket in the pod, connections made from the host), except
    Mixer's with ``mixer_direct``: then the sidecar connects to ``mixer`` itself, an address the pod routes to (the
    pod network's gateway, the host's side of the bridge, where Mixer listens: ``mixer --grpc-address
    10.89.0.1:9091``), as Istio's sidecars reach istio-policy through its Service. A check then crosses no Python
    process but Mixer (the relay is one more each way: 0.2-0.3 ms of p50 and 0.8-4.5 ms of p99 per checked request
    at 300 req/s, README "Performance"); the capture never sees it (the sidecar's uid 1337 is excluded)."""

    name: str
    namespace: str
    ip: str
    app: tuple[str, ...]
    app_uid: int
    pilot: str = "127.0.0.1:15010"
    xds_mode: XdsMode = "sotw"
    mixer: str | None = None
    mixer_direct: bool = False  # the sidecar connects to ``mixer`` itself (no relay): see the class doc
    citadel: str | None = None
    token_file: Path | None = None
    root_cert: Path | None = None
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    node_metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # e.g. AUTO_REGISTER_GROUP
    domain_suffix: str = "cluster.local"
    dns: bool = True
    dns_upstreams: tuple[str, ...] = ()
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    network: PodNetwork = field(default_factory=PodNetwork)
    state_dir: Path = DEFAULT_PODS_DIR

    def __post_init__(self) -> None:
        problem = citadel_flags_problem(self.citadel, self.token_file, self.root_cert)
        if problem is not None:
            raise PodNetworkError(problem)
        problem = mixer_direct_problem(self.mixer, self.mixer_direct)
        if problem is not None:
            raise PodNetworkError(problem)

    @property
    def node_id(self) -> str:
        return sidecar_node_id(
            workload=self.name, namespace=self.namespace, address=self.ip, domain_suffix=self.domain_suffix
        )


def mixer_direct_problem(mixer: str | None, direct: bool) -> str | None:
    """Why ``--mixer``/``--mixer-direct`` cannot be used as given; None when they can."""
    if not direct:
        return None
    if mixer is None:
        return "--mixer-direct: needs --mixer (an address the pod routes to, e.g. the pod network's gateway)"
    host = parse_host_port(mixer, argument="--mixer").host
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        if address.is_loopback or address.is_unspecified:
            return (
                f"--mixer-direct: --mixer {mixer} is, inside the pod, the pod's own address (loopback or unspecified); "
                "give an address the pod routes to (the pod network's gateway, e.g. 10.89.0.1, where Mixer listens) or "
                "drop --mixer-direct to relay it"
            )
    return None


def relayed_addresses(spec: PodSpec) -> list[str]:
    """The host-side control-plane addresses the relay brings into the pod."""
    mixer = None if spec.mixer_direct else spec.mixer
    return [address for address in (spec.pilot, spec.citadel, mixer) if address is not None]


def sidecar_mixer_address(spec: PodSpec) -> str | None:
    """Where the pod's sidecar connects to Mixer: ``mixer`` itself with ``mixer_direct``, else the relay's in-pod
    address (127.0.0.1, the same port)."""
    return spec.mixer if spec.mixer_direct else _local(spec.mixer, "--mixer")


def _in_pod(address: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """The in-pod listen address (127.0.0.1, same port) and the host address of a control-plane component."""
    target = parse_host_port(address, argument=address)
    return ("127.0.0.1", target.port), (target.host, target.port)


def _local(address: str | None, flag: str) -> str | None:
    """The in-pod address (the relay's) of a host-side control-plane address."""
    return None if address is None else f"127.0.0.1:{parse_host_port(address, argument=flag).port}"


def _write_bootstrap(spec: PodSpec, pod: PodAddress) -> Path:
    """The pod's sidecar bootstrap: the control plane at its relayed in-pod addresses (Mixer at ``mixer`` itself
    with ``mixer_direct``)."""
    try:
        return write_sidecar_bootstrap(
            pod.directory / "sidecar",
            workload=spec.name,
            namespace=spec.namespace,
            address=pod.ip,
            domain_suffix=spec.domain_suffix,
            pilot=f"127.0.0.1:{parse_host_port(spec.pilot, argument='--pilot').port}",
            mixer=sidecar_mixer_address(spec),
            xds_mode=spec.xds_mode,
            service_account=spec.service_account,
            labels=spec.labels,
            node_metadata=spec.node_metadata,
            citadel=_local(spec.citadel, "--citadel"),
            token_file=spec.token_file,
            root_cert=spec.root_cert,
        )
    except SidecarFilesError as exc:
        raise PodNetworkError(str(exc)) from None


def _write_resolv_conf(spec: PodSpec, pod: PodAddress) -> Path:
    """The pod's resolv.conf, and the agent's copy (real upstreams only); the agent's copy's path."""
    write_pod_resolv_conf(
        pod.netns, resolv_conf(spec.namespace, spec.domain_suffix, spec.dns_upstreams, loopback_fallback=True)
    )
    agent_copy = pod.directory / "agent-resolv.conf"
    agent_copy.write_text(resolv_conf(spec.namespace, spec.domain_suffix, spec.dns_upstreams, loopback_fallback=False))
    return agent_copy


def _clean_leftover(spec: PodSpec) -> None:
    old = read_pod(spec.namespace, spec.name, spec.state_dir)
    if old is not None and old.runner_pid and old.runner_pid != os.getpid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(old.runner_pid, 0)
            raise PodNetworkError(f"pod {spec.name}.{spec.namespace} is running (pid {old.runner_pid})")
    delete_pod(spec.namespace, spec.name, spec.state_dir)


def _proxy_writable(log: Path) -> Path:
    """``log``, created and owned by the proxy's uid when we are root: Envoy's file access loggers open their path
    themselves, and Istio's ``envoy`` provider writes to ``/dev/stdout``, i.e. Envoy reopens this file (in a
    container its stdout is a pipe it may always open)."""
    log.touch()
    if os.geteuid() == 0:
        os.chown(log, PROXY_UID, PROXY_UID)
    return log


async def _start(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=out, start_new_session=True, env=None if env is None else dict(env)
        )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), _STOP_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def _replace_private(path: Path, data: bytes) -> None:
    """``data`` at ``path`` (0600, uid 1337) by rename, so Envoy's watch on the file never reads half a bundle."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    write_private(temporary, data, PROXY_UID)
    temporary.replace(path)


async def follow_root_cert(source: Path, copy: Path, *, interval: float = _ROOT_CERT_POLL_SECONDS) -> None:
    """Keep the sidecar's copy of the trust bundle equal to ``source`` (``--root-cert``, which Citadel rewrites
    during a root rotation, as Kubernetes updates a mounted ``istio-ca-root-cert``): Envoy watches the copy (the
    file-based SDS secret of ``write_citadel_trust``), so a running pod still verifies Citadel after the old root is
    retired. An unreadable or empty source leaves the last copy in force. Runs until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            bundle = source.read_bytes()
        except OSError as exc:
            log.warning("root_cert_unreadable", path=str(source), error=exc.strerror)
            continue
        if bundle and bundle != copy.read_bytes():
            _replace_private(copy, bundle)
            log.info("root_cert_updated", path=str(copy))


async def run_pod(spec: PodSpec) -> int:
    """Run the pod until the app exits or a signal; the app's exit code (128+N for a signal)."""
    if spec.app_uid == PROXY_UID:
        raise PodNetworkError(f"--app-uid: {PROXY_UID} is the proxy's uid; its traffic would not be captured")
    envoy = shared_envoy_binary(find_envoy_binary())
    processes: list[asyncio.subprocess.Process] = []
    follower: asyncio.Task[None] | None = None
    relay: Relay | None = None
    owned = False  # once the pod's names are ours to create and remove (not another live run's)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    # before anything is created: a SIGTERM during set-up must still run the clean-up below
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopped.set)
    try:
        with network_lock():
            _clean_leftover(spec)
            owned = True
            setup_network(spec.network)
            pod = create_pod(
                spec.network,
                name=spec.name,
                namespace=spec.namespace,
                pod_ip=spec.ip,
                app_uid=spec.app_uid,
                app_gid=spec.app_uid,
                runner_pid=os.getpid(),
                state_dir=spec.state_dir,
            )
        relay = Relay(pod.netns, [_in_pod(address) for address in relayed_addresses(spec)])
        install_capture(dataclasses.replace(spec.capture, redirect_dns=spec.dns), pod.netns)
        await relay.start()
        bootstrap = _write_bootstrap(spec, pod)
        if spec.root_cert is not None:
            copy = bootstrap.parent / ROOT_CERT_COPY
            follower = asyncio.create_task(follow_root_cert(spec.root_cert, copy))
        logs = pod.directory
        if spec.dns:
            agent_resolv = _write_resolv_conf(spec, pod)
            dns_argv = agent_command(
                pilot=_local(spec.pilot, "--pilot") or "",
                node_id=spec.node_id,
                resolv=agent_resolv,
                upstreams=spec.dns_upstreams,
            )
            # root with the proxy's gid: excluded from capture (--gid-owner), able to read a venv under /root
            dns_command = in_netns_command(pod.netns, dns_argv, uid=0, gid=PROXY_UID)
            processes.append(await _start(dns_command, logs / "agent.log"))
        # the pod's ProxyConfig (concurrency, environment), as Pilot resolves it for the sidecar's node
        launch = await fetch_launch_settings(spec.pilot, bootstrap, default_concurrency=1)
        log.info("proxy_config", pod=spec.name, concurrency=launch.concurrency, environment=sorted(launch.environment))
        envoy_argv = sidecar_command(envoy, bootstrap, concurrency=launch.concurrency, log_level="info")
        envoy_command = in_netns_command(pod.netns, envoy_argv, uid=PROXY_UID)
        environment = launch.process_environment(os.environ)
        envoy_log = _proxy_writable(logs / "envoy.log")
        processes.append(await _start(envoy_command, envoy_log, environment))
        if stopped.is_set():  # stopped while setting up: never start the app
            return 128 + signal.SIGTERM
        app = await _start(in_netns_command(pod.netns, spec.app, uid=spec.app_uid), logs / "app.log")
        processes.append(app)
        waits = [asyncio.ensure_future(p.wait()) for p in processes] + [asyncio.ensure_future(stopped.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        return app.returncode if app.returncode is not None else 128 + signal.SIGTERM
    finally:
        if follower is not None:
            follower.cancel()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
        for process in reversed(processes):
            await _stop(process)
        if relay is not None:
            await relay.close()
        if owned:
            with network_lock():
                delete_pod(spec.namespace, spec.name, spec.state_dir)
                if not pods_left(spec.network):
                    teardown_network(spec.network)


def exec_in_pod(namespace: str, name: str, argv: Sequence[str], state_dir: Path = DEFAULT_PODS_DIR) -> None:
    """Replace this process with ``argv`` inside the pod (of ``state_dir``, as ``pod run``'s), as its app's uid."""
    pod = read_pod(namespace, name, state_dir)
    if pod is None:
        raise PodNetworkError(f"no pod {name}.{namespace} is running (state directory {state_dir})")
    command = in_netns_command(pod.netns, argv, uid=pod.app_uid, gid=pod.app_gid)
    os.execvp(command[0], command)
