"""Validate a Gateway spec into ``types.Gateway`` (Istio's ``ValidateGateway``, ``validateServer``,
``validateServerPort``, ``validateServerBind``, ``validateTLSOptions``, with Istio's messages).

What Istio only warns about and then ignores (certificates given to a PASSTHROUGH server, unknown or duplicate
cipher suites, ``httpsRedirect`` on a non-HTTP server, TLS settings on a plaintext port) is an error here: meshplane
never accepts what it ignores. Fields meshplane does not translate (``defaultEndpoint``, ``credentialNames``,
``tlsCertificates``, ``verifyCertificateSpki``/``Hash``, a ``bind`` to a Unix socket) are "not supported by meshplane
yet", every one of them at once.
"""

from __future__ import annotations

from typing import cast

from pilot.config.errors import quote
from pilot.config.gateway_conflicts import server_conflict
from pilot.config.istio_api import fields_except
from pilot.config.types import (
    ConfigMeta,
    Gateway,
    GatewayPort,
    GatewayServer,
    GatewayTlsMode,
    Protocol,
    ServerTLSSettings,
    TlsProtocolVersion,
    frozen_labels,
)
from pilot.config.validate_common import Fields
from pilot.config.validate_names import dns1123_label_error, host_error, ip_error

__all__ = [
    "CIPHER_SUITES",
    "GATEWAY_FIELDS",
    "GATEWAY_PROTOCOLS",
    "GATEWAY_TLS_MODES",
    "gateway_host_error",
    "read_server_tls",
    "validate_gateway",
]

GATEWAY_FIELDS = fields_except("Gateway")
_SERVER_FIELDS = fields_except("Server", "defaultEndpoint")
_PORT_FIELDS = fields_except("Port")
_TLS_FIELDS = fields_except(
    "ServerTLSSettings", "credentialNames", "tlsCertificates", "verifyCertificateSpki", "verifyCertificateHash"
)
GATEWAY_PROTOCOLS = ("HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS")
_ISTIO_ONLY_PROTOCOLS = ("GRPC-WEB", "MONGO", "REDIS", "MYSQL")
GATEWAY_TLS_MODES: tuple[GatewayTlsMode, ...] = (
    "PASSTHROUGH",
    "SIMPLE",
    "MUTUAL",
    "AUTO_PASSTHROUGH",
    "ISTIO_MUTUAL",
    "OPTIONAL_MUTUAL",
)
_TLS_VERSIONS: tuple[TlsProtocolVersion, ...] = ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")
# The cipher suites Envoy (BoringSSL) takes in ``cipher_suites`` (Istio's ``security.ValidCipherSuites``, without
# the PSK ones Envoy cannot use without a PSK)
CIPHER_SUITES = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)
_CERTIFICATE_FIELDS = ("serverCertificate", "privateKey", "caCertificates", "credentialName")


def validate_gateway(spec: Fields, meta: ConfigMeta) -> Gateway:
    """Check a Gateway spec (opened with ``GATEWAY_FIELDS``); problems go to ``spec.problems``."""
    selector = spec.labels("selector") or {}
    servers = tuple(_server(server) for server in spec.mappings("servers", known=_SERVER_FIELDS, message="Server"))
    if not spec.is_set("servers"):
        spec.report("servers", "gateway must have at least one server")
    _unique_port_names(spec, servers)
    _server_conflicts(spec, servers)
    return Gateway(meta=meta, selector=frozen_labels(selector), servers=servers)


def _unique_port_names(spec: Fields, servers: tuple[GatewayServer, ...]) -> None:
    seen: set[str] = set()
    for index, server in enumerate(servers):
        name = server.port.name
        if name and name in seen:
            spec.problems.add(
                spec.at("servers", index, "port", "name"),
                f"port names in servers must be unique: duplicate name {name}",
            )
        seen.add(name)


def _server_conflicts(spec: Fields, servers: tuple[GatewayServer, ...]) -> None:
    """Two servers of this Gateway that cannot share their port (``gateway_conflicts``; across Gateways the store
    checks)."""
    for index, server in enumerate(servers):
        for earlier_index, earlier in enumerate(servers[:index]):
            reason = server_conflict(earlier, server) if server.port.number else None
            if reason is not None:
                spec.problems.add(spec.at("servers", index), f"conflicts with servers[{earlier_index}]: {reason}")
                break


