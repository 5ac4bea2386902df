"""Mixer in its own process for the Mixer benchmark (``bench.mixer_policy``), so that its CPU time is measured apart
from the load generators in the benchmark process.

``start_standalone_mixer`` runs ``python -m mixer`` on free loopback ports over a config directory holding the demo
mesh's registry as the demo applies it (``e2e/demo_config/00-reviews-mesh.yaml``: pods reviews-v1..v3 at 10.89.0.21-23,
their apps on the service port 9080, productpage at 10.89.0.10) and the Mixer policies under test; no pod has to run
for Mixer to resolve those addresses. It is the harness's
``MixerProcess``, so it starts, waits and stops as in the end-to-end scenarios.
"""

from __future__ import annotations

from pathlib import Path

from bench._measure import free_port
from e2e.control_plane import MixerProcess
from e2e.mesh_config import DEMO_MESH_FILE, render_pod_demo

__all__ = ["BENCH_MIXER_POLICIES", "start_standalone_mixer"]

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


async def start_standalone_mixer(workdir: Path) -> MixerProcess:
    """``python -m mixer`` on free loopback ports over a fresh config directory in ``workdir`` holding the demo
    registry and ``BENCH_MIXER_POLICIES``; ready, with nothing rejected. Stop it with ``stop()``."""
    config_dir = workdir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / DEMO_MESH_FILE.name).write_text(render_pod_demo(DEMO_MESH_FILE))
    (config_dir / "10-bench-policies.yaml").write_text(BENCH_MIXER_POLICIES)
    mixer = MixerProcess(
        config_dir=config_dir,
        workdir=workdir,
        grpc_address=f"127.0.0.1:{free_port()}",
        monitor_address=f"127.0.0.1:{free_port()}",
        log_level="warning",
    )
    await mixer.start(ready_timeout=30.0)
    configz = await mixer.configz()
    if configz.get("rejected"):
        await mixer.stop()
        raise RuntimeError(f"mixer rejected the benchmark config: {configz['rejected']}")
    return mixer
