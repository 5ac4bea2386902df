"""Gateway proxies (node type ``router``): the listeners, route tables and TLS contexts generated from Gateways and
the VirtualServices bound to them, asserted field by field, and accepted by real Envoy (``envoy --mode validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import DownstreamTlsContext

from pilot.config.parse import parse_config_text
from pilot.generate.registry import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from tests.mtls_builders import write_test_pki
from tests.source_builders import by_name, generated_type, validate_generated

ROUTER = "router~10.0.0.80~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"
SIDECAR = "sidecar~10.0.0.10~productpage.default~default.svc.cluster.local"
REGISTRY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.5}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: nginx}
spec:
  hosts: [my-nginx.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.6}]
"""
HTTPBIN_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: ["httpbin.example.com"]
  gateways: [httpbin-gateway]
  http:
  - match: [{uri: {prefix: /status}}, {uri: {prefix: /delay}}]
    route: [{destination: {port: {number: 8000}, host: httpbin}}]
"""


def gateway(servers: str, name: str = "httpbin-gateway", namespace: str = "default") -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}"
    )


HTTP_SERVER = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [httpbin.example.com]\n"


def mesh(*documents: str) -> MeshSnapshot:
    parsed = parse_config_text("\n---\n".join((REGISTRY, *documents)), "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)


def router(snapshot: MeshSnapshot, labels: dict[str, str] | None = None, sds: bool = False) -> Proxy:
    metadata = {"MESHPLANE_SDS": "true"} if sds else {}
    node = parse_node_id(ROUTER, "", metadata, {"istio": "ingressgateway"} if labels is None else labels)
    return resolve_proxy(node, snapshot)


def listeners(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, Listener]:
    return by_name(generated_type(LISTENER_TYPE, proxy, snapshot))


def routes(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, RouteConfiguration]:
    return by_name(generated_type(ROUTE_TYPE, proxy, snapshot))


def unpack(message: Any, packed: Any) -> Any:
    assert packed.Unpack(message)
    return message


def test_http_server_listens_on_its_port_with_rds_http_port(tmp_path: Path) -> None:
    snapshot = mesh(gateway(HTTP_SERVER), HTTPBIN_VS)
    proxy = router(snapshot)
    validate_generated(tmp_path, proxy, snapshot)
    [listener] = listeners(proxy, snapshot).values()
    assert listener.name == "0.0.0.0_80"
    assert (listener.address.socket_address.address, listener.address.socket_address.port_value) == ("0.0.0.0", 80)
    assert not listener.HasField("bind_to_port") and not listener.use_original_dst.value
    [chain] = listener.filter_chains
    hcm = unpack(HttpConnectionManager(), chain.filters[0].typed_config)
    assert hcm.rds.route_config_name == "http.80"
    assert hcm.use_remote_address.value is True
    assert hcm.stat_prefix == "outbound_0.0.0.0_80"


def test_virtual_host_has_istio_gateway_domains_and_the_bound_routes() -> None:
    snapshot = mesh(gateway(HTTP_SERVER), HTTPBIN_VS)
    table = routes(router(snapshot), snapshot)["http.80"]
    [vhost] = table.virtual_hosts
    assert vhost.name == "httpbin.example.com:80"
    assert list(vhost.domains) == ["httpbin.example.com", "httpbin.example.com:*"]
    assert [r.match.prefix for r in vhost.routes] == ["/status", "/delay"]
    assert {r.route.cluster for r in vhost.routes} == {"outbound|8000||httpbin.default.svc.cluster.local"}
    assert vhost.require_tls == VirtualHost.TlsRequirementType.NONE


def test_https_redirect_requires_tls_on_the_server_hosts() -> None:
    redirect = HTTP_SERVER + "    tls: {httpsRedirect: true}\n"
    snapshot = mesh(gateway(redirect))  # no VirtualService bound: still redirected (Istio)
    [vhost] = routes(router(snapshot), snapshot)["http.80"].virtual_hosts
    assert (vhost.name, vhost.require_tls) == ("httpbin.example.com:80", VirtualHost.TlsRequirementType.ALL)


def test_no_bound_virtual_service_gives_istio_s_blackhole_virtual_host() -> None:
    snapshot = mesh(gateway(HTTP_SERVER))
    [vhost] = routes(router(snapshot), snapshot)["http.80"].virtual_hosts
    assert (vhost.name, list(vhost.domains), len(vhost.routes)) == ("blackhole:80", ["*"], 0)


def test_gateways_select_by_labels_and_sidecars_keep_their_own_listeners() -> None:
    snapshot = mesh(gateway(HTTP_SERVER), HTTPBIN_VS)
    assert listeners(router(snapshot, labels={"istio": "egressgateway"}), snapshot) == {}
    sidecar = resolve_proxy(parse_node_id(SIDECAR), snapshot)
    names = set(listeners(sidecar, snapshot))
    assert "virtualOutbound" in names and "0.0.0.0_80" not in names
    assert not any(t.virtual_hosts[0].name == "httpbin.example.com:80" for t in routes(sidecar, snapshot).values())


def test_two_gateways_on_one_http_port_merge_into_one_table() -> None:
    other = gateway("  - port: {number: 80, name: http2, protocol: HTTP}\n    hosts: [other.example.com]\n", "other")
    other_vs = (
        HTTPBIN_VS.replace("httpbin.example.com", "other.example.com")
        .replace("name: httpbin}", "name: other}")
        .replace("httpbin-gateway", "other")
    )
    snapshot = mesh(gateway(HTTP_SERVER), other, HTTPBIN_VS, other_vs)
    proxy = router(snapshot)
    assert list(listeners(proxy, snapshot)) == ["0.0.0.0_80"]
    vhosts = [v.name for v in routes(proxy, snapshot)["http.80"].virtual_hosts]
    assert vhosts == ["httpbin.example.com:80", "other.example.com:80"]


def test_mutual_tls_server_with_files(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path)
    server = (
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [httpbin.example.com]\n"
        f"    tls: {{mode: MUTUAL, serverCertificate: {pki['cert']}, privateKey: {pki['key']}, "
        f"caCertificates: {pki['root']}, subjectAltNames: [client.example]}}\n"
    )
    snapshot = mesh(gateway(server), HTTPBIN_VS)
    proxy = router(snapshot)
    validate_generated(tmp_path, proxy, snapshot)
    listener = listeners(proxy, snapshot)["0.0.0.0_443"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    [chain] = listener.filter_chains
    assert list(chain.filter_chain_match.server_names) == ["httpbin.example.com"]
    context = unpack(DownstreamTlsContext(), chain.transport_socket.typed_config)
    [certificate] = context.common_tls_context.tls_certificates
    assert (certificate.certificate_chain.filename, certificate.private_key.filename) == (
        str(pki["cert"]),
        str(pki["key"]),
    )
    validation = context.common_tls_context.validation_context
    assert validation.trusted_ca.filename == str(pki["root"])
    assert [m.matcher.exact for m in validation.match_typed_subject_alt_names] == ["client.example"]
    assert context.require_client_certificate.value is True
    assert list(context.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]
    hcm = unpack(HttpConnectionManager(), chain.filters[0].typed_config)
    assert hcm.rds.route_config_name == "https.443.https.httpbin-gateway.default"
    assert "https.443.https.httpbin-gateway.default" in routes(proxy, snapshot)


def test_credential_name_references_citadel_sds_secrets() -> None:
    server = (
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [httpbin.example.com]\n"
        "    tls: {mode: MUTUAL, credentialName: httpbin-credential}\n"
    )
    snapshot = mesh(gateway(server), HTTPBIN_VS)
    assert listeners(router(snapshot), snapshot) == {}  # without SDS the secrets cannot be fetched: no listener
    [chain] = listeners(router(snapshot, sds=True), snapshot)["0.0.0.0_443"].filter_chains
    common = unpack(DownstreamTlsContext(), chain.transport_socket.typed_config).common_tls_context
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == ["kubernetes://httpbin-credential"]
    sds = common.tls_certificate_sds_secret_configs[0].sds_config.api_config_source.grpc_services[0]
    assert sds.envoy_grpc.cluster_name == "sds-grpc"
    ca = common.combined_validation_context.validation_context_sds_secret_config
    assert ca.name == "kubernetes://httpbin-credential-cacert"


# Istio's "Ingress Gateway without TLS Termination": a PASSTHROUGH server and the tls route bound to it
PASSTHROUGH_SERVER = (
    "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [nginx.example.com]\n"
    "    tls: {mode: PASSTHROUGH}\n"
)
NGINX_TLS_ROUTE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nginx}
spec:
  hosts: [nginx.example.com]
  gateways: [mygateway]
  tls:
  - match: [{port: 443, sniHosts: [nginx.example.com]}]
    route: [{destination: {host: my-nginx, port: {number: 443}}}]
"""


