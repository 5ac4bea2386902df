"""The Envoy bootstrap of a meshplane sidecar: who it is, where its admin listens, and how it reaches Pilot.

The sidecar runs in a pod whose traffic iptables captures (``agent``'s ``meshplane pod run``): its node metadata
says ``INTERCEPTION_MODE: REDIRECT``, as Istio's injector writes it, and its admin listens on the pod's
127.0.0.1:15000, unreachable from outside the pod.

Everything else (listeners, routes, clusters, endpoints) comes from Pilot over ADS. The bootstrap is built
one piece per function (``build_node``, ``build_admin``, ``build_xds_cluster``, ...) so that later clusters
(Citadel's SDS, Mixer's policy and telemetry) are one more function each and one more argument to
``build_sidecar_bootstrap``.

The node id follows Istio: ``sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<domain suffix>``; Pilot parses
it with ``pilot.model.build.parse_node_id``.

With Citadel (``citadel``, ``token``, ``citadel_trust``, all or none), the bootstrap adds ``sds-grpc``: HTTP/2 over
TLS to Citadel's SDS endpoint, which must present a certificate for ``citadel.istio-system.svc`` from the given
root, with the workload's token as ``authorization: Bearer ...`` on every request (an upstream header_mutation
filter: Pilot's SDS references stay token-free and the same for every proxy). The node metadata then says
``MESHPLANE_SDS: "true"``, which is how Pilot knows it may configure Citadel's secrets for this proxy.

With Mixer (``mixer``), the bootstrap adds the static cluster ``mixer`` (HTTP/2, gRPC) and says
``MESHPLANE_MIXER: "true"`` in the node metadata, so that Pilot points ext_authz filters and gRPC access loggers at
it. A pod's connections leave from its own IP, so the peer address a destination sidecar sees, and reports to
Mixer, names the calling workload (Mixer resolves workloads by pod IP, as Istio's Mixer did).

The token reaches Envoy one of two ways. Embedded in the bootstrap (``token``: a header_mutation filter), so a
bootstrap file is a secret: write it 0600; Envoy's admin ``/config_dump`` shows it too, which is why admin belongs on
the pod's 127.0.0.1 (as Istio does) and nowhere another workload can reach; a new token needs a new bootstrap and a
restart. Or (``token_secret``) in a file-based SDS document of its own (``write_token_secret``) that the
credential_injector filter reads as a generic secret: Envoy reloads it when the document is replaced, so a projected
token that the kubelet refreshes reaches Citadel with no restart and no dropped connection (``agent.token_follower``
rewrites the document), and ``/config_dump`` shows it ``[redacted]``. Citadel's trust follows its bundle file
through a file-based SDS secret (``write_citadel_trust``), so a root rotation needs no restart; workload
certificates and the mesh trust bundle (``ROOTCA``) rotate over SDS.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal, get_args

from cryptography import x509
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import address_pb2, backoff_pb2, base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.overload.v3 import overload_pb2
from envoy.extensions.filters.http.credential_injector.v3 import credential_injector_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.http.upstream_codec.v3 import upstream_codec_pb2
from envoy.extensions.http.injected_credentials.generic.v3 import generic_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import downstream_connections_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, json_format, struct_pb2

from meshplane.identity import CITADEL_SERVER_NAME, SDS_CLUSTER, SDS_NODE_METADATA
from meshplane.mixer_names import MIXER_CLUSTER, MIXER_NODE_METADATA
from meshplane.names import ADMIN_PORT, INTERCEPTION_MODE_METADATA, INTERCEPTION_REDIRECT, XDS_CLUSTER

CITADEL_TRUST_SECRET = "citadel-trust-bundle"  # the file-based SDS secret a sidecar verifies Citadel with

__all__ = [
    "CITADEL_TRUST_SECRET",
    "DEFAULT_ADMIN_ADDRESS",
    "DEFAULT_PILOT_ADDRESS",
    "TOKEN_SECRET",
    "XDS_MODES",
    "BootstrapError",
    "HostPort",
    "ProxyType",
    "XdsMode",
    "bootstrap_to_json",
    "build_admin",
    "build_dynamic_resources",
    "build_mixer_cluster",
    "build_node",
    "build_overload_manager",
    "build_sds_cluster",
    "build_sidecar_bootstrap",
    "build_xds_cluster",
    "parse_host_port",
    "sidecar_node_id",
    "write_citadel_trust",
    "write_token_secret",
]

XdsMode = Literal["sotw", "delta"]
ProxyType = Literal["sidecar", "router"]  # Istio's node types: a pod's sidecar, a gateway
XDS_MODES: tuple[XdsMode, ...] = get_args(XdsMode)
DEFAULT_PILOT_ADDRESS = "127.0.0.1:15010"
DEFAULT_ADMIN_ADDRESS = "127.0.0.1"  # inside the pod: Istio's admin address

XDS_CONNECT_TIMEOUT_SECONDS = 1.0  # Pilot is local: fail fast and retry
XDS_RETRY_BASE_SECONDS = 0.2  # Envoy's default is 1 s base, 10 s max: far too slow when Pilot restarts
XDS_RETRY_MAX_SECONDS = 1.0
XDS_KEEPALIVE_TIME_SECONDS = 300  # Istio's value for its xds-grpc cluster
MIXER_CONNECT_TIMEOUT_SECONDS = 1.0  # Mixer is local too; ext_authz's own 0.5 s timeout bounds each check
MAX_DOWNSTREAM_CONNECTIONS = 1_000_000  # a sidecar has no business limiting its app; the limit only silences a warning

_API_TYPES: dict[XdsMode, config_source_pb2.ApiConfigSource.ApiType.ValueType] = {
    "sotw": config_source_pb2.ApiConfigSource.GRPC,
    "delta": config_source_pb2.ApiConfigSource.DELTA_GRPC,
}
_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_HEADER_MUTATION_FILTER = "envoy.filters.http.header_mutation"
_CREDENTIAL_INJECTOR_FILTER = "envoy.filters.http.credential_injector"
_GENERIC_CREDENTIAL = "envoy.http.injected_credentials.generic"
TOKEN_SECRET = "citadel-token"  # the file-based SDS secret holding ``Bearer <token>`` (``write_token_secret``)
_UPSTREAM_CODEC_FILTER = "envoy.filters.http.upstream_codec"
_TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
_DOWNSTREAM_CONNECTIONS_MONITOR = "envoy.resource_monitors.global_downstream_max_connections"


class BootstrapError(ValueError):
    """A bootstrap argument is invalid; the message names the argument."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    host: str  # an IP literal (IPv6 without brackets) or a DNS name
    port: int

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: str, *, argument: str) -> HostPort:
    """``127.0.0.1:15010``, ``[::1]:15010`` or ``istiod.istio-system:15010``."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise BootstrapError(f"{argument}: expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise BootstrapError(f"{argument}: an IPv6 address must be in brackets, like [::1]:15010; got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise BootstrapError(f"{argument}: port must be 1-65535, got {port}")
    return HostPort(host=host, port=port)


def _check_address(address: str, *, argument: str = "address", what: str = "the workload's IP address") -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise BootstrapError(f"{argument}: expected {what}, got {address!r}") from None


def _check_name(value: str, *, argument: str, dots_allowed: bool) -> str:
    if not value or "~" in value or any(c.isspace() for c in value) or (not dots_allowed and "." in value):
        allowed = "" if dots_allowed else ", '.'"
        raise BootstrapError(f"{argument}: must be non-empty without whitespace, '~'{allowed}; got {value!r}")
    return value


def sidecar_node_id(
    *, workload: str, namespace: str, address: str, domain_suffix: str, proxy_type: ProxyType = "sidecar"
) -> str:
    """Istio's node id: ``sidecar~10.89.0.21~reviews-v1.default~default.svc.cluster.local``; a gateway's has the
    type ``router``."""
    return f"{proxy_type}~{address}~{workload}.{namespace}~{namespace}.svc.{domain_suffix}"


def _meshplane_version() -> str:
    try:
        return metadata.version("meshplane")
    except metadata.PackageNotFoundError:
        return "dev"


# keys build_node sets depending on its arguments (so also refused as extra metadata when not set this time)
_MESHPLANE_METADATA = frozenset({SDS_NODE_METADATA, MIXER_NODE_METADATA, "SERVICE_ACCOUNT", "LABELS"})


def build_node(
    *,
    workload: str,
    namespace: str,
    address: str,
    domain_suffix: str,
    sds: bool = False,
    mixer: bool = False,
    service_account: str | None = None,
    labels: Mapping[str, str] | None = None,
    proxy_type: ProxyType = "sidecar",
    extra_metadata: Mapping[str, str] | None = None,
) -> base_pb2.Node:
    """The node Envoy announces on its first xDS request. Metadata uses Istio's keys (``NAMESPACE``, ...);
    ``ISTIO_VERSION`` carries the meshplane release that wrote the bootstrap; ``sds``: the bootstrap has the
    ``sds-grpc`` cluster (``MESHPLANE_SDS: "true"``); ``mixer``: it has the ``mixer`` cluster
    (``MESHPLANE_MIXER: "true"``); ``INTERCEPTION_MODE`` is always ``REDIRECT`` (the pod's iptables capture);
    ``service_account`` and ``labels``: Istio's ``SERVICE_ACCOUNT`` and ``LABELS``, informational (Pilot takes a
    workload's identity and labels from its WorkloadEntry, as Istio does for a VM); ``proxy_type`` ``router``: a
    gateway, no traffic capture (no ``INTERCEPTION_MODE``), selected by Gateways through ``LABELS`` when it has no
    workload in the registry; ``extra_metadata``: more string metadata, as Istio's ``ISTIO_META_<KEY>`` variables
    give it (e.g. ``AUTO_REGISTER_GROUP``), never a key set here (BootstrapError)."""
    node = base_pb2.Node(
        id=sidecar_node_id(
            workload=workload,
            namespace=namespace,
            address=address,
            domain_suffix=domain_suffix,
            proxy_type=proxy_type,
        ),
        cluster=f"{workload}.{namespace}",
    )
    node.metadata.update(
        {
            "ISTIO_VERSION": _meshplane_version(),
            "NAMESPACE": namespace,
            "WORKLOAD_NAME": workload,
            "INSTANCE_IPS": address,
            "DNS_DOMAIN": f"{namespace}.svc.{domain_suffix}",
        }
    )
    if sds:
        node.metadata.update({SDS_NODE_METADATA: "true"})
    if mixer:
        node.metadata.update({MIXER_NODE_METADATA: "true"})
    if proxy_type == "sidecar":
        node.metadata.update({INTERCEPTION_MODE_METADATA: INTERCEPTION_REDIRECT})
    if service_account is not None:
        node.metadata.update({"SERVICE_ACCOUNT": service_account})
    if labels:
        node.metadata.update({"LABELS": dict(sorted(labels.items()))})
    for key, value in sorted((extra_metadata or {}).items()):
        if not key or key in node.metadata.fields or key in _MESHPLANE_METADATA:
            raise BootstrapError(f"node metadata {key!r}: meshplane sets that key itself; choose another")
        node.metadata.update({key: value})
    return node


def _socket_address(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=host, port_value=port))


def build_admin(*, address: str = DEFAULT_ADMIN_ADDRESS, port: int = ADMIN_PORT) -> bootstrap_pb2.Admin:
    """Envoy's admin, on the pod's loopback by default (see the module doc)."""
    return bootstrap_pb2.Admin(address=_socket_address(address, port))


def _grpc_cluster(name: str, target: HostPort, *, connect_timeout: float) -> cluster_pb2.Cluster:
    """A plaintext HTTP/2 (gRPC) cluster to one ``host:port``: STATIC for an IP and STRICT_DNS for a name, with
    TCP keepalive."""
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC if target.is_ip else cluster_pb2.Cluster.STRICT_DNS,
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(address=_socket_address(target.host, target.port))
                        )
                    ]
                )
            ],
        ),
    )
    cluster.connect_timeout.FromNanoseconds(int(connect_timeout * 1e9))
    cluster.upstream_connection_options.tcp_keepalive.keepalive_time.value = XDS_KEEPALIVE_TIME_SECONDS
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[_HTTP_PROTOCOL_OPTIONS].Pack(options)
    return cluster


def build_xds_cluster(pilot: HostPort) -> cluster_pb2.Cluster:
    """``xds-grpc``: HTTP/2 to Pilot."""
    return _grpc_cluster(XDS_CLUSTER, pilot, connect_timeout=XDS_CONNECT_TIMEOUT_SECONDS)


def build_mixer_cluster(mixer: HostPort) -> cluster_pb2.Cluster:
    """``mixer``: HTTP/2 (gRPC: ext_authz checks and access-log streams) to Mixer, plaintext like ``xds-grpc``."""
    return _grpc_cluster(MIXER_CLUSTER, mixer, connect_timeout=MIXER_CONNECT_TIMEOUT_SECONDS)


def _check_token(token: str) -> str:
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        # never echo the value: it is a credential
        raise BootstrapError(
            f"token: must be non-empty printable text without whitespace ({len(token)} characters given)"
        )
    return token


def write_citadel_trust(document: Path, root_cert: Path) -> Path:
    """Write the file-based SDS document through which a sidecar trusts Citadel: one Secret named
    ``CITADEL_TRUST_SECRET`` whose validation context names the trust bundle ``root_cert`` by file.

    Envoy's answer for rotating the trust of a control-plane connection (its docs: "certificate rotation for xDS
    gRPC connection"): Envoy watches the bundle's directory and reloads the bundle when Citadel rewrites it during
    a root rotation, so a sidecar started before the rotation can still reconnect to Citadel afterwards. (Inline
    bytes, or a file on a static cluster, are read once.) Returns ``document``, written 0644 (no secrets in it)."""
    try:
        x509.load_pem_x509_certificates(root_cert.read_bytes())
    except OSError as exc:
        raise BootstrapError(f"root_cert: cannot read {root_cert}: {exc.strerror}") from None
    except ValueError as exc:
        raise BootstrapError(f"root_cert: {root_cert} is not a PEM certificate bundle ({exc})") from None
    secret = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": CITADEL_TRUST_SECRET,
        "validation_context": {"trusted_ca": {"filename": str(root_cert.resolve())}},
    }
    # Atomically, never through a link: whoever could swap this file would choose whom the sidecar trusts.
    temporary = document.with_name(f".{document.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps({"resources": [secret]}, indent=2) + "\n")
    temporary.replace(document)
    return document


def write_token_secret(document: Path, token: str) -> Path:
    """Write the file-based SDS document that holds the workload's token: one generic Secret named ``TOKEN_SECRET``
    whose value is ``Bearer <token>``, written 0600 (it is a credential) by a rename, which Envoy watches for: a
    sidecar started with ``token_secret`` sends the new token on its next request to Citadel, with no restart.
    Envoy's admin shows the secret as ``[redacted]``."""
    _check_token(token)
    secret = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": TOKEN_SECRET,
        "generic_secret": {"secret": {"inline_string": f"Bearer {token}"}},
    }
    temporary = document.with_name(f".{document.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps({"resources": [secret]}) + "\n")
    temporary.replace(document)
    return document


def _authorization_filter(
    options: http_protocol_options_pb2.HttpProtocolOptions, token: str | None, token_secret: Path | None
) -> None:
    """``authorization: Bearer <token>`` on every request to Citadel: fixed (header_mutation), or from the file-based
    SDS secret ``token_secret`` (credential_injector, generic credential), which follows the token file."""
    if token_secret is not None:
        credential = generic_pb2.Generic(credential=secret_pb2.SdsSecretConfig(name=TOKEN_SECRET))
        credential.credential.sds_config.path_config_source.path = str(token_secret.resolve())
        credential.credential.sds_config.resource_api_version = config_source_pb2.ApiVersion.V3
        injector = credential_injector_pb2.CredentialInjector(overwrite=True)
        injector.credential.name = _GENERIC_CREDENTIAL
        injector.credential.typed_config.Pack(credential)
        options.http_filters.add(name=_CREDENTIAL_INJECTOR_FILTER).typed_config.Pack(injector)
        return
    assert token is not None
    authorization = mutation_rules_pb2.HeaderMutation(
        append=base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key="authorization", value=f"Bearer {token}"),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
    )
    mutation = header_mutation_pb2.HeaderMutation(
        mutations=header_mutation_pb2.Mutations(request_mutations=[authorization])
    )
    options.http_filters.add(name=_HEADER_MUTATION_FILTER).typed_config.Pack(mutation)


