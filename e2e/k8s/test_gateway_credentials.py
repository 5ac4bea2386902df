"""Gateway credentials from Kubernetes Secrets, through a real API server and a real Envoy: ``kubectl create secret
tls mycred`` in the gateway's namespace is served by Citadel's SDS as ``kubernetes://mycred``, and updating the
Secret rotates the certificate Envoy serves without restarting it.

Citadel runs as its own ServiceAccount bound to a ClusterRole with only the rule manifests/ gives it for this
(``secrets`` get/list/watch, as istiod's), so a missing rule fails here; ``--no-root-cert-configmaps`` keeps it from
writing into the shared cluster's namespaces. The gateway's token is a meshplane token of the test's namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.gateway_tls import credential_gateway, wait_served
from e2e.k8s.kube_support import service_account_kubeconfig, service_account_token
from tests.credential_builders import TestCA, secret_data_b64

NAMESPACE_PREFIX = "gwcred"
HOST = "httpbin.example.com"
SECRET_RULES = [client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["get", "list", "watch"])]


@pytest.fixture
def citadel_kubeconfig(kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig of a ServiceAccount that may only read Secrets (cluster scope)."""
    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    role = f"{kube_namespace}-citadel"
    core.create_namespaced_service_account(
        kube_namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="citadel"))
    )
    rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=role), rules=SECRET_RULES))
    try:
        rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=role),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="citadel", namespace=kube_namespace)],
            )
        )
        token = service_account_token(core, kube_namespace, "citadel", None)
        yield service_account_kubeconfig(kube_api, token, tmp_path / "citadel.kubeconfig")
    finally:
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(role)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _tls_secret(name: str, files: dict[str, bytes]) -> client.V1Secret:
    """What ``kubectl create secret tls <name> --cert --key`` makes."""
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name), type="kubernetes.io/tls", data={**secret_data_b64(files)}
    )


async def test_a_tls_secret_is_served_and_its_update_rotates_the_certificate(
    kube_api: client.ApiClient, kube_namespace: str, citadel_kubeconfig: Path, tmp_path: Path, envoy_binary: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    ca = TestCA()
    first = ca.issue([HOST])
    arguments = ("--kubeconfig", str(citadel_kubeconfig), "--no-root-cert-configmaps")
    async with credential_gateway(
        tmp_path, envoy_binary=envoy_binary, namespace=kube_namespace, citadel_arguments=arguments
    ) as gateway:
        secret = _tls_secret("mycred", first.files(ca=False))
        await asyncio.to_thread(core.create_namespaced_secret, kube_namespace, secret)
        leaf, response = await wait_served(
            gateway.port, server_name=HOST, ca_pem=ca.pem, serial=first.leaf.serial_number
        )
        assert leaf == first.leaf and response.startswith("HTTP/1.1 200")

        rotated = ca.issue([HOST])
        secret.data = {**secret_data_b64(rotated.files(ca=False))}
        await asyncio.to_thread(core.replace_namespaced_secret, "mycred", kube_namespace, secret)
        leaf, _ = await wait_served(gateway.port, server_name=HOST, ca_pem=ca.pem, serial=rotated.leaf.serial_number)
        assert leaf == rotated.leaf
        assert gateway.envoy.running, "rotated without a restart"
        log = gateway.citadel.log_tail(400)
        assert "gateway credentials listed" in log
        assert "forbidden" not in log.lower(), log


async def test_a_secret_of_another_namespace_is_not_served(
    kube_api: client.ApiClient, kube_namespace: str, citadel_kubeconfig: Path, tmp_path: Path, envoy_binary: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    ca = TestCA()
    other = f"{kube_namespace}-other"
    await asyncio.to_thread(core.create_namespace, client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        await asyncio.to_thread(core.create_namespaced_secret, other, _tls_secret("mycred", ca.issue([HOST]).files()))
        arguments = ("--kubeconfig", str(citadel_kubeconfig), "--no-root-cert-configmaps")
        async with credential_gateway(
            tmp_path, envoy_binary=envoy_binary, namespace=kube_namespace, citadel_arguments=arguments
        ) as gateway:
            own = ca.issue([HOST])
            await asyncio.sleep(2.0)  # time to be served, wrongly, the other namespace's secret
            await asyncio.to_thread(core.create_namespaced_secret, kube_namespace, _tls_secret("mycred", own.files()))
            leaf, _ = await wait_served(gateway.port, server_name=HOST, ca_pem=ca.pem, serial=own.leaf.serial_number)
            assert leaf == own.leaf
            assert f"secret {kube_namespace}/mycred not found (in Kubernetes Secrets)" in gateway.citadel.log_tail(400)
    finally:
        await asyncio.to_thread(core.delete_namespace, other)
