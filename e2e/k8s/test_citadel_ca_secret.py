"""Citadel's self-signed CA survives a restart on a real Kubernetes API server: it is kept in a Secret, as istiod keeps
``istio-ca-secret`` (``citadel/ca_secret_store.py``).

Each scenario runs real ``citadel --kubeconfig ... --ca-secret <namespace>/istio-ca-secret`` processes, each with a
fresh CA directory (as a pod's emptyDir), as a ServiceAccount bound to exactly the Role ``manifests/citadel.yaml``
gives Citadel for its Secret (so a rule missing there fails here), in a namespace of its own (``casec-...``, deleted
after). Certificates are asked for over Citadel's CSR API with a meshplane token minted from the first CA directory.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from citadel.ca import cert_pem, load_certs_pem
from citadel.ca_secret import SecretRef
from citadel.ca_secret_store import CASecretStore
from citadel.errors import KubeApiError
from e2e.k8s.install_manifests import by_key, kustomization_objects
from e2e.k8s.kube_support import eventually, service_account_kubeconfig, service_account_token
from e2e.k8s.test_citadel_kube import RunningCitadel, _free_port, _service_account, _stop, _wait_ready
from meshplane.kube_api import KubeAccess, new_api_client
from tests.citadel_builders import CAChain, write_cacerts

SECRET = "istio-ca-secret"
ROLE = "istio-citadel-ca-secret"  # the manifests' Role for the Secret, applied here in the test's namespace


@dataclass
class CitadelSecretRun:
    """The test's namespace, a kubeconfig of Citadel's ServiceAccount, and the Citadels started (stopped after)."""

    namespace: str
    kubeconfig: Path
    workdir: Path
    core: client.CoreV1Api
    started: list[RunningCitadel]

    def start(self, name: str, *, ca_dir: Path | None = None, wait: bool = True) -> RunningCitadel:
        ca_dir = ca_dir or self.workdir / name / "ca"
        address, monitor = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "citadel", "--ca-dir", str(ca_dir), "--sds-address", address),
                    *("--monitor-address", monitor, "--kubeconfig", str(self.kubeconfig), "--no-root-cert-configmaps"),
                    *("--ca-secret", f"{self.namespace}/{SECRET}", "--root-rotation-grace", "2s"),
                    *("--root-poll-interval", "200ms", "--log-json"),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        citadel = RunningCitadel(ca_dir, address, monitor, self.namespace, "", process, log_path)
        self.started.append(citadel)
        if wait:
            _wait_ready(citadel)
        return citadel

    def stop(self, citadel: RunningCitadel) -> None:
        assert _stop(citadel.process) == 0, citadel.log()[-3000:]

    def secret(self) -> client.V1Secret | None:
        try:
            secret: client.V1Secret = self.core.read_namespaced_secret(SECRET, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return secret

    def secret_certs(self, key: str) -> list[x509.Certificate]:
        secret = self.secret()
        data = (secret.data if secret is not None else None) or {}
        return load_certs_pem(base64.b64decode(data[key])) if key in data else []


def _manifest_role() -> dict[str, Any]:
    roles = [obj for (kind, _, name), obj in by_key(kustomization_objects()).items() if (kind, name) == ("Role", ROLE)]
    assert len(roles) == 1, f"manifests/citadel.yaml has no Role {ROLE}"
    return roles[0]


@pytest.fixture
def run(kube_api: client.ApiClient, tmp_path: Path) -> Iterator[CitadelSecretRun]:
    namespace = f"casec-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    runs = CitadelSecretRun(namespace, tmp_path / "kubeconfig", tmp_path, core, [])
    try:
        _service_account(core, namespace, "citadel")
        rules = [
            client.V1PolicyRule(
                api_groups=rule["apiGroups"],
                resources=rule["resources"],
                verbs=rule["verbs"],
                resource_names=rule.get("resourceNames"),
            )
            for rule in _manifest_role()["rules"]
        ]
        rbac.create_namespaced_role(namespace, client.V1Role(metadata=client.V1ObjectMeta(name=ROLE), rules=rules))
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=ROLE),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=ROLE),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="citadel", namespace=namespace)],
            ),
        )
        service_account_kubeconfig(kube_api, service_account_token(core, namespace, "citadel", None), runs.kubeconfig)
        yield runs
        for citadel in runs.started:
            assert _stop(citadel.process) == 0, citadel.log()[-3000:]
            _assert_no_key_logged(runs, citadel)
    finally:
        for citadel in runs.started:
            _stop(citadel.process)
        core.delete_namespace(namespace)


def _assert_no_key_logged(run: CitadelSecretRun, citadel: RunningCitadel) -> None:
    secret = run.secret()
    for key in ("ca-key.pem", "token-signing-key.pem", "previous-root-key.pem"):
        value = str(((secret.data if secret is not None else None) or {}).get(key) or "")
        if value:
            body = base64.b64decode(value).decode().splitlines()[1]
            assert body not in citadel.log(), f"{key} was logged"
            assert value not in citadel.log(), f"{key} (base64) was logged"


def _mint_token(ca_dir: Path, namespace: str) -> str:
    answer = subprocess.run(
        [sys.executable, "-m", "citadel", "token", "--ca-dir", str(ca_dir), "--namespace", namespace,
         "--service-account", "reviews", "--ttl", "1h"],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return answer.stdout.strip()


def _issuer_of_a_certificate(citadel: RunningCitadel, token: str) -> x509.Name:
    chain = citadel.create_certificate(token, f"spiffe://cluster.local/ns/{citadel.namespace}/sa/reviews")
    return chain[0].issuer


def test_a_restarted_citadel_is_the_same_ca_and_accepts_the_tokens_of_before(run: CitadelSecretRun) -> None:
    first = run.start("first")
    secret = run.secret()
    assert secret is not None and secret.type == "istio.io/ca-root"
    assert run.secret_certs("ca-cert.pem") == load_certs_pem(first.bundle())
    token = _mint_token(first.ca_dir, run.namespace)
    issuer = _issuer_of_a_certificate(first, token)
    run.stop(first)

    second = run.start("second")  # a new CA directory, as a new pod's emptyDir
    assert second.bundle() == first.bundle()
    assert _issuer_of_a_certificate(second, token) == issuer  # and the token key came back too
    assert (second.ca_dir / "root-key.pem").read_bytes() == (first.ca_dir / "root-key.pem").read_bytes()
    assert '"ca_loaded_from_secret"' in second.log() and '"ca_secret_created"' in first.log()


def test_citadels_started_together_or_while_one_runs_are_one_ca(run: CitadelSecretRun) -> None:
    with ThreadPoolExecutor(2) as pool:
        racing = list(pool.map(lambda name: run.start(name, wait=False), ["left", "right"]))
        list(pool.map(_wait_ready, racing))
    late = run.start("late")
    bundles = {citadel.bundle() for citadel in (*racing, late)}
    assert len(bundles) == 1
    assert run.secret_certs("ca-cert.pem") == load_certs_pem(bundles.pop())
    token = _mint_token(racing[0].ca_dir, run.namespace)
    assert len({_issuer_of_a_certificate(citadel, token) for citadel in (*racing, late)}) == 1


def test_a_plugged_in_ca_wins_over_the_secret_which_stays_untouched(run: CitadelSecretRun) -> None:
    run.stop(run.start("self-signed"))  # leaves a Secret behind
    before = run.secret()
    assert before is not None and before.metadata is not None
    chain = CAChain(1)
    plugged = run.start("plugged", ca_dir=write_cacerts(run.workdir / "cacerts", chain))
    assert load_certs_pem(plugged.bundle())[0] == chain.root
    assert _issuer_of_a_certificate(plugged, _mint_token(plugged.ca_dir, run.namespace)) == chain.signer.subject
    after = run.secret()
    assert after is not None and after.metadata is not None
    assert after.metadata.resource_version == before.metadata.resource_version
    assert '"ca_secret_not_used"' in plugged.log()


def _until(condition: Callable[[], bool], what: str) -> None:
    eventually(what, lambda: True if condition() else None, timeout=30)


def test_the_secret_follows_rotate_root_with_both_roots_during_the_rotation(run: CitadelSecretRun) -> None:
    citadel = run.start("rotating")
    old_root = run.secret_certs("ca-cert.pem")[0]
    rotate = subprocess.run(
        [sys.executable, "-m", "citadel", "rotate-root", "--ca-dir", str(citadel.ca_dir)],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "new root" in rotate.stdout
    new_root = load_certs_pem((citadel.ca_dir / "root-cert.pem").read_bytes())[0]
    _until(lambda: run.secret_certs("root-cert.pem") == [new_root, old_root], "the Secret holds both roots")
    assert run.secret_certs("ca-cert.pem") == [new_root]
    assert run.secret_certs("previous-root-cert.pem") == [old_root]
    started = time.monotonic()
    _until(lambda: run.secret_certs("root-cert.pem") == [new_root], "the Secret holds the new root only")
    assert time.monotonic() - started > 2  # not before the rotation's phases (2 s grace each) were done
    assert run.secret_certs("previous-root-cert.pem") == []
    restarted = run.start("after-rotation")
    assert load_certs_pem(restarted.bundle()) == [new_root]
    assert cert_pem(new_root) == restarted.bundle()


def test_the_store_answers_conflicts_as_values_and_a_refusal_with_the_rbac_it_needs(run: CitadelSecretRun) -> None:
    """The calls Citadel makes, as its ServiceAccount: a create of a taken name and an update of a stale version are
    conflicts (another replica won); any other Secret is out of the Role's reach."""
    api = new_api_client(KubeAccess(kubeconfig=run.kubeconfig))
    with api:
        store = CASecretStore(api, SecretRef(run.namespace, SECRET))
        assert store.read() is None
        assert store.create({"ca-cert.pem": "YQ=="})
        assert not store.create({"ca-cert.pem": "Yg=="})
        stored = store.read()
        assert stored is not None and stored.data == {"ca-cert.pem": "YQ=="}
        assert store.replace({"ca-cert.pem": "Yw=="}, stored.resource_version)
        assert not store.replace({"ca-cert.pem": "ZA=="}, stored.resource_version)
        other = CASecretStore(api, SecretRef(run.namespace, "cacerts"))
        with pytest.raises(KubeApiError, match=r"cannot read Secret casec-.*/cacerts: 403: .*forbidden.*get, update"):
            other.read()
    run.core.delete_namespaced_secret(SECRET, run.namespace)  # not a CA: nothing for the teardown to check
