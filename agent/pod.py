"""``meshplane pod run``: one pod in the foreground. Creates the pod's network namespace on the pod network,
installs the capture, relays the control plane into the pod, starts Envoy (uid 1337) bootstrapped for Pilot with
``INTERCEPTION_MODE=REDIRECT`` and the app (never uid 1337); on SIGTERM/SIGINT or when either exits, stops both and
removes the namespace, its rules and, with the last pod, the pod network. A pod left by a crash is cleaned first."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.capture import CaptureOptions
from agent.iptables import install_capture
from agent.netns import in_netns_command
from agent.pod_network import (
    PodAddress,
    PodNetwork,
    PodNetworkError,
    create_pod,
    delete_pod,
    network_lock,
    pod_dir,
    pods_left,
    read_pod,
    setup_network,
    teardown_network,
)
from agent.relay import Relay
from agent.shared_files import private_dir, shared_envoy_binary, write_private
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import bootstrap_to_json, build_sidecar_bootstrap, parse_host_port
from envoy_bootstrap.runner import sidecar_command
from meshplane.names import PROXY_UID

__all__ = ["PodSpec", "exec_in_pod", "run_pod"]

_STOP_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PodSpec:
    name: str
    namespace: str
    ip: str
    app: tuple[str, ...]
    app_uid: int
    pilot: str = "127.0.0.1:15010"
    mixer: str | None = None
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    network: PodNetwork = field(default_factory=PodNetwork)


def _in_pod(address: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """The in-pod listen address (127.0.0.1, same port) and the host address of a control-plane component."""
    target = parse_host_port(address, argument=address)
    return ("127.0.0.1", target.port), (target.host, target.port)


def _write_bootstrap(spec: PodSpec, pod: PodAddress) -> Path:
    text = bootstrap_to_json(
        build_sidecar_bootstrap(
            workload=spec.name,
            namespace=spec.namespace,
            address=pod.ip,
            pilot=f"127.0.0.1:{parse_host_port(spec.pilot, argument='--pilot').port}",
            mixer=None if spec.mixer is None else f"127.0.0.1:{parse_host_port(spec.mixer, argument='--mixer').port}",
            interception_mode="REDIRECT",
            admin_address="127.0.0.1",
        )
    )
    directory = private_dir(pod_dir(spec.namespace, spec.name) / "sidecar", PROXY_UID)
    return write_private(directory / "bootstrap.json", text.encode(), PROXY_UID)


def _clean_leftover(spec: PodSpec) -> None:
    old = read_pod(spec.namespace, spec.name)
    if old is not None and old.runner_pid and old.runner_pid != os.getpid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(old.runner_pid, 0)
            raise PodNetworkError(f"pod {spec.name}.{spec.namespace} is running (pid {old.runner_pid})")
    delete_pod(spec.namespace, spec.name)


async def _start(argv: Sequence[str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out, start_new_session=True)


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


async def run_pod(spec: PodSpec) -> int:
    """Run the pod until the app exits or a signal; the app's exit code (128+N for a signal)."""
    if spec.app_uid == PROXY_UID:
        raise PodNetworkError(f"--app-uid: {PROXY_UID} is the proxy's uid; its traffic would not be captured")
    envoy = shared_envoy_binary(find_envoy_binary())
    with network_lock():
        _clean_leftover(spec)
        setup_network(spec.network)
        pod = create_pod(
            spec.network,
            name=spec.name,
            namespace=spec.namespace,
            pod_ip=spec.ip,
            app_uid=spec.app_uid,
            app_gid=spec.app_uid,
            runner_pid=os.getpid(),
        )
    relay = Relay(pod.netns, [_in_pod(a) for a in (spec.pilot, spec.mixer) if a is not None])
    processes: list[asyncio.subprocess.Process] = []
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopped.set)
    try:
        install_capture(spec.capture, pod.netns)
        await relay.start()
        bootstrap = _write_bootstrap(spec, pod)
        logs = pod_dir(spec.namespace, spec.name)
        envoy_argv = sidecar_command(envoy, bootstrap, concurrency=1, log_level="info")
        processes.append(await _start(in_netns_command(pod.netns, envoy_argv, uid=PROXY_UID), logs / "envoy.log"))
        processes.append(await _start(in_netns_command(pod.netns, spec.app, uid=spec.app_uid), logs / "app.log"))
        waits = [asyncio.ensure_future(p.wait()) for p in processes] + [asyncio.ensure_future(stopped.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        app = processes[1]
        return app.returncode if app.returncode is not None else 128 + signal.SIGTERM
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
        for process in reversed(processes):
            await _stop(process)
        await relay.close()
        with network_lock():
            delete_pod(spec.namespace, spec.name)
            if not pods_left():
                teardown_network(spec.network)


def exec_in_pod(namespace: str, name: str, argv: Sequence[str]) -> None:
    """Replace this process with ``argv`` inside the pod, as its app's uid."""
    pod = read_pod(namespace, name)
    if pod is None:
        raise PodNetworkError(f"no pod {name}.{namespace} is running")
    command = in_netns_command(pod.netns, argv, uid=pod.app_uid, gid=pod.app_gid)
    os.execvp(command[0], command)
