"""Which pods the injector injects: Istio's rules (``injector.policy``), one row per rule."""

from __future__ import annotations

import pytest

from injector.policy import injection_decision
from tests.injector_builders import ENABLED, pod

INJECT = "sidecar.istio.io/inject"
CASES = [
    # (id, pod, namespace, namespace labels, injected)
    ("enabled-namespace", pod(), "bookinfo", ENABLED, True),
    ("unlabelled-namespace", pod(), "bookinfo", {}, False),
    ("pod-label-true-unlabelled-namespace", pod(labels={"app": "r", INJECT: "true"}), "bookinfo", {}, True),
    ("pod-annotation-true-unlabelled-namespace", pod(annotations={INJECT: "true"}), "bookinfo", {}, True),
    ("pod-label-yes-any-case", pod(labels={INJECT: "Yes"}), "bookinfo", {}, True),
    ("pod-label-false-enabled-namespace", pod(labels={INJECT: "false"}), "bookinfo", ENABLED, False),
    ("pod-annotation-false-enabled-namespace", pod(annotations={INJECT: "false"}), "bookinfo", ENABLED, False),
    ("label-wins-over-annotation", pod(labels={INJECT: "false"}, annotations={INJECT: "true"}), "bookinfo", {}, False),
    ("namespace-disabled-pod-asks", pod(labels={INJECT: "true"}), "bookinfo", {"istio-injection": "disabled"}, False),
    ("host-network", pod(hostNetwork=True), "bookinfo", ENABLED, False),
    ("host-network-even-if-asked", pod(labels={INJECT: "true"}, hostNetwork=True), "bookinfo", {}, False),
    ("kube-system", pod(labels={INJECT: "true"}), "kube-system", ENABLED, False),
    ("kube-public", pod(), "kube-public", ENABLED, False),
    ("already-injected-status", pod(annotations={"sidecar.istio.io/status": "{}"}), "bookinfo", ENABLED, False),
    (
        "already-injected-container",
        pod(containers=[{"name": "app"}, {"name": "istio-proxy"}]),
        "bookinfo",
        ENABLED,
        False,
    ),
    ("revision-label-on-pod", pod(labels={"istio.io/rev": "canary"}), "bookinfo", ENABLED, False),
    ("revision-label-on-namespace", pod(labels={INJECT: "true"}), "bookinfo", {"istio.io/rev": "canary"}, False),
]


@pytest.mark.parametrize(("obj", "namespace", "labels", "injected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_injection_decision(obj: dict[str, object], namespace: str, labels: dict[str, str], injected: bool) -> None:
    decision = injection_decision(obj, namespace, labels)
    assert decision.inject is injected, decision.reason
    assert decision.reason
