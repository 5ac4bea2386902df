"""The probe rewrite on the injected pod (``injector.app_probes`` through ``injector.patch``), field by field: each
app probe the capture would send through the sidecar becomes an HTTP GET of the agent's status port, and the
original, as Istio's JSON, is in the sidecar's ``ISTIO_KUBE_APP_PROBERS``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.app_probers import parse_app_probers
from agent.capture import CaptureOptions
from injector.app_probes import rewrite_app_probes
from injector.patch import injection_patch
from tests.injector_builders import SETTINGS, Obj, apply_patch, facts, pod

PORTS = [{"name": "http", "containerPort": 9080}, {"name": "grpc", "containerPort": 9090}]


def app(**probes: Any) -> Obj:
    return {"name": "reviews", "image": "reviews:v1", "ports": PORTS, **probes}


def injected(obj: Obj) -> Obj:
    ops, _ = injection_patch(obj, "bookinfo", SETTINGS, facts())
    assert ops is not None
    return apply_patch(obj, ops)


def containers(obj: Obj) -> dict[str, Obj]:
    return {c["name"]: c for c in obj["spec"]["containers"]}


def app_probers_env(obj: Obj) -> Any:
    env = {e["name"]: e.get("value") for e in containers(obj)["istio-proxy"]["env"]}
    return json.loads(env["ISTIO_KUBE_APP_PROBERS"]) if "ISTIO_KUBE_APP_PROBERS" in env else None


def agent_get(path: str) -> Obj:
    return {"path": path, "port": 15020, "scheme": "HTTP"}


READY = "/app-health/reviews/readyz"
LIVE = "/app-health/reviews/livez"
STARTUP = "/app-health/reviews/startupz"

REWRITTEN = [
    # (id, the app container's probes, annotations, the probes after injection, ISTIO_KUBE_APP_PROBERS)
    ("http",
     {"readinessProbe": {"httpGet": {"path": "/health", "port": 9080, "scheme": "HTTP"}, "timeoutSeconds": 2,
                         "periodSeconds": 5, "failureThreshold": 3}},
     {},
     {"readinessProbe": {"httpGet": agent_get(READY), "timeoutSeconds": 2, "periodSeconds": 5,
                         "failureThreshold": 3}},
     {READY: {"httpGet": {"path": "/health", "port": 9080, "scheme": "HTTP"}, "timeoutSeconds": 2}}),
    ("https-becomes-http-to-the-agent",
     {"livenessProbe": {"httpGet": {"path": "/live", "port": 9443, "scheme": "HTTPS"}}},
     {},
     {"livenessProbe": {"httpGet": agent_get(LIVE)}},
     {LIVE: {"httpGet": {"path": "/live", "port": 9443, "scheme": "HTTPS"}}}),
    ("named-port-resolved-against-the-container",
     {"readinessProbe": {"httpGet": {"path": "/", "port": "http"}}},
     {},
     {"readinessProbe": {"httpGet": agent_get(READY)}},
     {READY: {"httpGet": {"path": "/", "port": 9080}}}),
    ("headers-kept-both-sides",
     {"readinessProbe": {"httpGet": {"path": "/", "port": 9080, "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}},
     {},
     {"readinessProbe": {"httpGet": {**agent_get(READY), "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}},
     {READY: {"httpGet": {"path": "/", "port": 9080, "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}}),
    ("tcp-socket",
     {"livenessProbe": {"tcpSocket": {"port": "http"}, "timeoutSeconds": 1, "initialDelaySeconds": 3}},
     {},
     {"livenessProbe": {"httpGet": agent_get(LIVE), "timeoutSeconds": 1, "initialDelaySeconds": 3}},
     {LIVE: {"tcpSocket": {"port": 9080}, "timeoutSeconds": 1}}),
    ("grpc",
     {"startupProbe": {"grpc": {"port": 9090, "service": "reviews"}, "periodSeconds": 1}},
     {},
     {"startupProbe": {"httpGet": agent_get(STARTUP), "periodSeconds": 1}},
     {STARTUP: {"grpc": {"port": 9090, "service": "reviews"}}}),
    ("all-three-kinds",
     {"readinessProbe": {"httpGet": {"path": "/r", "port": 9080}},
      "livenessProbe": {"httpGet": {"path": "/l", "port": 9080}},
      "startupProbe": {"tcpSocket": {"port": 9080}}},
     {},
     {"readinessProbe": {"httpGet": agent_get(READY)}, "livenessProbe": {"httpGet": agent_get(LIVE)},
      "startupProbe": {"httpGet": agent_get(STARTUP)}},
     {READY: {"httpGet": {"path": "/r", "port": 9080}}, LIVE: {"httpGet": {"path": "/l", "port": 9080}},
      STARTUP: {"tcpSocket": {"port": 9080}}}),
    ("annotation-true",
     {"readinessProbe": {"httpGet": {"path": "/", "port": 9080}}},
     {"sidecar.istio.io/rewriteAppHTTPProbers": "true"},
     {"readinessProbe": {"httpGet": agent_get(READY)}},
     {READY: {"httpGet": {"path": "/", "port": 9080}}}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("probes", "annotations", "expected", "env"), [c[1:] for c in REWRITTEN], ids=[c[0] for c in REWRITTEN]
)
def test_probe_rewritten(probes: Obj, annotations: dict[str, str], expected: Obj, env: Obj) -> None:
    result = injected(pod(annotations=annotations, containers=[app(**probes)]))
    reviews = containers(result)["reviews"]
    assert {field: reviews[field] for field in expected} == expected
    assert app_probers_env(result) == env
    assert parse_app_probers(json.dumps(env))  # what the injector writes, the agent reads


KEPT = [
    # (id, the app container's probes, annotations)
    ("opted-out", {"readinessProbe": {"httpGet": {"path": "/", "port": 9080}}},
     {"sidecar.istio.io/rewriteAppHTTPProbers": "false"}),
    ("exec", {"readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}}}, {}),
    ("excluded-inbound-port", {"readinessProbe": {"httpGet": {"path": "/", "port": 8081}}},
     {"traffic.sidecar.istio.io/excludeInboundPorts": "8081"}),
    ("port-outside-included-inbound-ports", {"livenessProbe": {"tcpSocket": {"port": 8081}}},
     {"traffic.sidecar.istio.io/includeInboundPorts": "9080"}),
    ("unknown-named-port", {"readinessProbe": {"httpGet": {"path": "/", "port": "metrics"}}}, {}),
    ("own-host", {"readinessProbe": {"httpGet": {"path": "/", "port": 9080, "host": "10.0.0.9"}}}, {}),
    ("already-on-the-status-port", {"readinessProbe": {"httpGet": agent_get(READY)}}, {}),
]  # fmt: skip


@pytest.mark.parametrize(("probes", "annotations"), [c[1:] for c in KEPT], ids=[c[0] for c in KEPT])
def test_probe_kept(probes: Obj, annotations: dict[str, str]) -> None:
    result = injected(pod(annotations=annotations, containers=[app(**probes)]))
    assert containers(result)["reviews"] == app(**probes)
    assert app_probers_env(result) is None


def test_every_app_container_and_not_the_sidecars_own() -> None:
    other = {"name": "cache", "ports": [{"name": "http", "containerPort": 6379}],
             "readinessProbe": {"tcpSocket": {"port": "http"}}}  # fmt: skip
    obj = pod(containers=[app(readinessProbe={"httpGet": {"path": "/", "port": "http"}}), other])
    result = injected(obj)
    found = containers(result)
    assert found["reviews"]["readinessProbe"] == {"httpGet": agent_get(READY)}
    assert found["cache"]["readinessProbe"] == {"httpGet": agent_get("/app-health/cache/readyz")}
    assert app_probers_env(result) == {
        READY: {"httpGet": {"path": "/", "port": 9080}},
        "/app-health/cache/readyz": {"tcpSocket": {"port": 6379}},
    }
    assert found["istio-proxy"]["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15020,
                                                                 "scheme": "HTTP"}  # fmt: skip


def test_sidecar_first_keeps_the_probes_on_their_containers() -> None:
    """holdApplicationUntilProxyStarts inserts the sidecar at index 0: the probes are replaced before."""
    annotations = {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"}
    result = injected(pod(annotations=annotations, containers=[app(livenessProbe={"tcpSocket": {"port": 9080}})]))
    assert [c["name"] for c in result["spec"]["containers"]] == ["istio-proxy", "reviews"]
    assert containers(result)["reviews"]["livenessProbe"] == {"httpGet": agent_get(LIVE)}
    assert "livenessProbe" not in containers(result)["istio-proxy"]


def test_rewrite_is_idempotent() -> None:
    probes = {
        "readinessProbe": {"httpGet": {"path": "/", "port": 9080}},
        "livenessProbe": {"tcpSocket": {"port": 9080}},
    }
    once = containers(injected(pod(containers=[app(**probes)])))
    assert rewrite_app_probes(list(once.values()), CaptureOptions()) == ([], None)
    again, _ = injection_patch(injected(pod(containers=[app(**probes)])), "bookinfo", SETTINGS, facts())
    assert again is None  # an injected pod is never injected again


def test_a_container_named_istio_proxy_is_never_rewritten() -> None:
    sidecar = {"name": "istio-proxy", "readinessProbe": {"httpGet": {"path": "/ready", "port": 9080}}}
    assert rewrite_app_probes([sidecar], CaptureOptions()) == ([], None)