def test_passthrough_server_routes_by_sni_from_tls_routes(tmp_path: Path) -> None:
    snapshot = mesh(gateway(PASSTHROUGH_SERVER, "mygateway"), NGINX_TLS_ROUTE)
    proxy = router(snapshot)
    validate_generated(tmp_path, proxy, snapshot)
    [chain] = listeners(proxy, snapshot)["0.0.0.0_443"].filter_chains
    assert list(chain.filter_chain_match.server_names) == ["nginx.example.com"]
    assert not chain.HasField("transport_socket")
    proxy_config = unpack(TcpProxy(), chain.filters[0].typed_config)
    assert proxy_config.cluster == "outbound|443||my-nginx.default.svc.cluster.local"


def test_a_gateway_has_the_outbound_clusters_and_no_inbound_ones() -> None:
    snapshot = mesh(gateway(HTTP_SERVER), HTTPBIN_VS)
    names = set(by_name(generated_type(CLUSTER_TYPE, router(snapshot), snapshot)))
    assert "outbound|8000||httpbin.default.svc.cluster.local" in names
    assert not any(name.startswith("inbound|") for name in names)


def test_bound_server_listens_on_its_address_only() -> None:
    snapshot = mesh(gateway(HTTP_SERVER + "    bind: 10.0.0.80\n"), HTTPBIN_VS)
    proxy = router(snapshot)
    [listener] = listeners(proxy, snapshot).values()
    assert (listener.name, listener.address.socket_address.address) == ("10.0.0.80_80", "10.0.0.80")
    assert list(routes(proxy, snapshot)) == ["http.80.10.0.0.80"]


