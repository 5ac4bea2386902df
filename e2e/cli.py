"""``meshplane``: the user-facing command. Each subcommand is a ``Command``: its arguments and an async runner.

    meshplane demo [--keep-running] [--requests 200] [--workdir DIR] [--rootless]
    meshplane demo --compose [--project NAME] [--config-dir compose/config] [--requests 200]
    meshplane analyze DIR [--mesh-config FILE]
    meshplane proxy-status [--pilot-monitor 127.0.0.1:15014]
    meshplane proxy-config cluster|listener|route|endpoint WORKLOAD[.NAMESPACE] [-o json]

A new subcommand is one more ``Command`` in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from agent.pod_cli import capture_arguments, pod_arguments, run_capture, run_pod_command
from agent.rootless import enter_rootless, in_rootless_namespace, run_rootless, why_rootless_cannot_run
from e2e.compose_mesh import COMPOSE_CONFIG_DIR, ComposeError, ComposeMesh, default_project_name, run_compose_demo
from e2e.config_sync import MeshNotSyncedError
from e2e.control_plane import PilotError
from e2e.demo import run_demo
from envoy_bootstrap.binary import EnvoyNotFoundError
from envoy_bootstrap.runner import EnvoyError
from pilot.analyze import analyze_directory, format_finding
from pilot.proxy_status import (
    PROXY_CONFIG_TYPES,
    fetch_json,
    find_proxy,
    render_proxy_config,
    render_proxy_status,
)

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

Runner = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Runner


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-running", action="store_true", help="after the walkthrough, serve until Ctrl-C")
    parser.add_argument(
        "--requests", type=int, default=200, help="requests sent to measure each split (default: %(default)s)"
    )
    parser.add_argument("--workdir", type=Path, help="where config and logs go (default: a temporary directory)")
    parser.add_argument(
        "--rootless",
        action="store_true",
        help="run the pods inside a user namespace of their own, as without root (the default when not root)",
    )
    compose = parser.add_argument_group("compose", "the steps against the running mesh of docker-compose.yml")
    compose.add_argument("--compose", action="store_true", help="run the steps against `docker compose up -d`'s mesh")
    compose.add_argument("--project", help="the compose project (default: as Compose names it, from this directory)")
    compose.add_argument(
        "--config-dir", type=Path, help="the mesh's config directory (default: $MESHPLANE_CONFIG_DIR or compose/config)"
    )


def _demo_flags_problem(args: argparse.Namespace) -> str | None:
    """Flags of one demo given to the other (the pods' to ``--compose``, the compose mesh's without it)."""
    if args.compose:
        pods_only = {"--rootless": args.rootless, "--keep-running": args.keep_running, "--workdir": args.workdir}
        given = [flag for flag, value in pods_only.items() if value]
        return f"{', '.join(given)}: only without --compose (the pods' demo)" if given else None
    compose_only = {"--project": args.project, "--config-dir": args.config_dir}
    given = [flag for flag, value in compose_only.items() if value is not None]
    return f"{', '.join(given)}: only with --compose" if given else None


async def _run_demo(args: argparse.Namespace) -> int:
    if args.requests < 1:
        print("meshplane demo: --requests must be at least 1", file=sys.stderr)
        return 2
    problem = _demo_flags_problem(args)
    if problem is not None:
        print(f"meshplane demo: {problem}", file=sys.stderr)
        return 2
    if args.compose:
        return await _run_compose_demo(args)
    if (os.geteuid() != 0 or args.rootless) and not in_rootless_namespace():
        return _run_demo_rootless(args)
    if in_rootless_namespace():
        enter_rootless()
    return await run_demo(requests=args.requests, keep_running=args.keep_running, workdir=args.workdir)


async def _run_compose_demo(args: argparse.Namespace) -> int:
    """The steps against a compose mesh that is up (docker-compose.yml), as the compose file's defaults have it."""
    config_dir = args.config_dir or Path(os.environ.get("MESHPLANE_CONFIG_DIR", COMPOSE_CONFIG_DIR))
    mesh = ComposeMesh(
        project=args.project or default_project_name(Path.cwd()),
        config_dir=config_dir,
        pilot_monitor=f"127.0.0.1:{os.environ.get('MESHPLANE_PILOT_MONITOR_PORT', '15014')}",
        mixer_monitor=f"127.0.0.1:{os.environ.get('MESHPLANE_MIXER_METRICS_PORT', '42422')}",
    )
    return await run_compose_demo(mesh, requests=args.requests)


