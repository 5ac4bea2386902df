"""Validate a DestinationRule ``tls`` block into ``types.ClientTLSSettings`` (Istio's ``validateTLS``).

Each mode takes only the fields it uses; a field the mode would ignore is an error, so that a rule never seems to
configure something it does not (e.g. a ``caCertificates`` on ISTIO_MUTUAL, whose trust comes from Citadel):

- DISABLE: nothing else.
- ISTIO_MUTUAL: ``sni`` and ``subjectAltNames`` (which replace the destination's service accounts) only.
- SIMPLE: ``caCertificates`` (default: the system's trust store), ``caCrl``, ``sni``, ``subjectAltNames``,
  ``insecureSkipVerify`` (which excludes ``caCertificates`` and ``subjectAltNames``, as in Istio), or
  ``credentialName`` instead of the files (then the trusted CAs are the Secret's; with ``insecureSkipVerify`` it
  would be unused, so Istio rejects the pair).
- MUTUAL: SIMPLE's, plus the required ``clientCertificate`` and ``privateKey``, or ``credentialName`` instead of
  all the files (the Secret holds the client certificate, its key and the CAs).

``credentialName`` excludes ``clientCertificate``, ``privateKey``, ``caCertificates`` and ``caCrl`` (Istio's
``validateTLS``: "cannot specify client certificates or CA certificate or CA CRL If credentialName is set"). It
names a Secret of the client proxy's own namespace, served by Citadel over SDS (``kubernetes://<name>`` and
``kubernetes://<name>-cacert``), so a rule that names one needs no per-proxy bytes.

``mode`` defaults to DISABLE when left out (proto3: the enum's zero value). The files are read by the client
sidecar's Envoy, not by Pilot. Istio accepts and ignores the fields a mode does not use (e.g. ``credentialName``
with ISTIO_MUTUAL); meshplane rejects them, so that nothing written is silently dropped.
"""

from __future__ import annotations

from typing import cast, get_args

from pilot.config.types import ClientTLSSettings, TlsMode
from pilot.config.validate_common import Fields
from pilot.config.validate_names import dns1123_subdomain_error

__all__ = [
    "CLIENT_TLS_FIELDS",
    "CLIENT_TLS_MODES",
    "read_client_tls",
]

CLIENT_TLS_MODES: tuple[str, ...] = get_args(TlsMode)
CLIENT_TLS_FIELDS = (
    "mode",
    "clientCertificate",
    "privateKey",
    "caCertificates",
    "caCrl",
    "subjectAltNames",
    "sni",
    "insecureSkipVerify",
    "credentialName",
)
# The files a credentialName replaces.
_CREDENTIAL_FILES = ("clientCertificate", "privateKey", "caCertificates", "caCrl")

# The fields each mode may set besides ``mode``.
_ALLOWED: dict[str, tuple[str, ...]] = {
    "DISABLE": (),
    "ISTIO_MUTUAL": ("subjectAltNames", "sni"),
    "SIMPLE": ("caCertificates", "caCrl", "subjectAltNames", "sni", "insecureSkipVerify", "credentialName"),
    "MUTUAL": CLIENT_TLS_FIELDS[1:],
}
_WHY: dict[str, str] = {
    "DISABLE": "TLS is disabled",
    "ISTIO_MUTUAL": "ISTIO_MUTUAL uses the workload certificate and trust bundle from Citadel",
    "SIMPLE": "SIMPLE sends no client certificate (use MUTUAL)",
}


def read_client_tls(parent: Fields, name: str = "tls") -> ClientTLSSettings | None:
    """The ``tls`` block of a traffic policy or port-level setting; None when absent. Problems go to
    ``parent.problems``."""
    tls = parent.mapping(name, known=CLIENT_TLS_FIELDS, message="ClientTLSSettings")
    if tls is None:
        return None
    mode = cast(TlsMode, tls.enum("mode", CLIENT_TLS_MODES) or "DISABLE")
    for field in CLIENT_TLS_FIELDS[1:]:
        if tls.has(field) and field not in _ALLOWED[mode]:
            tls.report(field, f"not used with mode {mode}: {_WHY[mode]}")
    settings = ClientTLSSettings(
        mode=mode,
        client_certificate=_path(tls, "clientCertificate"),
        private_key=_path(tls, "privateKey"),
        ca_certificates=_path(tls, "caCertificates"),
        ca_crl=_path(tls, "caCrl"),
        subject_alt_names=_subject_alt_names(tls),
        sni=tls.string("sni") or "",
        insecure_skip_verify=tls.boolean("insecureSkipVerify") or False,
        credential_name=_credential_name(tls),
    )
    if settings.credential_name or tls.has("credentialName"):
        _check_credential_alone(tls, settings)
    elif mode == "MUTUAL":
        for field, value in (("clientCertificate", settings.client_certificate), ("privateKey", settings.private_key)):
            if not value and not tls.has(field):
                tls.report(field, "required for mode MUTUAL")
    if settings.insecure_skip_verify:
        for field in ("caCertificates", "subjectAltNames"):
            if tls.has(field):
                tls.report(field, "cannot be set with insecureSkipVerify: true (nothing is verified)")
    return settings


def _check_credential_alone(tls: Fields, settings: ClientTLSSettings) -> None:
    for field in _CREDENTIAL_FILES:
        if tls.has(field) and field in _ALLOWED[settings.mode]:
            tls.report(field, "cannot be set with credentialName (the Secret holds the certificates and CAs)")
    if settings.mode == "SIMPLE" and settings.insecure_skip_verify:
        tls.report(
            "credentialName",
            "cannot be set with insecureSkipVerify: true in mode SIMPLE (its CAs would verify nothing)",
        )


def _credential_name(tls: Fields) -> str:
    """The Secret's name: a Kubernetes object name in the client proxy's namespace."""
    name = tls.string("credentialName")
    if name is None:
        return ""
    error = dns1123_subdomain_error(name, "Secret name") if name else "must name a Secret, got an empty string"
    if error is not None:
        tls.report("credentialName", error)
        return ""
    return name


def _path(tls: Fields, field: str) -> str:
    value = tls.string(field)
    if value is None:
        return ""
    if not value.strip():
        tls.report(field, "must be a file path, got an empty string")
        return ""
    return value


def _subject_alt_names(tls: Fields) -> tuple[str, ...]:
    names = tls.strings("subjectAltNames") or ()
    for index, value in enumerate(names):
        if not value:
            tls.problems.add(tls.at("subjectAltNames", index), "must not be empty")
    return names
