"""The injection's JSON Patch field by field (``injector.patch``), applied to the pod as the API server would, and
the AdmissionReview answers in the version asked (``injector.review``, ``injector.server.answer_review``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from injector.annotations import InjectionRefused
from injector.patch import canonical_labels, injection_patch
from injector.review import ReviewError, parse_review
from injector.server import answer_review
from injector.settings import AdmissionFacts
from tests.injector_builders import SETTINGS, Obj, apply_patch, facts, pod, review


def injected(obj: Obj, admission: AdmissionFacts | None = None) -> Obj:
    ops, _ = injection_patch(obj, "bookinfo", SETTINGS, admission or facts())
    assert ops is not None
    return apply_patch(obj, ops)


def container(obj: Obj, name: str, field: str = "containers") -> Obj:
    found: Obj = next(c for c in obj["spec"][field] if c["name"] == name)
    return found


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_containers_and_volumes_are_added_after_the_pods_own() -> None:
    result = injected(pod(initContainers=[{"name": "migrate"}], volumes=[{"name": "data", "emptyDir": {}}]))
    assert [c["name"] for c in result["spec"]["containers"]] == ["reviews", "istio-proxy"]
    assert [c["name"] for c in result["spec"]["initContainers"]] == ["migrate", "istio-init"]
    assert [v["name"] for v in result["spec"]["volumes"]] == ["data", "istio-envoy", "istio-token", "istiod-ca-cert"]


def test_init_container() -> None:
    init = container(injected(pod()), "istio-init", "initContainers")
    assert init["image"] == "localhost/meshplane:latest" and init["imagePullPolicy"] == "Never"
    assert init["command"][:3] == ["meshplane", "capture", "install"] and init["command"][-1] == "--redirect-dns"
    assert init["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": False,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "runAsUser": 0,
    }


def test_init_container_carries_the_capture_annotations() -> None:
    obj = pod(annotations={"traffic.sidecar.istio.io/excludeOutboundIPRanges": "169.254.169.254/32"})
    command = container(injected(obj), "istio-init", "initContainers")["command"]
    assert arg(command, "-x") == "169.254.169.254/32"


def test_sidecar_container_identity_from_the_downward_api() -> None:
    sidecar = container(injected(pod()), "istio-proxy")
    args = sidecar["args"]
    assert args[:2] == ["meshplane-agent", "sidecar"]
    expected = {"--workload": "$(POD_NAME)", "--namespace": "$(POD_NAMESPACE)", "--ip": "$(INSTANCE_IP)"}
    expected["--service-account"] = "$(SERVICE_ACCOUNT)"
    assert {flag: arg(args, flag) for flag in expected} == expected
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"]}
    assert env["POD_NAME"] == "metadata.name" and env["INSTANCE_IP"] == "status.podIP"
    assert env["POD_NAMESPACE"] == "metadata.namespace" and env["SERVICE_ACCOUNT"] == "spec.serviceAccountName"
    labels = dict(item.split("=") for item in arg(args, "--labels").split(","))
    assert {key: env[value[2:-1]] for key, value in labels.items()} == {
        "app": "metadata.labels['app']",
        "security.istio.io/tlsMode": "metadata.labels['security.istio.io/tlsMode']",
        "service.istio.io/canonical-name": "metadata.labels['service.istio.io/canonical-name']",
        "service.istio.io/canonical-revision": "metadata.labels['service.istio.io/canonical-revision']",
        "version": "metadata.labels['version']",
    }


def test_sidecar_container_control_plane_token_and_root() -> None:
    sidecar = container(injected(pod()), "istio-proxy")
    args = sidecar["args"]
    assert (arg(args, "--pilot"), arg(args, "--citadel"), arg(args, "--mixer")) == (
        "10.96.0.20:15010",
        "10.96.0.21:15012",
        "10.96.0.22:9091",
    )
    assert arg(args, "--token-file") == "/var/run/secrets/tokens/istio-token"
    assert arg(args, "--root-cert") == "/var/run/secrets/istio/root-cert.pem"
    mounts = {m["name"]: (m["mountPath"], m.get("readOnly", False)) for m in sidecar["volumeMounts"]}
    assert mounts == {
        "istio-envoy": ("/var/lib/istio", False),
        "istio-token": ("/var/run/secrets/tokens", True),
        "istiod-ca-cert": ("/var/run/secrets/istio", True),
    }
    context = sidecar["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (1337, 1337, True)
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert sidecar["readinessProbe"] == {  # Istio's: the agent's /healthz/ready (Envoy's /ready), never captured
        "httpGet": {"path": "/healthz/ready", "port": 15020, "scheme": "HTTP"},
        "initialDelaySeconds": 1,
        "periodSeconds": 2,
        "timeoutSeconds": 3,
        "failureThreshold": 30,
    }
    assert sidecar["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "2000m", "memory": "1024Mi"},
    }


def test_volumes() -> None:
    volumes = {v["name"]: v for v in injected(pod())["spec"]["volumes"]}
    token = volumes["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}
    assert volumes["istiod-ca-cert"]["configMap"] == {"name": "istio-ca-root-cert"}
    assert volumes["istio-envoy"]["emptyDir"] == {"medium": "Memory"}


def test_mixer_left_out_when_not_configured() -> None:
    admission = facts(control_plane=facts().control_plane.__class__(pilot="p:1", citadel="c:2"))
    assert "--mixer" not in container(injected(pod(), admission), "istio-proxy")["args"]


def test_labels_and_annotations() -> None:
    meta = injected(pod())["metadata"]
    assert meta["labels"] == {
        "app": "reviews",
        "version": "v1",
        "security.istio.io/tlsMode": "istio",
        "service.istio.io/canonical-name": "reviews",
        "service.istio.io/canonical-revision": "v1",
    }
    status = json.loads(meta["annotations"]["sidecar.istio.io/status"])
    assert status == {
        "initContainers": ["istio-init"],
        "containers": ["istio-proxy"],
        "volumes": ["istio-envoy", "istio-token", "istiod-ca-cert"],
        "imagePullSecrets": None,
        "revision": "default",
    }
    assert meta["annotations"]["kubectl.kubernetes.io/default-container"] == "reviews"


def test_labels_the_pod_set_are_kept() -> None:
    labels = {"app": "reviews", "security.istio.io/tlsMode": "disabled", "service.istio.io/canonical-name": "rv"}
    assert injected(pod(labels=labels))["metadata"]["labels"] == {
        **labels,
        "service.istio.io/canonical-revision": "latest",
    }


def test_existing_annotations_are_extended_with_escaped_keys() -> None:
    ops, _ = injection_patch(pod(annotations={"a": "b"}), "bookinfo", SETTINGS, facts())
    assert ops is not None
    paths = [op["path"] for op in ops if op["path"].startswith("/metadata/annotations")]
    assert paths == [
        "/metadata/annotations/sidecar.istio.io~1status",
        "/metadata/annotations/kubectl.kubernetes.io~1default-container",
    ]


CANONICAL = [
    ("app-and-version", {"labels": {"app": "ratings", "version": "v2"}}, ("ratings", "v2")),
    ("kubernetes-labels", {"labels": {"app.kubernetes.io/name": "r", "app.kubernetes.io/version": "3"}}, ("r", "3")),
    ("deployment-owner", {"name": "web-7d9f-abcde", "labels": {"pod-template-hash": "7d9f"},
                          "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "controller": True}]},
     ("web", "latest")),
    ("other-owner", {"ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]}, ("db", "latest")),
    ("generate-name", {"generateName": "job-"}, ("job", "latest")),
]  # fmt: skip


@pytest.mark.parametrize(("meta", "expected"), [c[1:] for c in CANONICAL], ids=[c[0] for c in CANONICAL])
def test_canonical_labels(meta: Obj, expected: tuple[str, str]) -> None:
    labels = canonical_labels(meta)
    assert (labels["service.istio.io/canonical-name"], labels["service.istio.io/canonical-revision"]) == expected


def test_dns_upstreams_are_the_pods_own_resolvers() -> None:
    args = container(injected(pod()), "istio-proxy")["args"]
    assert arg(args, "--dns-upstreams-from") == "/etc/resolv.conf" and "--dns-upstream" not in args


def test_proxy_config_concurrency_and_metadata_go_to_the_sidecar_for_pilot() -> None:
    annotation = "concurrency: 2\nproxyMetadata: {GREETING: 'costs $(HOME)'}"
    args = container(injected(pod(annotations={"proxy.istio.io/config": annotation})), "istio-proxy")["args"]
    # "$$": Kubernetes leaves a literal "$(HOME)" in the argument instead of expanding a variable
    assert arg(args, "--proxy-config") == '{"concurrency":2,"proxyMetadata":{"GREETING":"costs $$(HOME)"}}'
    assert "--proxy-config" not in container(injected(pod()), "istio-proxy")["args"]


def test_hold_application_puts_the_sidecar_first_with_a_post_start_wait() -> None:
    obj = pod(annotations={"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"})
    result = injected(obj)
    assert [c["name"] for c in result["spec"]["containers"]] == ["istio-proxy", "reviews"]
    command = result["spec"]["containers"][0]["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"] and "agent.probe http://127.0.0.1:15000/ready" in command[2]
    assert "lifecycle" not in container(injected(pod()), "istio-proxy")


def test_generate_name_pod_is_injected() -> None:
    assert [c["name"] for c in injected(pod(name=None))["spec"]["containers"]] == ["reviews", "istio-proxy"]


def test_injection_is_idempotent() -> None:
    once = injected(pod())
    assert injection_patch(once, "bookinfo", SETTINGS, facts()) == (None, "already injected")


def test_refusal_only_when_injecting() -> None:
    refused = pod(annotations={"sidecar.istio.io/interceptionMode": "TPROXY"})
    with pytest.raises(InjectionRefused):
        injection_patch(refused, "bookinfo", SETTINGS, facts())
    assert injection_patch(refused, "bookinfo", SETTINGS, facts(namespace_labels={}))[0] is None


class StaticFacts:
    def __init__(self, admission: AdmissionFacts | Exception) -> None:
        self.admission = admission
        self.asked: list[str] = []

    async def facts(self, namespace: str) -> AdmissionFacts:
        self.asked.append(namespace)
        if isinstance(self.admission, Exception):
            raise self.admission
        return self.admission


VERSIONS = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_review_answer_with_the_patch_in_the_version_asked(version: str) -> None:
    answer = await answer_review(review(pod(), version=version), SETTINGS, StaticFacts(facts()))
    assert (answer["apiVersion"], answer["kind"]) == (version, "AdmissionReview")
    response = answer["response"]
    assert (response["uid"], response["allowed"], response["patchType"]) == (
        "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
        True,
        "JSONPatch",
    )
    patched = apply_patch(pod(), json.loads(base64.b64decode(response["patch"])))
    assert patched == injected(pod())


@pytest.mark.parametrize("version", VERSIONS)
async def test_review_refusal_in_the_version_asked(version: str) -> None:
    obj = pod(annotations={"sidecar.istio.io/interceptionMode": "TPROXY"})
    answer = await answer_review(review(obj, version=version), SETTINGS, StaticFacts(facts()))
    assert answer["apiVersion"] == version
    response = answer["response"]
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 403
    assert "TPROXY is not supported by meshplane yet" in response["status"]["message"]


async def test_review_not_injected_is_allowed_without_a_patch() -> None:
    answer = await answer_review(review(pod()), SETTINGS, StaticFacts(facts(namespace_labels={})))
    assert answer["response"] == {"uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816", "allowed": True}


@pytest.mark.parametrize(("operation", "kind"), [("UPDATE", "Pod"), ("CREATE", "Deployment")], ids=["update", "kind"])
async def test_review_other_requests_allowed_without_reading_the_cluster(operation: str, kind: str) -> None:
    source = StaticFacts(facts())
    answer = await answer_review(review(pod(), operation=operation, kind=kind), SETTINGS, source)
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    assert source.asked == []


async def test_review_refused_when_the_namespace_cannot_be_read() -> None:
    answer = await answer_review(review(pod()), SETTINGS, StaticFacts(RuntimeError("connection refused")))
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["message"] == (
        "meshplane sidecar injector: cannot read namespace bookinfo: connection refused"
    )


BAD_REVIEWS: list[tuple[str, Any, str]] = [
    ("not-a-mapping", [], "expected an AdmissionReview"),
    ("other-kind", {"kind": "Pod"}, "expected an AdmissionReview"),
    (
        "other-version",
        {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v2"},
        "apiVersion 'admission.k8s.io/v2'",
    ),
    ("no-uid", {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}, "request.uid: missing"),
]


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in BAD_REVIEWS], ids=[c[0] for c in BAD_REVIEWS])
def test_bad_reviews(body: Any, message: str) -> None:
    with pytest.raises(ReviewError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_review(body)
