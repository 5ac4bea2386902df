"""How every meshplane process reaches a Kubernetes API server (Pilot's watches and status writes, Citadel's
TokenReview, the injector's webhook configuration): the official ``kubernetes`` client, configured from a
kubeconfig file (``--kubeconfig FILE``, as ``kubectl`` takes it) or from inside a pod (``--in-cluster``: the
service-account token, CA and ``KUBERNETES_SERVICE_HOST``/``_PORT`` the kubelet gives every pod).

The client is synchronous (urllib3): callers run its requests in worker threads (``asyncio.to_thread``), never on
the event loop.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

__all__ = ["KubeAccess", "add_kube_arguments", "kube_access_from_arguments", "new_api_client", "watch_api_client"]


@dataclass(frozen=True)
class KubeAccess:
    """Where a process finds its API server: a kubeconfig file, or the pod it runs in (``kubeconfig`` None)."""

    kubeconfig: Path | None = None

    @property
    def in_cluster(self) -> bool:
        return self.kubeconfig is None

    def describe(self) -> str:
        return "in-cluster service account" if self.kubeconfig is None else f"kubeconfig {self.kubeconfig}"


def new_api_client(access: KubeAccess) -> client.ApiClient:
    """A fresh API client for ``access`` (one per process part; the client pools its connections)."""
    if access.kubeconfig is None:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]  # untyped upstream
        config_file=str(access.kubeconfig)
    )
    return api


def watch_api_client(access: KubeAccess, connections: int) -> client.ApiClient:
    """An API client whose pool keeps ``connections`` connections: one per watch held open, plus lists."""
    configuration = copy.copy(new_api_client(access).configuration)
    configuration.connection_pool_maxsize = max(connections, configuration.connection_pool_maxsize)
    return client.ApiClient(configuration)


def add_kube_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``--kubeconfig FILE`` and ``--in-cluster`` (exclusive), for a process that reads ``what`` from Kubernetes."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--kubeconfig", type=Path, default=None, metavar="FILE", help=f"read {what} from the cluster of this kubeconfig"
    )
    group.add_argument(
        "--in-cluster",
        action="store_true",
        help=f"read {what} from the cluster this process runs in (its pod's service account)",
    )


def kube_access_from_arguments(arguments: argparse.Namespace) -> KubeAccess | None:
    """The access ``--kubeconfig``/``--in-cluster`` asked for, or None (no Kubernetes)."""
    if arguments.kubeconfig is not None:
        return KubeAccess(kubeconfig=arguments.kubeconfig)
    if arguments.in_cluster:
        return KubeAccess()
    return None