def test_tls_versions_and_cipher_suites() -> None:
    server = (
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [httpbin.example.com]\n"
        "    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, minProtocolVersion: TLSV1_3, "
        "maxProtocolVersion: TLSV1_3, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]}\n"
    )
    snapshot = mesh(gateway(server), HTTPBIN_VS)
    [chain] = listeners(router(snapshot), snapshot)["0.0.0.0_443"].filter_chains
    params = unpack(DownstreamTlsContext(), chain.transport_socket.typed_config).common_tls_context.tls_params
    assert (params.tls_minimum_protocol_version, params.tls_maximum_protocol_version) == (4, 4)  # TLSv1_3
    assert list(params.cipher_suites) == ["ECDHE-RSA-AES128-GCM-SHA256"]


def test_match_gateways_pick_where_a_route_applies() -> None:
    both = HTTPBIN_VS.replace("gateways: [httpbin-gateway]", "gateways: [httpbin-gateway, mesh]").replace(
        "  - match: [{uri: {prefix: /status}}, {uri: {prefix: /delay}}]",
        "  - match: [{uri: {prefix: /status}, gateways: [mesh]}, {uri: {prefix: /delay}}]",
    )
    snapshot = mesh(gateway(HTTP_SERVER), both)
    [vhost] = routes(router(snapshot), snapshot)["http.80"].virtual_hosts
    assert [r.match.prefix for r in vhost.routes] == ["/delay"]  # the /status match is the sidecars' only


def test_server_name_is_the_https_stat_prefix_as_istio_names_it(tmp_path: Path) -> None:
    """Istio uses a server's ``name`` as the stat prefix of a TLS-terminating HTTPS server's HTTP connection
    manager; a plaintext server keeps ``outbound_<address>_<port>`` whatever its name."""
    https = (
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [httpbin.example.com]\n    name: secure\n"
        "    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}\n"
    )
    snapshot = mesh(gateway(HTTP_SERVER + "    name: plain\n" + https), HTTPBIN_VS)
    found = listeners(router(snapshot), snapshot)
    [chain] = found["0.0.0.0_443"].filter_chains
    assert unpack(HttpConnectionManager(), chain.filters[0].typed_config).stat_prefix == "secure"
    [plain] = found["0.0.0.0_80"].filter_chains
    assert unpack(HttpConnectionManager(), plain.filters[0].typed_config).stat_prefix == "outbound_0.0.0.0_80"


def test_ca_crl_is_the_client_validation_crl(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path)
    crl = pki["crl"]
    servers = (
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [httpbin.example.com]\n"
        f"    tls: {{mode: MUTUAL, serverCertificate: {pki['cert']}, privateKey: {pki['key']}, "
        f"caCertificates: {pki['root']}, caCrl: {crl}}}\n"
        "  - port: {number: 8443, name: mesh, protocol: HTTPS}\n    hosts: [httpbin.example.com]\n"
        f"    tls: {{mode: ISTIO_MUTUAL, caCrl: {crl}}}\n"
    )
    snapshot = mesh(gateway(servers), HTTPBIN_VS)
    proxy = router(snapshot, sds=True)
    validate_generated(tmp_path, proxy, snapshot)
    found = listeners(proxy, snapshot)
    [files] = found["0.0.0.0_443"].filter_chains
    common = unpack(DownstreamTlsContext(), files.transport_socket.typed_config).common_tls_context
    assert common.validation_context.crl.filename == str(crl)
    assert common.validation_context.trusted_ca.filename == str(pki["root"])
    [istio] = found["0.0.0.0_8443"].filter_chains
    combined = unpack(DownstreamTlsContext(), istio.transport_socket.typed_config).common_tls_context
    assert combined.combined_validation_context.default_validation_context.crl.filename == str(crl)
