"""The injector's serving certificate from the mesh's CA directory (``injector.serving``), served by ``POST /inject``
over HTTPS (``injector.server``) to a client that trusts only the mesh's root, and the caBundle following a root
rotation; the MutatingWebhookConfiguration's selectors (``injector.webhook_config``)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509

from citadel.ca import load_certs_pem
from citadel.ca_dir import load_or_create_ca, rotate_root
from injector.server import InjectorServer
from injector.serving import ServingIdentity, service_dns_names
from injector.webhook_config import webhook_configuration
from tests.injector_builders import SETTINGS, facts, pod, review
from tests.test_injector_patch import StaticFacts

NAMES = service_dns_names("istio-sidecar-injector", "istio-system", "cluster.local")


def identity(tmp_path: Path) -> ServingIdentity:
    load_or_create_ca(tmp_path / "ca", "cluster.local")
    serving = ServingIdentity(tmp_path / "ca", dns_names=NAMES, ip_addresses=["127.0.0.1"])
    serving.refresh()
    serving.apply()
    return serving


def test_service_dns_names() -> None:
    assert NAMES == (
        "istio-sidecar-injector",
        "istio-sidecar-injector.istio-system",
        "istio-sidecar-injector.istio-system.svc",
        "istio-sidecar-injector.istio-system.svc.cluster.local",
    )


def test_refresh_is_a_no_op_until_the_ca_changes_then_the_bundle_follows(tmp_path: Path) -> None:
    serving = identity(tmp_path)
    first = serving.trust_bundle
    assert serving.refresh() is False
    rotate_root(tmp_path / "ca", "cluster.local")
    assert serving.refresh() is True
    assert len(load_certs_pem(serving.trust_bundle)) == 2 and load_certs_pem(first)[0] in load_certs_pem(
        serving.trust_bundle
    )


def _context(cafile: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=cafile.decode())


def _peer_certificate(port: int, cafile: bytes) -> x509.Certificate:
    """The certificate the server presents, verified against ``cafile`` for the name 127.0.0.1."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        _context(cafile).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _post(port: int, cafile: bytes, body: bytes) -> dict[str, object]:
    url = f"https://127.0.0.1:{port}/inject"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=_context(cafile), timeout=5) as response:
            answer: dict[str, object] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        error.close()
        return {"status": error.code}
    return answer


async def test_inject_over_https_verified_against_the_mesh_root(tmp_path: Path) -> None:
    serving = identity(tmp_path)
    server = InjectorServer(SETTINGS, StaticFacts(facts()))
    await server.start("127.0.0.1", 0, serving.ssl_context)
    try:
        body = json.dumps(review(pod())).encode()
        peer = await asyncio.to_thread(_peer_certificate, server.port, serving.trust_bundle)
        answer = await asyncio.to_thread(_post, server.port, serving.trust_bundle, body)
    finally:
        await server.stop()
    sans = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert tuple(sans.get_values_for_type(x509.DNSName)) == NAMES
    response = answer["response"]
    assert isinstance(response, dict) and response["allowed"] is True and response["patchType"] == "JSONPatch"


async def test_bad_body_is_a_400(tmp_path: Path) -> None:
    serving = identity(tmp_path)
    server = InjectorServer(SETTINGS, StaticFacts(facts()))
    await server.start("127.0.0.1", 0, serving.ssl_context)
    try:
        answer = await asyncio.to_thread(_post, server.port, serving.trust_bundle, b"{}")
    finally:
        await server.stop()
    assert answer == {"status": 400}


def test_webhook_configuration_selectors() -> None:
    config = webhook_configuration({"service": {"name": "istio-sidecar-injector", "namespace": "istio-system",
                                                "path": "/inject", "port": 443}},
                                   ca_bundle=b"PEM", namespace_scope={"team": "a"})  # fmt: skip
    namespace_hook, object_hook = config["webhooks"]
    assert namespace_hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "istio-injection", "operator": "In", "values": ["enabled"]},
        {"key": "istio.io/rev", "operator": "DoesNotExist"},
        {"key": "team", "operator": "In", "values": ["a"]},
    ]
    assert namespace_hook["objectSelector"]["matchExpressions"] == [
        {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]},
        {"key": "istio.io/rev", "operator": "DoesNotExist"},
    ]
    assert object_hook["namespaceSelector"]["matchExpressions"][0] == {
        "key": "istio-injection",
        "operator": "DoesNotExist",
    }
    assert object_hook["objectSelector"]["matchExpressions"][0] == {
        "key": "sidecar.istio.io/inject",
        "operator": "In",
        "values": ["true"],
    }
    for hook in (namespace_hook, object_hook):
        assert hook["clientConfig"]["caBundle"] == base64.b64encode(b"PEM").decode()
        assert hook["admissionReviewVersions"] == ["v1", "v1beta1"]
        assert (hook["failurePolicy"], hook["sideEffects"]) == ("Fail", "None")
        assert hook["rules"] == [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
        ]
