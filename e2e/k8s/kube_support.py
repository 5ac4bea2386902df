"""What the scenarios on Kubernetes share: waiting for a condition, running a command in a pod, reading
EndpointSlices (``discovery.k8s.io/v1``, or ``v1beta1`` where the server has only that, as 1.20: the client has no
API class for v1beta1, so they are read with raw REST)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.stream import stream

T = TypeVar("T")
ENDPOINTSLICE_VERSIONS = ("discovery.k8s.io/v1", "discovery.k8s.io/v1beta1")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def endpointslice_path(api: client.ApiClient) -> str:
    served = client.ApisApi(api).get_api_versions()
    versions = {version.group_version for group in served.groups for version in group.versions}
    group_version = next(v for v in ENDPOINTSLICE_VERSIONS if v in versions)
    return f"/apis/{group_version}/namespaces/{{namespace}}/endpointslices"


def endpointslices(api: client.ApiClient, namespace: str, service: str) -> list[dict[str, Any]]:
    method, url, headers, _, _ = api.param_serialize(
        "GET",
        endpointslice_path(api),
        path_params={"namespace": namespace},
        query_params=[("labelSelector", f"kubernetes.io/service-name={service}")],
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers)
    try:
        data: bytes = response.response.data  # the urllib3 response's body (RESTResponse.read() is untyped)
    finally:
        response.response.release_conn()
    assert response.status == 200, data
    items: list[dict[str, Any]] = json.loads(data)["items"]
    return items


def pod_status(pod: client.V1Pod) -> client.V1PodStatus:
    return pod.status or client.V1PodStatus()


def exec_in_pod(api: client.ApiClient, namespace: str, pod: str, command: list[str]) -> str:
    """``command``'s stdout in the pod's first container (the websocket closed again before returning)."""
    session = stream(
        client.CoreV1Api(api).connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    try:
        session.run_forever(timeout=30)
        stdout: str = session.read_stdout()
        assert session.returncode == 0, session.read_stderr()
    finally:
        session.close()
    return stdout


def service_account_token(core: client.CoreV1Api, namespace: str, account: str, audiences: list[str] | None) -> str:
    """A TokenRequest token of ``namespace``/``account`` for ``audiences`` (none: the API server's), 1 h."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=audiences or [], expiration_seconds=3600)
    )
    answer = core.create_namespaced_service_account_token(account, namespace, request)
    assert answer.status is not None and answer.status.token
    return answer.status.token


def service_account_kubeconfig(kube_api: client.ApiClient, token: str, path: Path) -> Path:
    """A kubeconfig that authenticates with a ServiceAccount's ``token`` to ``kube_api``'s API server."""
    configuration = kube_api.configuration
    cluster = {"server": configuration.host, "certificate-authority": configuration.ssl_ca_cert}
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "citadel", "user": {"token": token}}],
        "contexts": [{"name": "citadel", "context": {"cluster": "local", "user": "citadel"}}],
        "current-context": "citadel",
    }
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path
