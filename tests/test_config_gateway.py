# ruff: noqa: E501  (the rejection table: one case per line, as Istio states each rule)
"""Gateway validation (Istio's ValidateGateway, validateServer, validateServerPort, validateTLSOptions): each
rejection at its line and field path with Istio's message, every problem at once; what is accepted converts into
``types.Gateway`` field by field."""

from __future__ import annotations

import pytest

from pilot.config.types import Gateway, GatewayPort, GatewayServer, Protocol, ServerTLSSettings
from tests.conftest import IstioDocs

SERVER = "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']\n"
HTTPS = "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.example.com]\n  tls:\n"
Expected = list[tuple[int, str, str]]

CASES: list[tuple[str, str, Expected]] = [
    ("no-servers", "selector: {istio: ingressgateway}\n", [(0, "spec.servers", "gateway must have at least one server")]),
    ("no-hosts", "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n", [(2, "spec.servers[0].hosts", "server config must contain at least one host")]),
    ("host-namespace-empty", SERVER.replace("'*'", "'/a.example.com'"), [(3, "spec.servers[0].hosts[0]", "config namespace and dnsName in host entry cannot be empty")]),
    ("host-namespace-invalid", SERVER.replace("'*'", "'Bad/a.example.com'"), [(3, "spec.servers[0].hosts[0]", "invalid namespace 'Bad'")]),
    ("host-invalid", SERVER.replace("'*'", "'a.*.com'"), [(3, "spec.servers[0].hosts[0]", "wildcard must be the whole first label")]),
    ("protocol-invalid", SERVER.replace("HTTP}", "HTTPX}"), [(2, "spec.servers[0].port.protocol", "invalid protocol 'HTTPX'")]),
    ("protocol-mongo", SERVER.replace("HTTP}", "MONGO}"), [(2, "spec.servers[0].port.protocol", "not supported by meshplane yet")]),
    ("port-name-missing", SERVER.replace("name: http, ", ""), [(2, "spec.servers[0].port.name", "port name must be set")]),
    ("port-out-of-range", SERVER.replace("80,", "70000,"), [(2, "spec.servers[0].port.number", "between 1 and 65535")]),
    ("target-port", SERVER.replace("protocol: HTTP}", "protocol: HTTP, targetPort: 8080}"), [(2, "spec.servers[0].port.targetPort", "targetPort has no impact on Gateways")]),
    ("duplicate-port-name", SERVER + "- port: {number: 81, name: http, protocol: HTTP}\n  hosts: ['*']\n", [(4, "spec.servers[1].port.name", "port names in servers must be unique: duplicate name http")]),
    ("bind-invalid", SERVER + "  bind: nowhere\n", [(4, "spec.servers[0].bind", "not a valid IP address")]),
    ("bind-unix", SERVER + "  bind: unix:///var/run/gw.sock\n", [(4, "spec.servers[0].bind", "not supported by meshplane yet")]),
    ("default-endpoint", SERVER + "  defaultEndpoint: 127.0.0.1:8080\n", [(4, "spec.servers[0].defaultEndpoint", "not supported by meshplane yet")]),
    ("https-without-tls", HTTPS.removesuffix("  tls:\n"), [(2, "spec.servers[0].tls", "server must have TLS settings for HTTPS/TLS protocols")]),
    ("tls-on-plaintext", SERVER + "  tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}\n", [(4, "spec.servers[0].tls", "server cannot have TLS settings for plain text HTTP ports")]),
    ("redirect-on-tcp", SERVER.replace("HTTP}", "TCP}") + "  tls: {httpsRedirect: true}\n", [(4, "spec.servers[0].tls", "tls.httpsRedirect should only be used with http servers")]),
    ("simple-without-files", HTTPS + "    mode: SIMPLE\n", [(4, "spec.servers[0].tls.serverCertificate", "SIMPLE TLS requires a server certificate"), (4, "spec.servers[0].tls.privateKey", "SIMPLE TLS requires a private key")]),
    ("mutual-without-ca", HTTPS + "    mode: MUTUAL\n    serverCertificate: /c\n    privateKey: /k\n", [(4, "spec.servers[0].tls.caCertificates", "MUTUAL TLS requires a client CA bundle")]),
    ("istio-mutual-with-files", HTTPS + "    mode: ISTIO_MUTUAL\n    privateKey: /k\n", [(6, "spec.servers[0].tls.privateKey", "ISTIO_MUTUAL TLS cannot have associated private key")]),
    ("passthrough-with-files", HTTPS + "    mode: PASSTHROUGH\n    serverCertificate: /c\n", [(6, "spec.servers[0].tls.serverCertificate", "PASSTHROUGH mode does not use certificates")]),
    ("auto-passthrough-with-credential", HTTPS + "    mode: AUTO_PASSTHROUGH\n    credentialName: c\n", [(6, "spec.servers[0].tls.credentialName", "AUTO_PASSTHROUGH mode does not use certificates")]),
    ("mode-invalid", HTTPS + "    mode: STRICT\n", [(5, "spec.servers[0].tls.mode", "STRICT")]),
    ("cipher-invalid", HTTPS + "    mode: SIMPLE\n    serverCertificate: /c\n    privateKey: /k\n    cipherSuites: [NOPE]\n", [(8, "spec.servers[0].tls.cipherSuites[0]", "invalid cipher suite 'NOPE'")]),
    ("versions-crossed", HTTPS + "    mode: SIMPLE\n    serverCertificate: /c\n    privateKey: /k\n    minProtocolVersion: TLSV1_3\n    maxProtocolVersion: TLSV1_2\n", [(9, "spec.servers[0].tls.maxProtocolVersion", "below minProtocolVersion")]),
    ("old-version-without-ciphers", HTTPS + "    mode: SIMPLE\n    serverCertificate: /c\n    privateKey: /k\n    minProtocolVersion: TLSV1_0\n", [(4, "spec.servers[0].tls.cipherSuites", "TLS version below TLSV1_2 require setting compatible ciphers")]),
    ("credential-and-files", HTTPS + "    mode: SIMPLE\n    credentialName: cert\n    privateKey: /k\n", [(7, "spec.servers[0].tls.privateKey", "certificates come from credentialName")]),
    ("untranslated-tls-fields", HTTPS + "    mode: SIMPLE\n    credentialName: c\n    tlsCertificates: []\n    verifyCertificateSpki: [x]\n", [(7, "spec.servers[0].tls.tlsCertificates", "not supported by meshplane yet"), (8, "spec.servers[0].tls.verifyCertificateSpki", "not supported by meshplane yet")]),
    ("crl-with-credential", HTTPS + "    mode: MUTUAL\n    credentialName: c\n    caCrl: /crl\n", [(7, "spec.servers[0].tls.caCrl", "CRL is not supported with credentialName. CRL has to be specified in the credential")]),
    ("crl-with-simple", HTTPS + "    mode: SIMPLE\n    serverCertificate: /c\n    privateKey: /k\n    caCrl: /crl\n", [(8, "spec.servers[0].tls.caCrl", "CRL is not supported with SIMPLE TLS")]),
    ("crl-with-passthrough", HTTPS + "    mode: PASSTHROUGH\n    caCrl: /crl\n", [(6, "spec.servers[0].tls.caCrl", "PASSTHROUGH mode does not use certificates")]),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gateway_rejections(istio: IstioDocs, body: str, expected: Expected) -> None:
    errors = istio.errors("Gateway", body)
    for line, path, message in expected:
        istio.assert_error(errors, "Gateway", line, path, message)
    assert len(errors) == len(expected), errors


VALID = [
    ("istio-docs-http", "selector:\n  istio: ingressgateway\n" + SERVER),
    ("namespace-prefixes", SERVER.replace("'*'", "'*/a.example.com', './b.example.com', 'prod/*.example.com'")),
    ("https-redirect", SERVER + "  tls: {httpsRedirect: true}\n"),
    ("credential-mutual", HTTPS + "    mode: MUTUAL\n    credentialName: httpbin-credential\n"),
    ("istio-mutual", HTTPS + "    mode: ISTIO_MUTUAL\n"),
    ("passthrough", HTTPS + "    mode: PASSTHROUGH\n"),
    (
        "auto-passthrough-east-west",
        HTTPS.replace("HTTPS}", "TLS}").replace("a.example.com", "'*.local'") + "    mode: AUTO_PASSTHROUGH\n",
    ),
    ("tls-terminated-tcp", HTTPS.replace("HTTPS}", "TLS}") + "    mode: SIMPLE\n    credentialName: c\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_gateways(istio: IstioDocs, body: str) -> None:
    assert isinstance(istio.accepted("Gateway", body), Gateway)


def test_gateway_fields_are_converted(istio: IstioDocs) -> None:
    body = (
        "selector: {istio: ingressgateway}\n"
        + HTTPS
        + "    mode: MUTUAL\n    serverCertificate: /c.pem\n    privateKey: /k.pem\n    caCertificates: /ca.pem\n"
        "    subjectAltNames: [client.example.com]\n    minProtocolVersion: TLSV1_2\n    maxProtocolVersion: TLSV1_3\n"
        "    cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]\n  bind: 10.0.0.1\n"
    )
    gateway = istio.accepted("Gateway", body)
    assert isinstance(gateway, Gateway)
    assert dict(gateway.selector) == {"istio": "ingressgateway"}
    assert gateway.servers == (
        GatewayServer(
            port=GatewayPort(number=443, protocol=Protocol.HTTPS, name="https"),
            hosts=("a.example.com",),
            bind="10.0.0.1",
            tls=ServerTLSSettings(
                mode="MUTUAL",
                server_certificate="/c.pem",
                private_key="/k.pem",
                ca_certificates="/ca.pem",
                subject_alt_names=("client.example.com",),
                min_protocol_version="TLSV1_2",
                max_protocol_version="TLSV1_3",
                cipher_suites=("ECDHE-RSA-AES128-GCM-SHA256",),
            ),
        ),
    )
