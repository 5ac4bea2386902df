"""Mixer in its own process for the Mixer benchmark (``bench.mixer_policy``), so that its CPU time is measured apart
from the load generators in the benchmark process.

``start_standalone_mixer`` runs ``python -m mixer`` on free loopback ports over a config directory holding the demo
mesh's registry as the demo applies it (``e2e/demo_config/00-reviews-mesh.yaml``: pods reviews-v1..v3 at 10.89.0.21-23,
their apps on the service port 9080, productpage at 10.89.0.10) and the Mixer policies under test; no pod has to run
for Mixer to resolve those addresses. It is the harness's
``MixerProcess``, so it starts, waits and stops as in the end-to-end scenarios.

``start_mixer_standin`` runs the reference beside it: ``mixer_standin.py`` of the shared tools (``--tools-dir``; see
their README), a grpc.aio server that parses each CheckRequest and answers a constant pre-serialized OK, with no
policy and no metrics SDK: the ceiling of a Python gRPC server on this machine. The checks part drives it with the
same load just before Mixer and compares checks per CPU-second.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from bench._measure import free_port
from e2e.control_plane import ControlPlaneProcess, MixerProcess
from e2e.mesh_config import DEMO_MESH_FILE, render_pod_demo

__all__ = [
    "BENCH_MIXER_POLICIES",
    "MIXER_STANDIN",
    "MixerGroup",
    "MixerStandinProcess",
    "start_mixer_group",
    "start_mixer_standin",
    "start_standalone_mixer",
]

MIXER_STANDIN = "mixer_standin.py"  # in the shared tools directory

# An AccessList (deny a user nobody is) and a RateLimit (a limit nobody reaches) on every reviews workload: each
# check evaluates both, one CEL value lookup and one counter per check, and allows the request.
BENCH_MIXER_POLICIES = """\
apiVersion: mixer.meshplane.io/v1
kind: AccessList
metadata:
  name: bench-blocked-users
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  value: request.headers["end-user"]
  entries: ["mallory", "trudy"]
  entryType: STRINGS
  mode: deny
---
apiVersion: mixer.meshplane.io/v1
kind: RateLimit
metadata:
  name: bench-quota
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  key: request.headers["end-user"]
  limit:
    requests: 1000000000
    per: 1s
"""


# With a shared quota store: a RateLimit only the exactness run's checks are counted in (they carry the header).
EXACT_QUOTA_HEADER = "x-bench-quota"
EXACT_QUOTA_REQUESTS = 1000
EXACT_QUOTA_POLICY = f"""\
---
apiVersion: mixer.meshplane.io/v1
kind: RateLimit
metadata:
  name: bench-exact-quota
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  match: '"{EXACT_QUOTA_HEADER}" in request.headers'
  key: request.headers["{EXACT_QUOTA_HEADER}"]
  limit:
    requests: {EXACT_QUOTA_REQUESTS}
    per: 10m