def build_sds_cluster(
    citadel: HostPort, *, token: str | None = None, citadel_trust: Path, token_secret: Path | None = None
) -> cluster_pb2.Cluster:
    """``sds-grpc``: HTTP/2 over TLS to Citadel (its certificate must be for ``citadel.istio-system.svc`` and chain
    to a root of the bundle named by the ``citadel_trust`` document, see ``write_citadel_trust``), sending
    ``authorization: Bearer <token>`` on every request: ``token`` through the upstream header_mutation filter, or
    (exactly one of the two) the token in the ``token_secret`` document (``write_token_secret``) through the
    credential_injector filter, which Envoy reloads when the document is replaced."""
    if (token is None) == (token_secret is None):
        raise BootstrapError("token, token_secret: exactly one is needed for Citadel")
    if token is not None:
        _check_token(token)
    if token_secret is not None and not token_secret.is_file():
        raise BootstrapError(f"token_secret: {token_secret} does not exist (write it with write_token_secret)")
    if not citadel_trust.is_file():
        raise BootstrapError(f"citadel_trust: {citadel_trust} does not exist (write it with write_citadel_trust)")
    cluster = cluster_pb2.Cluster(
        name=SDS_CLUSTER,
        type=cluster_pb2.Cluster.STATIC if citadel.is_ip else cluster_pb2.Cluster.STRICT_DNS,
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=SDS_CLUSTER,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(
                                address=_socket_address(citadel.host, citadel.port)
                            )
                        )
                    ]
                )
            ],
        ),
    )
    cluster.connect_timeout.FromNanoseconds(int(XDS_CONNECT_TIMEOUT_SECONDS * 1e9))
    cluster.upstream_connection_options.tcp_keepalive.keepalive_time.value = XDS_KEEPALIVE_TIME_SECONDS

    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    _authorization_filter(options, token, token_secret)
    options.http_filters.add(name=_UPSTREAM_CODEC_FILTER).typed_config.Pack(upstream_codec_pb2.UpstreamCodec())
    cluster.typed_extension_protocol_options[_HTTP_PROTOCOL_OPTIONS].Pack(options)

    validation = common_pb2.CertificateValidationContext(
        match_typed_subject_alt_names=[
            common_pb2.SubjectAltNameMatcher(
                san_type=common_pb2.SubjectAltNameMatcher.DNS,
                matcher=string_pb2.StringMatcher(exact=CITADEL_SERVER_NAME),
            )
        ],
    )
    trust = secret_pb2.SdsSecretConfig(name=CITADEL_TRUST_SECRET)
    trust.sds_config.path_config_source.path = str(citadel_trust.resolve())
    trust.sds_config.resource_api_version = config_source_pb2.ApiVersion.V3
    combined = tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
        default_validation_context=validation, validation_context_sds_secret_config=trust
    )
    tls = tls_pb2.UpstreamTlsContext(
        sni=CITADEL_SERVER_NAME,
        common_tls_context=tls_pb2.CommonTlsContext(combined_validation_context=combined, alpn_protocols=["h2"]),
    )
    cluster.transport_socket.name = _TLS_TRANSPORT_SOCKET
    cluster.transport_socket.typed_config.Pack(tls)
    return cluster


