"""The local single-node Kubernetes cluster (``e2e/k8s/cluster.sh``) as something a test session can start and stop.

``cluster.sh`` does the work (build, up, down: the recipe and every network-safety measure live there, in one
place); this module runs it, says why it cannot run on a machine (the skip reason), and tags the Docker images the
cluster's pods use under ``localhost/`` (kubelet never pulls them, ``imagePullPolicy: Never``; were a pull ever
attempted, it could only dial 127.0.0.1).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

CLUSTER_SH = Path(__file__).with_name("cluster.sh")
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LocalCluster:
    """A running local cluster: its admin kubeconfig and how long ``up`` took."""

    kubeconfig: Path
    up_seconds: float


def why_cluster_cannot_start() -> str | None:
    """Why ``cluster.sh up`` cannot run on this machine (not root, no Docker engine, binaries not built), or None."""
    done = subprocess.run([CLUSTER_SH, "why-not"], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    return done.stdout.strip() or done.stderr.strip() or f"{CLUSTER_SH} why-not exited {done.returncode}"


def start_cluster() -> LocalCluster:
    """``cluster.sh up`` (fresh PKI, every component, the no-foreign-socket check); raises with its log on failure."""
    started = time.monotonic()
    done = subprocess.run([CLUSTER_SH, "up"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{CLUSTER_SH} up failed ({done.returncode}):\n{done.stderr}")
    up_seconds = time.monotonic() - started
    kubeconfig = Path(done.stdout.strip().splitlines()[-1])
    log.info("local kubernetes up", kubeconfig=str(kubeconfig), seconds=round(up_seconds, 1))
    return LocalCluster(kubeconfig=kubeconfig, up_seconds=up_seconds)


def stop_cluster() -> None:
    """``cluster.sh down``: every process, pod container, iptables rule, device, mount and sysctl ``up`` changed."""
    done = subprocess.run([CLUSTER_SH, "down"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{CLUSTER_SH} down failed ({done.returncode}):\n{done.stderr}")


def localhost_image(image: str) -> str:
    """``image`` (already in Docker) tagged ``localhost/<image>``, the name to give pods."""
    tagged = image if image.startswith("localhost/") else f"localhost/{image}"
    subprocess.run(["docker", "tag", image, tagged], check=True, capture_output=True)
    return tagged
