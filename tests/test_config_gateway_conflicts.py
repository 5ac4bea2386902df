"""Gateway servers that cannot share a port (``pilot.config.gateway_conflicts``): across Gateways whose selectors
overlap the store rejects the later (or the changed) one with an error naming the other's server and origin, the
earlier stays in force; servers that merge (plaintext HTTP, TLS with other SNI names) are both accepted; within one
Gateway validation rejects the second server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilot.analyze import analyze_directory
from pilot.config.store import ConfigStore
from pilot.config.types import ConfigKey
from tests.conftest import IstioDocs
from tests.test_config_store import doc, files, rejected

HTTP = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n"
HTTP_B = HTTP.replace("a.example", "b.example").replace("name: http,", "name: http-b,")
TCP = "  - port: {number: 80, name: tcp, protocol: TCP}\n    hosts: ['*']\n"
TLS = (
    "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [a.example.com]\n"
    "    tls: {mode: SIMPLE, credentialName: a}\n"
)
TLS_B = TLS.replace("[a.example.com]", "[b.example.com]")
TLS_AB = TLS.replace("[a.example.com]", "['prod/b.example.com', 'a.example.com']")
TLS_ANY = TLS.replace("[a.example.com]", "['*']")
BOUND = HTTP + "    bind: 10.0.0.80\n"


def gateway(name: str, servers: str, selector: str = "{istio: ingressgateway}") -> str:
    return doc("Gateway", name, f"  selector: {selector}\n  servers:\n{servers}")


CASES = [
    # (id, servers of a, servers of b, b's selector, b's error or "" when both are accepted)
    ("http-servers-merge", HTTP, HTTP_B, "{istio: ingressgateway}", ""),
    ("same-http-host-merges", HTTP, HTTP, "{istio: ingressgateway}", ""),
    (
        "tcp-on-an-http-port",
        HTTP,
        TCP,
        "{istio: ingressgateway}",
        "a.yaml:20: Gateway bookinfo/b: spec.servers[0]: conflicts with Gateway bookinfo/a (a.yaml:1: "
        "spec.servers[0]) on port 80: a TCP server cannot share a port with an HTTP server",
    ),
    (
        "two-tcp-servers",
        TCP,
        TCP,
        "{istio: ingressgateway}",
        "a.yaml:20: Gateway bookinfo/b: spec.servers[0]: conflicts with Gateway bookinfo/a (a.yaml:1: "
        "spec.servers[0]) on port 80: only one plaintext TCP server may use a port",
    ),
    ("tls-other-sni-merges", TLS, TLS_B, "{istio: ingressgateway}", ""),
    (
        "tls-shared-sni",
        TLS,
        TLS_AB,
        "{istio: ingressgateway}",
        "a.yaml:21: Gateway bookinfo/b: spec.servers[0]: conflicts with Gateway bookinfo/a (a.yaml:1: "
        "spec.servers[0]) on port 443: both are TLS servers for SNI a.example.com: two filter chains would match "
        "the same connections",
    ),
    (
        "tls-two-catch-alls",
        TLS_ANY,
        TLS_ANY,
        "{istio: ingressgateway}",
        "a.yaml:21: Gateway bookinfo/b: spec.servers[0]: conflicts with Gateway bookinfo/a (a.yaml:1: "
        "spec.servers[0]) on port 443: both are TLS servers for every SNI name ('*'): two filter chains would "
        "match the same connections",
    ),
    ("tls-catch-all-and-a-name-merge", TLS_ANY, TLS, "{istio: ingressgateway}", ""),
    # no proxy carries istio=ingressgateway and istio=egressgateway
    ("other-gateway-proxies", TCP, TCP, "{istio: egressgateway}", ""),
    # a proxy can carry istio=ingressgateway and app=edge: both select it
    (
        "overlapping-selectors",
        TCP,
        TCP,
        "{app: edge}",
        "a.yaml:20: Gateway bookinfo/b: spec.servers[0]: conflicts with Gateway bookinfo/a (a.yaml:1: "
        "spec.servers[0]) on port 80: only one plaintext TCP server may use a port",
    ),
    ("other-bind-address", TCP.replace("'*']\n", "'*']\n    bind: 10.0.0.80\n"), TCP, "{istio: ingressgateway}", ""),
    (
        "same-bind-address",
        BOUND,
        BOUND.replace("HTTP}", "TCP}"),
        "{}",
        "a.yaml:21: Gateway bookinfo/b: spec.servers[0]: conflicts with Gateway bookinfo/a (a.yaml:1: "
        "spec.servers[0]) on port 10.0.0.80:80: a TCP server cannot share a port with an HTTP server",
    ),
]


@pytest.mark.parametrize(("earlier", "later", "selector", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conflicts(earlier: str, later: str, selector: str, error: str) -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=gateway("a", earlier) + "---\n" + gateway("b", later, selector)))
    assert ConfigKey(kind="Gateway", namespace="bookinfo", name="a") in store.accepted
    later_key = ConfigKey(kind="Gateway", namespace="bookinfo", name="b")
    if not error:
        assert later_key in store.accepted and rejected(store) == []
        return
    assert later_key not in store.accepted
    (entry,) = rejected(store)
    assert entry["errors"] == [error] and entry["in_force"] is None


def test_the_changed_gateway_is_rejected_and_the_one_in_force_stays() -> None:
    """b was in force first; a (earlier in name order) changes to a TCP server on b's HTTP port: a is rejected
    naming b, a's last good version stays, b keeps serving."""
    store = ConfigStore()
    store.apply(files(a_yaml=gateway("a", TLS), b_yaml=gateway("b", HTTP)))
    store.apply(files(a_yaml=gateway("a", TCP)))
    (entry,) = rejected(store)
    assert entry["name"] == "a" and entry["in_force"] == "last good version from a.yaml:1"
    assert entry["errors"] == [
        "a.yaml:9: Gateway bookinfo/a: spec.servers[0]: conflicts with Gateway bookinfo/b (b.yaml:1: "
        "spec.servers[0]) on port 80: a TCP server cannot share a port with an HTTP server"
    ]
    kept = store.accepted[ConfigKey(kind="Gateway", namespace="bookinfo", name="a")]
    assert kept.servers[0].port.number == 443
    assert ConfigKey(kind="Gateway", namespace="bookinfo", name="b") in store.accepted
    store.apply(files(a_yaml=gateway("a", TLS_B)))  # fixed: in force, nothing rejected
    assert rejected(store) == [] and len(store.accepted) == 2