def gateway_host_error(host: str) -> str | None:
    """Istio's ``validateNamespaceSlashWildcardHostname`` for a gateway server host: ``[namespace/]dnsName``, the
    namespace ``*``, ``.`` or a DNS-1123 label, the name a host with an optional leading ``*``."""
    namespace, slash, name = host.partition("/")
    if not slash:
        return host_error(host)
    if not namespace or not name:
        return "config namespace and dnsName in host entry cannot be empty"
    if namespace not in ("*", ".") and dns1123_label_error(namespace, "namespace") is not None:
        return f"invalid namespace {quote(namespace)} in host {quote(host)}: must be *, . or a namespace name"
    return host_error(name)


def _server(server: Fields) -> GatewayServer:
    port = _port(server)
    hosts = server.strings("hosts") or ()
    if not hosts:
        server.report("hosts", "server config must contain at least one host")
    for index, host in enumerate(hosts):
        server.problems.add_if(server.at("hosts", index), gateway_host_error(host))
    bind = server.string("bind") or ""
    if bind.startswith(("unix://", "@")):
        server.report("bind", "a Unix domain socket is not supported by meshplane yet: bind an IP address")
    elif bind:
        server.problems.add_if(server.at("bind"), ip_error(bind))
    tls = read_server_tls(server)
    _check_tls_for_protocol(server, port, tls)
    return GatewayServer(
        port=port or GatewayPort(number=0, protocol=Protocol.UNKNOWN, name=""),
        hosts=hosts,
        bind=bind,
        tls=tls,
        name=server.string("name") or "",
    )


def _port(server: Fields) -> GatewayPort | None:
    port = server.mapping("port", known=_PORT_FIELDS, message="Port", required=True)
    if port is None:
        return None
    number = port.integer("number", minimum=1, maximum=65535, required=True)
    raw = port.string("protocol", required=True)
    protocol: Protocol | None = None
    if raw is not None:
        upper = raw.upper()
        if upper in GATEWAY_PROTOCOLS:
            protocol = Protocol(upper)
        elif upper in _ISTIO_ONLY_PROTOCOLS:
            port.report("protocol", f"protocol {raw} on a gateway is not supported by meshplane yet")
        else:
            port.report(
                "protocol",
                f"invalid protocol {quote(raw)}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, "
                "MYSQL, TCP",
            )
    name = port.string("name")
    if not name and raw is not None:
        port.report("name", "port name must be set")
    if port.has("targetPort"):
        port.report("targetPort", "targetPort has no impact on Gateways: remove it")
    if number is None or protocol is None:
        return None
    return GatewayPort(number=number, protocol=protocol, name=name or "")


def read_server_tls(server: Fields) -> ServerTLSSettings | None:
    """The ServerTLSSettings at ``tls`` (a Gateway server's, a Sidecar ingress listener's), with Istio's
    ``validateTLSOptions``."""
    tls = server.mapping("tls", known=_TLS_FIELDS, message="ServerTLSSettings")
    if tls is None:
        return None
    mode = cast("GatewayTlsMode", tls.enum("mode", GATEWAY_TLS_MODES) or "PASSTHROUGH")
    files = {name: tls.string(name) or "" for name in _CERTIFICATE_FIELDS}
    settings = ServerTLSSettings(
        https_redirect=tls.boolean("httpsRedirect") or False,
        mode=mode,
        server_certificate=files["serverCertificate"],
        private_key=files["privateKey"],
        ca_certificates=files["caCertificates"],
        ca_crl=tls.string("caCrl") or "",
        credential_name=files["credentialName"],
        subject_alt_names=tls.strings("subjectAltNames") or (),
        min_protocol_version=cast("TlsProtocolVersion", tls.enum("minProtocolVersion", _TLS_VERSIONS) or "TLS_AUTO"),
        max_protocol_version=cast("TlsProtocolVersion", tls.enum("maxProtocolVersion", _TLS_VERSIONS) or "TLS_AUTO"),
        cipher_suites=tls.strings("cipherSuites") or (),
    )
    _check_tls_options(tls, settings)
    return settings