def _run_demo_rootless(args: argparse.Namespace) -> int:
    """Without root: the same demo as root of a user namespace of its own (``agent.rootless``), or what is
    missing for that."""
    missing = why_rootless_cannot_run()
    if missing is not None:
        why = "the demo runs its workloads as pods, which need root or a user namespace, and"
        run_as_root = "Run it as root instead: sudo make demo   (or: sudo .venv/bin/meshplane demo)"
        print(f"meshplane demo: {why}\n  {missing}.\n  {run_as_root}", file=sys.stderr)
        return 2
    print("meshplane demo: not root: running the pods inside a user namespace of their own (rootless)", flush=True)
    demo = ["demo", "--requests", str(args.requests), *(["--keep-running"] if args.keep_running else [])]
    if args.workdir is not None:
        demo += ["--workdir", str(args.workdir.resolve())]
    return run_rootless([sys.executable, "-m", "e2e.cli", *demo])


def _analyze_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config_dir", type=Path, help="directory of Istio YAML, read as Pilot reads --config-dir")
    parser.add_argument(
        "--mesh-config", type=Path, default=None, help="Istio MeshConfig file, read as Pilot reads --mesh-config"
    )


async def _run_analyze(args: argparse.Namespace) -> int:
    if not args.config_dir.is_dir():
        print(f"meshplane analyze: {args.config_dir} is not a directory", file=sys.stderr)
        return 2
    findings = await analyze_directory(args.config_dir, args.mesh_config)
    for finding in findings:
        print(format_finding(finding))
    errors = sum(1 for f in findings if f.level == "Error")
    if not findings:
        print(f"\u2714 No validation issues found when analyzing {args.config_dir}.")
    return 1 if errors else 0


def _monitor_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pilot-monitor", default="127.0.0.1:15014", help="Pilot's monitor address (default: %(default)s)"
    )


async def _run_proxy_status(args: argparse.Namespace) -> int:
    print(render_proxy_status(await fetch_json(args.pilot_monitor, "/debug/syncz")))
    return 0


def _proxy_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("type", choices=sorted(PROXY_CONFIG_TYPES), help="which xDS resources to show")
    parser.add_argument("proxy", help="WORKLOAD, WORKLOAD.NAMESPACE or a full node id")
    parser.add_argument("-o", "--output", choices=["short", "json"], default="short")
    _monitor_argument(parser)


async def _run_proxy_config(args: argparse.Namespace) -> int:
    try:
        node_id = find_proxy(await fetch_json(args.pilot_monitor, "/debug/syncz"), args.proxy)
    except LookupError as exc:
        print(f"meshplane proxy-config: {exc}", file=sys.stderr)
        return 1
    dump = await fetch_json(args.pilot_monitor, f"/debug/config_dump?proxy={node_id}")
    if args.output == "json":
        resources = dump.get("types", {}).get(PROXY_CONFIG_TYPES[args.type], {}).get("resources", [])
        print(json.dumps(resources, indent=2))
    else:
        print(render_proxy_config(dump, args.type))
    return 0


COMMANDS: tuple[Command, ...] = (
    Command(
        name="capture",
        help="install or remove Istio's iptables capture in this network namespace (istio-iptables)",
        add_arguments=capture_arguments,
        run=run_capture,
    ),
    Command(
        name="pod",
        help="run a pod (netns on the pod network, capture, sidecar, app) or exec in one",
        add_arguments=pod_arguments,
        run=run_pod_command,
    ),
    Command(
        name="demo",
        help="Istio's reviews traffic shifting as pods (root, or rootless) or against the compose mesh (--compose)",
        add_arguments=_demo_arguments,
        run=_run_demo,
    ),
    Command(
        name="analyze",
        help="check a config directory as Pilot would read it, plus mesh-level problems (istioctl analyze)",
        add_arguments=_analyze_arguments,
        run=_run_analyze,
    ),
    Command(
        name="proxy-status",
        help="per sidecar and xDS type: SYNCED, STALE, NACKED or NOT SENT (istioctl proxy-status)",
        add_arguments=_monitor_argument,
        run=_run_proxy_status,
    ),
    Command(
        name="proxy-config",
        help="the clusters, listeners, routes or endpoints Pilot sent a sidecar (istioctl proxy-config)",
        add_arguments=_proxy_config_arguments,
        run=_run_proxy_config,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshplane", description="meshplane: an Istio-style mesh driving stock Envoy")
    parser.add_argument("--verbose", "-v", action="store_true", help="show meshplane's own logs")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


# what a command's failure may raise: printed as `meshplane COMMAND: message`, exit code 1, no traceback
_COMMAND_ERRORS = (
    EnvoyNotFoundError,
    EnvoyError,
    PilotError,
    MeshNotSyncedError,
    ComposeError,
    OSError,
    aiohttp.ClientError,
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # analyze reports every rejection as a finding: its own log lines would say each one twice
    quiet = logging.ERROR if args.command == "analyze" else logging.WARNING
    level = logging.INFO if args.verbose else quiet
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    runner: Runner = args.run
    try:
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        print(f"meshplane {args.command}: interrupted; everything was stopped", file=sys.stderr)
        return 130
    except _COMMAND_ERRORS as exc:
        print(f"meshplane {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
