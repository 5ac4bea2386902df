"""DestinationRule ``tls`` at the top level, per port and per subset: each mode's required and forbidden fields."""

from __future__ import annotations

import pytest

from pilot.config.types import ClientTLSSettings, DestinationRule
from tests.conftest import IstioDocs

KIND = "DestinationRule"


def rule(istio: IstioDocs, body: str) -> DestinationRule:
    resource = istio.accepted(KIND, body)
    assert isinstance(resource, DestinationRule)
    return resource


def top_tls(istio: IstioDocs, tls: str) -> ClientTLSSettings | None:
    policy = rule(istio, f"host: reviews\ntrafficPolicy:\n  tls: {tls}\n").traffic_policy
    assert policy is not None
    return policy.tls


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ("{mode: DISABLE}", ClientTLSSettings(mode="DISABLE")),
        ("{}", ClientTLSSettings(mode="DISABLE")),
        ("{mode: ISTIO_MUTUAL}", ClientTLSSettings(mode="ISTIO_MUTUAL")),
        (
            "{mode: ISTIO_MUTUAL, sni: reviews.example, subjectAltNames: [spiffe://td/ns/a/sa/b]}",
            ClientTLSSettings(mode="ISTIO_MUTUAL", sni="reviews.example", subject_alt_names=("spiffe://td/ns/a/sa/b",)),
        ),
        ("{mode: SIMPLE}", ClientTLSSettings(mode="SIMPLE")),
        (
            "{mode: SIMPLE, caCertificates: /etc/ca.pem, caCrl: /etc/crl.pem, sni: api, subjectAltNames: [api.x]}",
            ClientTLSSettings(
                mode="SIMPLE",
                ca_certificates="/etc/ca.pem",
                ca_crl="/etc/crl.pem",
                sni="api",
                subject_alt_names=("api.x",),
            ),
        ),
        ("{mode: SIMPLE, insecureSkipVerify: true}", ClientTLSSettings(mode="SIMPLE", insecure_skip_verify=True)),
        (
            "{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}",
            ClientTLSSettings(
                mode="MUTUAL", client_certificate="/c.pem", private_key="/k.pem", ca_certificates="/ca.pem"
            ),
        ),
        (
            "{mode: MUTUAL, credentialName: client-credential, sni: my-nginx.example, subjectAltNames: [a.example]}",
            ClientTLSSettings(
                mode="MUTUAL",
                credential_name="client-credential",
                sni="my-nginx.example",
                subject_alt_names=("a.example",),
            ),
        ),
        (
            "{mode: MUTUAL, credentialName: client-credential, insecureSkipVerify: true}",
            ClientTLSSettings(mode="MUTUAL", credential_name="client-credential", insecure_skip_verify=True),
        ),
        ("{mode: SIMPLE, credentialName: api-ca}", ClientTLSSettings(mode="SIMPLE", credential_name="api-ca")),
    ],
    ids=[
        "disable",
        "empty-is-disable",
        "istio-mutual",
        "istio-mutual-sni-sans",
        "simple-system-trust",
        "simple-files",
        "simple-insecure",
        "mutual",
        "mutual-credential",  # no clientCertificate/privateKey needed: the Secret holds them (Istio)
        "mutual-credential-insecure",  # Istio: MUTUAL's credential still sends the client certificate
        "simple-credential",
    ],
)
def test_top_level_tls_accepted(istio: IstioDocs, tls: str, expected: ClientTLSSettings) -> None:
    assert top_tls(istio, tls) == expected


def test_port_level_and_subset_tls_are_read(istio: IstioDocs) -> None:
    body = """\
        host: reviews
        trafficPolicy:
          tls: {mode: ISTIO_MUTUAL}
          portLevelSettings:
          - port: {number: 443}
            tls: {mode: SIMPLE}
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy:
            tls: {mode: DISABLE}
            portLevelSettings:
            - port: {number: 9080}
              tls: {mode: ISTIO_MUTUAL, sni: v1.reviews}
        """
    resource = rule(istio, body)
    assert resource.traffic_policy is not None
    assert resource.traffic_policy.port_level_settings[0].tls == ClientTLSSettings(mode="SIMPLE")
    subset_policy = resource.subsets[0].traffic_policy
    assert subset_policy is not None
    assert subset_policy.tls == ClientTLSSettings(mode="DISABLE")
    assert subset_policy.port_level_settings[0].tls == ClientTLSSettings(mode="ISTIO_MUTUAL", sni="v1.reviews")


