"""Citadel on a real Kubernetes API server: identity from service-account tokens (TokenReview) and the
``istio-ca-root-cert`` ConfigMap in every namespace.

One real ``citadel --kubeconfig`` process per module runs as its own ServiceAccount, bound to a ClusterRole with
exactly the rules the README and ``token_review.py``/``root_cert_publisher.py`` list (so a missing rule fails
here), and publishes only to this module's namespaces (``--namespace-selector``: the cluster is shared). Workload
tokens come from the TokenRequest API (projected, audience ``istio-ca``); certificates are asked for over Citadel's
CSR API (``CreateCertificate``, gRPC over TLS).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from citadel.ca import load_certs_pem, verify_workload_certificate
from citadel.ca_dir import load_or_create_token_key
from citadel.tokens import issue_token
from citadel.v1 import ca_pb2
from e2e.k8s.kube_support import eventually, service_account_kubeconfig, service_account_token
from e2e.k8s.local_cluster import LocalCluster
from meshplane.identity import CITADEL_SERVER_NAME
from tests.citadel_builders import make_csr
from tests.citadel_sds_client import SdsClient, decode_workload

CREATE_CERTIFICATE = "/meshplane.citadel.v1.CertificateService/CreateCertificate"
SELECTOR_LABEL = "meshplane-test-citadel"
CITADEL_RULES = [  # what Citadel needs, no more (the lead's manifests/ must grant these)
    client.V1PolicyRule(api_groups=["authentication.k8s.io"], resources=["tokenreviews"], verbs=["create"]),
    client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get", "list", "watch"]),
    client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch", "create", "update"]),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningCitadel:
    """The ``citadel`` process under test, its CA directory, and the namespace its workloads live in."""

    ca_dir: Path
    address: str
    monitor: str
    namespace: str
    selector: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def bundle(self) -> bytes:
        return (self.ca_dir / "trust-bundle.pem").read_bytes()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"http://{self.monitor}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            match = re.match(rf"^{name}\{{(?P<labels>[^}}]*)\}} (?P<value>\S+)$", line)
            if match and match["labels"] == wanted:
                return float(match["value"])
        return 0.0

    def create_certificate(self, token: str, spiffe_id: str) -> list[x509.Certificate]:
        """A certificate for ``spiffe_id`` through the CSR API, authenticated by ``token``; RpcError if refused."""
        credentials = grpc.ssl_channel_credentials(root_certificates=self.bundle())
        options = (("grpc.ssl_target_name_override", CITADEL_SERVER_NAME),)
        with grpc.secure_channel(self.address, credentials, options=options) as channel:
            call = channel.unary_unary(
                CREATE_CERTIFICATE,
                request_serializer=ca_pb2.CreateCertificateRequest.SerializeToString,
                response_deserializer=ca_pb2.CreateCertificateResponse.FromString,
            )
            csr = make_csr(ec.generate_private_key(ec.SECP256R1()), uris=(spiffe_id,))
            answer = call(
                ca_pb2.CreateCertificateRequest(csr_pem=csr.decode()),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=15,
            )
        return [cert for pem in answer.cert_chain for cert in load_certs_pem(pem.encode())]


def _namespace(core: client.CoreV1Api, name: str, selector: str) -> None:
    key, _, value = selector.partition("=")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={key: value})))


def _service_account(core: client.CoreV1Api, namespace: str, name: str) -> None:
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))


def _wait_ready(citadel: RunningCitadel) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if citadel.process.poll() is not None:
            raise AssertionError(f"citadel exited {citadel.process.returncode}:\n{citadel.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{citadel.monitor}/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"citadel not ready after 30s:\n{citadel.log()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=5)


@pytest.fixture(scope="module")
def module_kube_api(local_kubernetes: LocalCluster) -> Iterator[client.ApiClient]:
    kubeconfig = str(local_kubernetes.kubeconfig)
    api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    with api:
        yield api


@pytest.fixture(scope="module")
def citadel(module_kube_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCitadel]:
    run = uuid.uuid4().hex[:6]
    namespace, selector, role = f"ident-{run}", f"{SELECTOR_LABEL}={run}", f"ident-{run}-citadel"
    core = client.CoreV1Api(module_kube_api)
    rbac = client.RbacAuthorizationV1Api(module_kube_api)
    workdir = tmp_path_factory.mktemp("citadel-kube")
    _namespace(core, namespace, selector)
    process: subprocess.Popen[bytes] | None = None
    try:
        _service_account(core, namespace, "citadel")
        rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=role), rules=CITADEL_RULES))
        rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=role),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="citadel", namespace=namespace)],
            )
        )
        kubeconfig = service_account_kubeconfig(
            module_kube_api, service_account_token(core, namespace, "citadel", None), workdir / "kc"
        )
        address, monitor = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
        log_path = workdir / "citadel.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "citadel", "--ca-dir", str(workdir / "ca"), "--sds-address", address),
                    *("--monitor-address", monitor, "--kubeconfig", str(kubeconfig), "--namespace-selector", selector),
                    *("--root-rotation-grace", "2s", "--root-poll-interval", "200ms", "--log-json"),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        running = RunningCitadel(workdir / "ca", address, monitor, namespace, selector, process, log_path)
        _wait_ready(running)
        yield running
        assert _stop(process) == 0, running.log()[-3000:]
    finally:
        if process is not None:
            _stop(process)
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(role)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        core.delete_namespace(namespace)


@pytest.fixture
def core(module_kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(module_kube_api)


def _account(citadel: RunningCitadel, core: client.CoreV1Api) -> str:
    name = f"app-{uuid.uuid4().hex[:6]}"
    _service_account(core, citadel.namespace, name)
    return name


def _spiffe(citadel: RunningCitadel, account: str) -> str:
    return f"spiffe://cluster.local/ns/{citadel.namespace}/sa/{account}"


def _refusal(citadel: RunningCitadel, token: str, spiffe_id: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        citadel.create_certificate(token, spiffe_id)
    return refused.value


def test_a_projected_token_gets_the_spiffe_id_of_its_service_account(
    citadel: RunningCitadel, core: client.CoreV1Api
) -> None:
    account = _account(citadel, core)
    token = service_account_token(core, citadel.namespace, account, ["istio-ca"])
    chain = citadel.create_certificate(token, _spiffe(citadel, account))
    roots = load_certs_pem(citadel.bundle())
    assert verify_workload_certificate(chain[0], chain[1:-1], roots) == _spiffe(citadel, account)
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [_spiffe(citadel, account)]
    assert token not in citadel.log(), "a token was logged"


def test_an_sds_stream_with_a_projected_token_gets_its_certificate_and_the_bundle(
    citadel: RunningCitadel, core: client.CoreV1Api
) -> None:
    account = _account(citadel, core)
    token = service_account_token(core, citadel.namespace, account, ["istio-ca"])

    async def stream() -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
        credentials = grpc.ssl_channel_credentials(root_certificates=citadel.bundle())
        options = (("grpc.ssl_target_name_override", CITADEL_SERVER_NAME),)
        async with grpc.aio.secure_channel(citadel.address, credentials, options=options) as channel:
            sds = SdsClient(channel, token=token)
            sds.subscribe("default", "ROOTCA")
            secrets = decode_workload(await sds.recv())
            await sds.close()
        return secrets.leaf, secrets.roots

    leaf, roots = asyncio.run(stream())
    assert verify_workload_certificate(leaf, [], roots) == _spiffe(citadel, account)
    assert roots == tuple(load_certs_pem(citadel.bundle()))


def test_a_projected_token_cannot_ask_for_another_service_account(
    citadel: RunningCitadel, core: client.CoreV1Api
) -> None:
    account = _account(citadel, core)
    token = service_account_token(core, citadel.namespace, account, ["istio-ca"])
    refused = _refusal(citadel, token, _spiffe(citadel, "someone-else"))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, refused.details()


def _wrong_audience(citadel: RunningCitadel, core: client.CoreV1Api, account: str) -> str:
    return service_account_token(core, citadel.namespace, account, ["vault"])


def _legacy_secret_token(citadel: RunningCitadel, core: client.CoreV1Api, account: str) -> str:
    def secret() -> str | None:
        found = core.read_namespaced_service_account(account, citadel.namespace).secrets
        return found[0].name if found else None

    data = core.read_namespaced_secret(eventually("the token Secret", secret), citadel.namespace).data or {}
    return base64.b64decode(data["token"]).decode()


def _deleted_account(citadel: RunningCitadel, core: client.CoreV1Api, account: str) -> str:
    token = service_account_token(core, citadel.namespace, account, ["istio-ca"])
    core.delete_namespaced_service_account(account, citadel.namespace)
    authentication = client.AuthenticationV1Api(core.api_client)

    def refused_by_the_api_server() -> bool | None:
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=["istio-ca"]))
        status = authentication.create_token_review(review).status
        return True if status is None or not status.authenticated else None

    eventually("the deleted account's token refused", refused_by_the_api_server, timeout=20)
    return token


def _garbage(citadel: RunningCitadel, core: client.CoreV1Api, account: str) -> str:
    return "not-a-token"


def _forged(citadel: RunningCitadel, core: client.CoreV1Api, account: str) -> str:
    """A JWT that claims everything a good token claims, signed by nobody the API server knows."""

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "aud": ["istio-ca"],
        "exp": int(time.time()) + 600,
        "sub": f"system:serviceaccount:{citadel.namespace}:{account}",
    }
    return f"{part({'alg': 'RS256', 'kid': 'x'})}.{part(claims)}.{part({'sig': 'none'})}"


MakeToken = Callable[[RunningCitadel, client.CoreV1Api, str], str]
REFUSED_TOKENS: list[tuple[MakeToken, str]] = [
    (_wrong_audience, "do not include 'istio-ca'"),
    (_legacy_secret_token, "legacy service-account token"),
    (_deleted_account, "the Kubernetes API server refused the token"),
    (_garbage, "malformed token"),
    (_forged, "the Kubernetes API server refused the token"),
]


@pytest.mark.parametrize(
    ("make_token", "reason"),
    REFUSED_TOKENS,
    ids=["wrong-audience", "legacy-secret-token", "deleted-service-account", "garbage", "forged-jwt"],
)
def test_tokens_that_prove_nothing_are_refused_with_the_reason(
    citadel: RunningCitadel, core: client.CoreV1Api, make_token: MakeToken, reason: str
) -> None:
    account = _account(citadel, core)
    token = make_token(citadel, core, account)
    refused = _refusal(citadel, token, _spiffe(citadel, account))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, refused.details()
    assert reason in (refused.details() or "")
    assert reason in citadel.log()
    assert token not in citadel.log(), "a token was logged"


def test_a_meshplane_token_still_works_beside_kubernetes(citadel: RunningCitadel) -> None:
    key = load_or_create_token_key(citadel.ca_dir)
    token = issue_token(
        key, trust_domain="cluster.local", namespace="vm", service_account="legacy", ttl=timedelta(hours=1)
    )
    chain = citadel.create_certificate(token, "spiffe://cluster.local/ns/vm/sa/legacy")
    assert verify_workload_certificate(chain[0], chain[1:-1], load_certs_pem(citadel.bundle())) == (
        "spiffe://cluster.local/ns/vm/sa/legacy"
    )


def test_a_reconnect_storm_with_one_token_is_reviewed_once(citadel: RunningCitadel, core: client.CoreV1Api) -> None:
    account = _account(citadel, core)
    token = service_account_token(core, citadel.namespace, account, ["istio-ca"])
    before = citadel.metric("citadel_token_reviews_total", result="authenticated")
    with ThreadPoolExecutor(max_workers=10) as pool:
        chains = list(pool.map(lambda _: citadel.create_certificate(token, _spiffe(citadel, account)), range(20)))
    assert len(chains) == 20
    assert citadel.metric("citadel_token_reviews_total", result="authenticated") - before == 1


def _configmap_bundle(core: client.CoreV1Api, namespace: str) -> str | None:
    try:
        configmap = core.read_namespaced_config_map("istio-ca-root-cert", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return (configmap.data or {}).get("root-cert.pem")


def _holds(core: client.CoreV1Api, namespace: str, bundle: bytes) -> bool | None:
    return True if _configmap_bundle(core, namespace) == bundle.decode() else None


def test_the_root_cert_configmap_appears_in_a_new_namespace_and_comes_back(
    citadel: RunningCitadel, core: client.CoreV1Api
) -> None:
    assert eventually("the ConfigMap in Citadel's namespace", lambda: _holds(core, citadel.namespace, citadel.bundle()))
    fresh = f"{citadel.namespace}-new"
    _namespace(core, fresh, citadel.selector)
    try:
        eventually("the ConfigMap in a new namespace", lambda: _holds(core, fresh, citadel.bundle()), timeout=20)
        configmap = core.read_namespaced_config_map("istio-ca-root-cert", fresh)
        assert configmap.metadata is not None and configmap.metadata.labels == {"istio.io/config": "true"}
        core.delete_namespaced_config_map("istio-ca-root-cert", fresh)
        eventually("the deleted ConfigMap recreated", lambda: _holds(core, fresh, citadel.bundle()), timeout=20)
        configmap = core.read_namespaced_config_map("istio-ca-root-cert", fresh)
        configmap.data = {"root-cert.pem": "tampered"}
        core.replace_namespaced_config_map("istio-ca-root-cert", fresh, configmap)
        eventually("the tampered ConfigMap restored", lambda: _holds(core, fresh, citadel.bundle()), timeout=20)
    finally:
        core.delete_namespace(fresh)


def test_a_namespace_outside_the_selector_gets_no_configmap(citadel: RunningCitadel, core: client.CoreV1Api) -> None:
    other = f"{citadel.namespace}-other"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        fresh = f"{citadel.namespace}-late"
        _namespace(core, fresh, citadel.selector)  # written after ``other`` was seen
        try:
            eventually("the ConfigMap in a selected namespace", lambda: _holds(core, fresh, citadel.bundle()))
        finally:
            core.delete_namespace(fresh)
        assert _configmap_bundle(core, other) is None
    finally:
        core.delete_namespace(other)


def test_a_root_rotation_updates_every_configmap(citadel: RunningCitadel, core: client.CoreV1Api) -> None:
    """Last in this module: it changes the module's Citadel's root (its certificates are then of the new one)."""
    old = citadel.bundle()
    eventually("the ConfigMap before the rotation", lambda: _holds(core, citadel.namespace, old))
    rotated = subprocess.run(
        [sys.executable, "-m", "citadel", "rotate-root", "--ca-dir", str(citadel.ca_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    both = (citadel.ca_dir / "root-cert.pem").read_bytes() + old  # the new root, then the previous one
    assert len(load_certs_pem(both)) == 2
    # while the rotation trusts both (its first two phases, each at least --root-rotation-grace 2s)
    eventually("both roots in the ConfigMap", lambda: _holds(core, citadel.namespace, both), timeout=20)

    def retired() -> bytes | None:
        bundle = citadel.bundle()
        return bundle if len(load_certs_pem(bundle)) == 1 else None

    new = eventually("the previous root retired", retired, timeout=30)
    assert new != old
    eventually("only the new root in the ConfigMap", lambda: _holds(core, citadel.namespace, new), timeout=20)