def _ads_config_source() -> config_source_pb2.ConfigSource:
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()
    # 0s (Istio's choice): wait for Pilot however long it takes, so /ready really means "has config".
    source.initial_fetch_timeout.FromSeconds(0)
    return source


def build_dynamic_resources(xds_mode: XdsMode) -> bootstrap_pb2.Bootstrap.DynamicResources:
    """ADS to ``xds-grpc`` (SotW or delta); CDS and LDS over ADS. Reconnects to Pilot within about a second."""
    back_off = backoff_pb2.BackoffStrategy()
    back_off.base_interval.FromNanoseconds(int(XDS_RETRY_BASE_SECONDS * 1e9))
    back_off.max_interval.FromNanoseconds(int(XDS_RETRY_MAX_SECONDS * 1e9))
    grpc = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
            cluster_name=XDS_CLUSTER, retry_policy=base_pb2.RetryPolicy(retry_back_off=back_off)
        )
    )
    ads = config_source_pb2.ApiConfigSource(
        api_type=_API_TYPES[xds_mode],
        transport_api_version=config_source_pb2.V3,
        grpc_services=[grpc],
        set_node_on_first_message_only=True,
    )
    return bootstrap_pb2.Bootstrap.DynamicResources(
        ads_config=ads, cds_config=_ads_config_source(), lds_config=_ads_config_source()
    )