"""


async def start_standalone_mixer(
    workdir: Path,
    *,
    grpc_address: str | None = None,
    policies: str = BENCH_MIXER_POLICIES,
    extra_arguments: tuple[str, ...] = (),
) -> MixerProcess:
    """``python -m mixer`` on free loopback ports (or on ``grpc_address``, which another Mixer may serve: gRPC sets
    SO_REUSEPORT, the kernel spreads connections between them) over a fresh config directory in ``workdir`` holding
    the demo registry and ``BENCH_MIXER_POLICIES``; ready, with nothing rejected. Stop it with ``stop()``."""
    config_dir = workdir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / DEMO_MESH_FILE.name).write_text(render_pod_demo(DEMO_MESH_FILE))
    (config_dir / "10-bench-policies.yaml").write_text(policies)
    mixer = MixerProcess(
        config_dir=config_dir,
        workdir=workdir,
        grpc_address=grpc_address or f"127.0.0.1:{free_port()}",
        monitor_address=f"127.0.0.1:{free_port()}",
        log_level="warning",
        extra_arguments=extra_arguments,
    )
    await mixer.start(ready_timeout=30.0)
    configz = await mixer.configz()
    if configz.get("rejected"):
        await mixer.stop()
        raise RuntimeError(f"mixer rejected the benchmark config: {configz['rejected']}")
    return mixer


class MixerGroup:
    """Several Mixer processes on one gRPC address, driven as one server: their CPU summed (``pids``), their
    /metrics concatenated (the benchmark sums samples)."""

    def __init__(self, mixers: Sequence[MixerProcess]) -> None:
        self.mixers = tuple(mixers)
        self.grpc_address = self.mixers[0].grpc_address
        self.pid: int | None = None
        self.extra_pids: tuple[int, ...] = ()  # processes whose CPU counts as the group's (its Redis)

    @property
    def pids(self) -> tuple[int | None, ...]:
        return (*(mixer.pid for mixer in self.mixers), *self.extra_pids)

    async def metrics_text(self) -> str:
        return "\n".join(await self.each_metrics_text())

    async def each_metrics_text(self) -> list[str]:
        return [await mixer.metrics_text() for mixer in self.mixers]

    async def stop(self) -> None:
        for mixer in self.mixers:
            await mixer.stop()


async def start_mixer_group(
    workdir: Path, processes: int, *, policies: str = BENCH_MIXER_POLICIES, extra_arguments: tuple[str, ...] = ()
) -> MixerGroup:
    """``processes`` standalone Mixers (``start_standalone_mixer``) sharing one gRPC address."""
    first = await start_standalone_mixer(workdir / "mixer-1", policies=policies, extra_arguments=extra_arguments)
    mixers = [first]
    try:
        for number in range(2, processes + 1):
            mixers.append(
                await start_standalone_mixer(
                    workdir / f"mixer-{number}",
                    grpc_address=first.grpc_address,
                    policies=policies,
                    extra_arguments=extra_arguments,
                )
            )
    except BaseException:
        await MixerGroup(mixers).stop()
        raise
    return MixerGroup(mixers)


class MixerStandinProcess(ControlPlaneProcess):
    """The shared tools' ``mixer_standin.py`` on ``grpc_address``, run like a control-plane process (own session,
    log in ``<workdir>/mixer_standin.log``, ready when its ``/ready`` answers)."""

    name = "mixer_standin"

    def __init__(self, *, script: Path, workdir: Path, grpc_address: str, monitor_address: str) -> None:
        self.script = script
        self.grpc_address = grpc_address
        arguments = ["--grpc-address", grpc_address, "--monitor-address", monitor_address]
        super().__init__(workdir=workdir, monitor_address=monitor_address, arguments=arguments)

    def command(self) -> list[str]:
        return [sys.executable, str(self.script), *self.arguments]

    async def metrics_text(self) -> str:
        """Its /metrics: ``limit_checks_total`` and ``limit_log_entries_total``."""
        status, body = await self.get("/metrics")
        if status != 200:
            raise self.error(f"/metrics answered {status}: {body[:300]}")
        return body


async def start_mixer_standin(tools_dir: Path, workdir: Path) -> MixerStandinProcess:
    """``mixer_standin.py`` from ``tools_dir`` on free loopback ports, ready. Stop it with ``stop()``."""
    script = tools_dir / MIXER_STANDIN
    if not script.is_file():
        raise SystemExit(
            f"bench.mixer_policy: {MIXER_STANDIN} not found in {tools_dir}: the reference tools live in shared/tools "
            "beside the repository checkout; pass --tools-dir DIR if they are elsewhere (or --skip-reference)"
        )
    standin = MixerStandinProcess(
        script=script,
        workdir=workdir,
        grpc_address=f"127.0.0.1:{free_port()}",
        monitor_address=f"127.0.0.1:{free_port()}",
    )
    await standin.start(ready_timeout=30.0)
    return standin