def test_a_port_level_entry_with_only_tls_is_enough(istio: IstioDocs) -> None:
    body = "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 443}\n    tls: {mode: SIMPLE}\n"
    policy = rule(istio, body).traffic_policy
    assert policy is not None and policy.port_level_settings[0].tls == ClientTLSSettings(mode="SIMPLE")


TLS = "host: reviews\ntrafficPolicy:\n  tls:\n"  # the tls fields start on line 4
REJECTIONS = [
    ("mode-unknown", TLS + "    mode: MTLS\n", [(4, "spec.trafficPolicy.tls.mode", "expected one of DISABLE")]),
    ("unknown-field", TLS + "    mode: SIMPLE\n    caCert: /ca\n", [(5, "spec.trafficPolicy.tls.caCert", "unknown")]),
    (
        "credential-with-files",  # Istio: "cannot specify client certificates or CA certificate or CA CRL ..."
        TLS + "    mode: MUTUAL\n    credentialName: c\n    clientCertificate: /c.pem\n    privateKey: /k.pem\n"
        "    caCertificates: /ca.pem\n    caCrl: /crl.pem\n",
        [
            (6, "spec.trafficPolicy.tls.clientCertificate", "cannot be set with credentialName"),
            (7, "spec.trafficPolicy.tls.privateKey", "cannot be set with credentialName"),
            (8, "spec.trafficPolicy.tls.caCertificates", "cannot be set with credentialName"),
            (9, "spec.trafficPolicy.tls.caCrl", "cannot be set with credentialName"),
        ],
    ),
    (
        "simple-credential-with-ca",
        TLS + "    mode: SIMPLE\n    credentialName: c\n    caCertificates: /ca.pem\n",
        [(6, "spec.trafficPolicy.tls.caCertificates", "cannot be set with credentialName")],
    ),
    (
        "simple-credential-insecure",  # Istio: "cannot specify CaCertificates or CredentialName or SubjectAltNames"
        TLS + "    mode: SIMPLE\n    credentialName: c\n    insecureSkipVerify: true\n",
        [(5, "spec.trafficPolicy.tls.credentialName", "cannot be set with insecureSkipVerify: true in mode SIMPLE")],
    ),
    (
        "credential-with-istio-mutual",  # Istio ignores it; meshplane rejects what it would ignore
        TLS + "    mode: ISTIO_MUTUAL\n    credentialName: c\n",
        [(5, "spec.trafficPolicy.tls.credentialName", "not used with mode ISTIO_MUTUAL")],
    ),
    (
        "credential-with-disable",
        TLS + "    mode: DISABLE\n    credentialName: c\n",
        [(5, "spec.trafficPolicy.tls.credentialName", "not used with mode DISABLE: TLS is disabled")],
    ),
    (
        "credential-empty",
        TLS + "    mode: MUTUAL\n    credentialName: ''\n",
        [(5, "spec.trafficPolicy.tls.credentialName", "must name a Secret, got an empty string")],
    ),
    (
        "credential-not-a-secret-name",
        TLS + "    mode: MUTUAL\n    credentialName: Client_Cred\n",
        [(5, "spec.trafficPolicy.tls.credentialName", "must be a DNS-1123 subdomain")],
    ),
    (
        "credential-port-level",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 443}\n"
        "    tls: {mode: MUTUAL, credentialName: c, privateKey: /k}\n",
        [(5, "spec.trafficPolicy.portLevelSettings[0].tls.privateKey", "cannot be set with credentialName")],
    ),
    (
        "credential-subset",
        "host: reviews\nsubsets:\n- name: v1\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, credentialName: c}\n",
        [(5, "spec.subsets[0].trafficPolicy.tls.credentialName", "not used with mode ISTIO_MUTUAL")],
    ),
    (
        "disable-with-sni",
        TLS + "    mode: DISABLE\n    sni: reviews\n",
        [(5, "spec.trafficPolicy.tls.sni", "not used with mode DISABLE")],
    ),
    (
        "missing-mode-with-sni",
        TLS + "    sni: reviews\n",
        [(4, "spec.trafficPolicy.tls.sni", "not used with mode DISABLE")],
    ),
    (
        "istio-mutual-with-files",
        TLS + "    mode: ISTIO_MUTUAL\n    caCertificates: /ca.pem\n    clientCertificate: /c.pem\n",
        [
            (5, "spec.trafficPolicy.tls.caCertificates", "trust bundle from Citadel"),
            (6, "spec.trafficPolicy.tls.clientCertificate", "not used with mode ISTIO_MUTUAL"),
        ],
    ),
    (
        "istio-mutual-insecure",
        TLS + "    mode: ISTIO_MUTUAL\n    insecureSkipVerify: true\n",
        [(5, "spec.trafficPolicy.tls.insecureSkipVerify", "not used with mode ISTIO_MUTUAL")],
    ),
    (
        "simple-with-client-cert",
        TLS + "    mode: SIMPLE\n    clientCertificate: /c.pem\n    privateKey: /k.pem\n",
        [
            (5, "spec.trafficPolicy.tls.clientCertificate", "SIMPLE sends no client certificate (use MUTUAL)"),
            (6, "spec.trafficPolicy.tls.privateKey", "not used with mode SIMPLE"),
        ],
    ),
    (
        "mutual-without-key-and-cert",
        TLS + "    mode: MUTUAL\n",
        [
            (3, "spec.trafficPolicy.tls.clientCertificate", "required for mode MUTUAL"),  # missing: the tls line
            (3, "spec.trafficPolicy.tls.privateKey", "required for mode MUTUAL"),
        ],
    ),
    (
        "mutual-empty-key",
        TLS + "    mode: MUTUAL\n    clientCertificate: /c.pem\n    privateKey: ''\n",
        [(6, "spec.trafficPolicy.tls.privateKey", "must be a file path, got an empty string")],
    ),
    (
        "insecure-with-ca",
        TLS + "    mode: SIMPLE\n    insecureSkipVerify: true\n    caCertificates: /ca.pem\n    subjectAltNames: [a]\n",
        [
            (6, "spec.trafficPolicy.tls.caCertificates", "cannot be set with insecureSkipVerify: true"),
            (7, "spec.trafficPolicy.tls.subjectAltNames", "cannot be set with insecureSkipVerify: true"),
        ],
    ),
    (
        "insecure-not-boolean",
        TLS + "    mode: SIMPLE\n    insecureSkipVerify: 'yes'\n",
        [(5, "spec.trafficPolicy.tls.insecureSkipVerify", "expected a boolean")],
    ),
    (
        "san-empty",
        TLS + "    mode: SIMPLE\n    subjectAltNames: ['']\n",
        [(5, "spec.trafficPolicy.tls.subjectAltNames[0]", "must not be empty")],
    ),
    (
        "port-level",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 443}\n"
        "    tls: {mode: DISABLE, sni: x}\n",
        [(5, "spec.trafficPolicy.portLevelSettings[0].tls.sni", "not used with mode DISABLE")],
    ),
    (
        "subset",
        "host: reviews\nsubsets:\n- name: v1\n  trafficPolicy:\n    tls: {mode: MUTUAL, privateKey: /k}\n",
        [(5, "spec.subsets[0].trafficPolicy.tls.clientCertificate", "required for mode MUTUAL")],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_tls_rejections(istio: IstioDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    errors = istio.errors(KIND, body)
    for line, path, message in expected:
        istio.assert_error(errors, KIND, line, path, message)
    assert len(errors) == len(expected), errors