def build_overload_manager() -> overload_pb2.OverloadManager:
    """A global downstream connection limit through the overload manager (what Envoy recommends, instead of the
    deprecated ``overload.global_downstream_max_connections`` runtime key): without one Envoy warns at start."""
    monitor = downstream_connections_pb2.DownstreamConnectionsConfig(
        max_active_downstream_connections=MAX_DOWNSTREAM_CONNECTIONS
    )
    packed = any_pb2.Any()
    packed.Pack(monitor)
    return overload_pb2.OverloadManager(
        resource_monitors=[overload_pb2.ResourceMonitor(name=_DOWNSTREAM_CONNECTIONS_MONITOR, typed_config=packed)]
    )


def _build_layered_runtime() -> bootstrap_pb2.LayeredRuntime:
    """An empty static layer and an admin layer, so ``/runtime_modify`` works for debugging."""
    return bootstrap_pb2.LayeredRuntime(
        layers=[
            bootstrap_pb2.RuntimeLayer(name="static", static_layer=struct_pb2.Struct()),
            bootstrap_pb2.RuntimeLayer(name="admin", admin_layer=bootstrap_pb2.RuntimeLayer.AdminLayer()),
        ]
    )


def build_sidecar_bootstrap(
    *,
    workload: str,
    namespace: str = "default",
    address: str,
    pilot: str = DEFAULT_PILOT_ADDRESS,
    xds_mode: XdsMode = "sotw",
    domain_suffix: str = "cluster.local",
    admin_port: int = ADMIN_PORT,
    citadel: str | None = None,
    token: str | None = None,
    citadel_trust: Path | None = None,
    token_secret: Path | None = None,
    mixer: str | None = None,
    admin_address: str = DEFAULT_ADMIN_ADDRESS,
    service_account: str | None = None,
    labels: Mapping[str, str] | None = None,
    proxy_type: ProxyType = "sidecar",
    node_metadata: Mapping[str, str] | None = None,
) -> bootstrap_pb2.Bootstrap:
    """The bootstrap of the sidecar of ``workload`` (a WorkloadEntry name) in the pod at ``address``, fed by
    ``pilot``.

    ``citadel`` (Citadel's SDS address), ``token`` (the workload's Citadel token) and ``citadel_trust`` (the
    document ``write_citadel_trust`` wrote for the bundle Citadel's serving certificate chains to, e.g.
    ``<ca-dir>/trust-bundle.pem``) go together (``token_secret``, the document ``write_token_secret`` wrote, may
    stand for ``token``: the sidecar then follows that document when the token is refreshed): with them the
    sidecar gets its identity over SDS and Pilot configures mutual TLS for it. ``mixer``: Mixer's gRPC address;
    the sidecar gets the ``mixer`` cluster and says so in its node metadata. ``admin_address``: where admin
    listens (the pod's 127.0.0.1); ``service_account``, ``labels``: node metadata (see ``build_node``);
    ``proxy_type`` ``router``: a gateway's bootstrap (Pilot gives it the listeners of the Gateways selecting it).
    ``node_metadata``: more node metadata (see ``build_node``)."""
    _check_name(workload, argument="workload", dots_allowed=False)
    _check_name(namespace, argument="namespace", dots_allowed=False)
    _check_name(domain_suffix, argument="domain_suffix", dots_allowed=True)
    address = _check_address(address)
    pilot_address = parse_host_port(pilot, argument="pilot")
    if xds_mode not in XDS_MODES:
        raise BootstrapError(f"xds_mode: expected one of {', '.join(XDS_MODES)}; got {xds_mode!r}")
    if not 0 < admin_port < 65536:
        raise BootstrapError(f"admin_port: must be 1-65535, got {admin_port}")
    clusters = [build_xds_cluster(pilot_address)]
    has_token = token is not None or token_secret is not None
    given = {"citadel": citadel is not None, "token": has_token, "citadel_trust": citadel_trust is not None}
    if any(given.values()):
        missing = [name for name, present in given.items() if not present]
        if missing:
            raise BootstrapError(
                f"{missing[0]}: citadel, token and citadel_trust go together (missing: {', '.join(missing)})"
            )
        assert citadel is not None and citadel_trust is not None
        citadel_address = parse_host_port(citadel, argument="citadel")
        clusters.append(
            build_sds_cluster(citadel_address, token=token, citadel_trust=citadel_trust, token_secret=token_secret)
        )
    sds = len(clusters) > 1
    if mixer is not None:
        clusters.append(build_mixer_cluster(parse_host_port(mixer, argument="mixer")))
    return bootstrap_pb2.Bootstrap(
        node=build_node(
            workload=workload,
            namespace=namespace,
            address=address,
            domain_suffix=domain_suffix,
            sds=sds,
            mixer=mixer is not None,
            service_account=service_account,
            labels=labels,
            proxy_type=proxy_type,
            extra_metadata=node_metadata,
        ),
        admin=build_admin(
            address=_check_address(admin_address, argument="admin_address", what="an IP address"), port=admin_port
        ),
        static_resources=bootstrap_pb2.Bootstrap.StaticResources(clusters=clusters),
        dynamic_resources=build_dynamic_resources(xds_mode),
        layered_runtime=_build_layered_runtime(),
        overload_manager=build_overload_manager(),
    )


def bootstrap_to_json(bootstrap: bootstrap_pb2.Bootstrap) -> str:
    """The bootstrap as Envoy JSON with Envoy's (snake_case) field names, as in Envoy's docs."""
    return str(json_format.MessageToJson(bootstrap, preserving_proto_field_name=True, indent=2)) + "\n"