def test_removing_the_earlier_gateway_lets_the_later_one_in() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=gateway("a", TCP), b_yaml=gateway("b", TCP)))
    assert [e["name"] for e in rejected(store)] == ["b"]
    store.apply(files(a_yaml=""))
    assert rejected(store) == []
    assert list(store.accepted) == [ConfigKey(kind="Gateway", namespace="bookinfo", name="b")]


WITHIN = [
    (
        "tcp-after-http",
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']\n"
        "- port: {number: 80, name: tcp, protocol: TCP}\n  hosts: ['*']\n",
        (4, "spec.servers[1]", "conflicts with servers[0]: a TCP server cannot share a port with an HTTP server"),
    ),
    (
        "same-sni",
        "servers:\n- port: {number: 443, name: a, protocol: TLS}\n  hosts: [a.example.com]\n"
        "  tls: {mode: PASSTHROUGH}\n"
        "- port: {number: 443, name: b, protocol: HTTPS}\n  hosts: [./a.example.com]\n"
        "  tls: {mode: SIMPLE, credentialName: c}\n",
        (5, "spec.servers[1]", "conflicts with servers[0]: both are TLS servers for SNI a.example.com"),
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in WITHIN], ids=[c[0] for c in WITHIN])
def test_servers_of_one_gateway_conflict(istio: IstioDocs, body: str, expected: tuple[int, str, str]) -> None:
    errors = istio.errors("Gateway", body)
    istio.assert_error(errors, "Gateway", *expected)
    assert len(errors) == 1, errors


async def test_analyze_reports_the_conflict(tmp_path: Path) -> None:
    (tmp_path / "gateways.yaml").write_text(gateway("a", TCP) + "---\n" + gateway("b", HTTP))
    findings = await analyze_directory(tmp_path)
    [finding] = [f for f in findings if f.code == "MP0101"]
    assert finding.resource == "Gateway bookinfo/b"
    assert f"conflicts with Gateway bookinfo/a ({tmp_path}/gateways.yaml:1: spec.servers[0]) on port 80: an HTTP" in (
        finding.message
    )