def _check_tls_options(tls: Fields, settings: ServerTLSSettings) -> None:
    """Istio's ``validateTLSOptions`` (its warnings are errors: see the module doc)."""
    _check_ciphers(tls, settings)
    _check_versions(tls, settings)
    _check_crl(tls, settings)
    mode = settings.mode
    given = [name for name in _CERTIFICATE_FIELDS if tls.is_set(name)]
    if mode == "ISTIO_MUTUAL":
        descriptions = {
            "serverCertificate": "server certificate",
            "privateKey": "private key",
            "caCertificates": "CA bundle",
            "credentialName": "credentialName",
        }
        for name in given:
            tls.report(name, f"ISTIO_MUTUAL TLS cannot have associated {descriptions[name]}")
    elif mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH"):
        for name in given + (["caCrl"] if settings.ca_crl else []):
            tls.report(name, f"{mode} mode does not use certificates: remove {name}")
        if settings.subject_alt_names:
            tls.report("subjectAltNames", f"{mode} mode does not verify clients: remove subjectAltNames")
    elif settings.credential_name:
        for name in ("serverCertificate", "privateKey", "caCertificates"):
            if tls.is_set(name):
                tls.report(name, "certificates come from credentialName: remove the file (or credentialName)")
    elif mode == "SIMPLE":
        for name, what in (("serverCertificate", "a server certificate"), ("privateKey", "a private key")):
            if not tls.is_set(name):
                tls.report(name, f"SIMPLE TLS requires {what}")
        if settings.subject_alt_names:
            tls.report("subjectAltNames", "SIMPLE TLS does not verify clients: subjectAltNames needs MUTUAL")
    else:  # MUTUAL, OPTIONAL_MUTUAL
        needed = (
            ("serverCertificate", "a server certificate"),
            ("privateKey", "a private key"),
            ("caCertificates", "a client CA bundle"),
        )
        for name, what in needed:
            if not tls.is_set(name):
                tls.report(name, f"MUTUAL TLS requires {what}")


def _check_crl(tls: Fields, settings: ServerTLSSettings) -> None:
    """Istio's checks of ``caCrl``: not with ``credentialName`` (the credential carries its CRL), not with SIMPLE
    (no client certificate to check)."""
    if not settings.ca_crl:
        return
    if settings.credential_name:
        tls.report("caCrl", "CRL is not supported with credentialName. CRL has to be specified in the credential")
    if settings.mode == "SIMPLE":
        tls.report("caCrl", "CRL is not supported with SIMPLE TLS")


def _check_ciphers(tls: Fields, settings: ServerTLSSettings) -> None:
    seen: set[str] = set()
    for index, cipher in enumerate(settings.cipher_suites):
        path = tls.at("cipherSuites", index)
        if cipher not in CIPHER_SUITES:
            tls.problems.add(path, f"invalid cipher suite {quote(cipher)} (one of {', '.join(sorted(CIPHER_SUITES))})")
        elif cipher in seen:
            tls.problems.add(path, f"duplicate cipher suite {quote(cipher)}")
        seen.add(cipher)


def _check_versions(tls: Fields, settings: ServerTLSSettings) -> None:
    low, high = settings.min_protocol_version, settings.max_protocol_version
    if low in ("TLSV1_0", "TLSV1_1") and not settings.cipher_suites:
        tls.report(
            "cipherSuites",
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include "
            "compatible ciphers",
        )
    if low != "TLS_AUTO" and high != "TLS_AUTO" and _TLS_VERSIONS.index(low) > _TLS_VERSIONS.index(high):
        tls.report("maxProtocolVersion", f"maxProtocolVersion {high} is below minProtocolVersion {low}")


def _check_tls_for_protocol(server: Fields, port: GatewayPort | None, tls: ServerTLSSettings | None) -> None:
    if port is None:
        return
    terminates = port.protocol in (Protocol.HTTPS, Protocol.TLS)
    if terminates and tls is None:
        server.report("tls", "server must have TLS settings for HTTPS/TLS protocols")
    elif tls is not None and not terminates:
        if tls.https_redirect and port.protocol is not Protocol.HTTP:
            server.report("tls", "tls.httpsRedirect should only be used with http servers")
        elif not tls.https_redirect or server.node["tls"].keys() - {"httpsRedirect"}:
            server.report("tls", f"server cannot have TLS settings for plain text {port.protocol} ports")
    elif tls is not None and tls.https_redirect:
        server.report("tls", "tls.httpsRedirect should only be used with http servers")
