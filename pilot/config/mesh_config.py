"""Istio's MeshConfig from a file (``pilot --mesh-config mesh.yaml``), with Istio's field names.

Implemented: ``outboundTrafficPolicy.mode`` (ALLOW_ANY, REGISTRY_ONLY), ``rootNamespace``, ``trustDomain`` (these two
win over ``--root-namespace`` / ``--trust-domain`` when the file sets them), ``enableAutoMtls: true`` (auto mTLS
is always on), ``extensionProviders`` (``pilot.config.mesh_extension_providers`` and ``mesh_telemetry_providers``:
the types it reads), the telemetry settings of ``pilot.config.mesh_telemetry`` (``defaultProviders``,
``accessLogFile``, ``accessLogFormat``, ``accessLogEncoding: TEXT``, ``enableTracing``,
``defaultConfig.tracing.sampling``) and ``defaultConfig``'s ``concurrency`` and ``proxyMetadata`` (the lowest layer
of every proxy's ProxyConfig, ``pilot.model.proxy_config``; read when a proxy starts). Every
other MeshConfig field is rejected with "not supported by meshplane yet" and its file:line; a rejected file
changes nothing (the last good one stays in force).

Watched live by ``pilot.config.mesh_config_file``: ``outboundTrafficPolicy`` changes are pushed; ``trustDomain`` and
``rootNamespace`` name the mesh for every component (Citadel's certificates, Mixer's identities), so an edit that
changes them while Pilot runs is rejected (``running``): they change with a restart of the control plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshplane.proxy_environment import PROXY_CONFIG_FIELDS, agent_variable_problem, environment_name_error
from pilot.config.errors import ConfigError, format_path, quote
from pilot.config.mesh_extension_providers import read_extension_providers
from pilot.config.mesh_telemetry import TELEMETRY_MESH_FIELDS, read_telemetry_settings
from pilot.config.origin import Origin
from pilot.config.parse import field_origin
from pilot.config.types import frozen_labels
from pilot.config.validate_common import INT32_MAX, Fields, Problems
from pilot.config.validate_names import dns1123_label_error, trust_domain_error
from pilot.config.yaml_source import YamlSyntaxError, load_documents
from pilot.model.mesh_settings import DEFAULT_MESH_SETTINGS, MeshSettings, OutboundTrafficPolicy
from pilot.model.proxy_config import NO_PROXY_DEFAULTS, ProxyDefaults
from pilot.model.types import DEFAULT_ROOT_NAMESPACE, DEFAULT_TRUST_DOMAIN

__all__ = [
    "DEFAULT_MESH_CONFIG",
    "DEFAULT_MESH_NAMES",
    "MeshConfig",
    "MeshConfigError",
    "MeshNames",
    "load_mesh_config",
    "parse_mesh_config",
]

_KNOWN = (
    "outboundTrafficPolicy", "rootNamespace", "trustDomain", "enableAutoMtls", "extensionProviders", "defaultConfig",
    *TELEMETRY_MESH_FIELDS,
)  # fmt: skip
_UNSUPPORTED = (  # Istio MeshConfig fields meshplane does not implement yet
    "caCertificates", "certificates", "configSources",
    "connectTimeout", "defaultDestinationRuleExportTo", "defaultHttpRetryPolicy",
    "defaultServiceExportTo", "defaultVirtualServiceExportTo", "discoverySelectors",
    "dnsRefreshRate", "enableEnvoyAccessLogService", "enablePrometheusMerge",
    "h2UpgradePolicy", "inboundClusterStatName", "inboundTrafficPolicy", "ingressClass", "ingressControllerMode",
    "ingressSelector", "ingressService", "localityLbSetting", "meshMTLS", "outboundClusterStatName",
    "pathNormalization", "protocolDetectionTimeout", "proxyHttpPort", "proxyListenPort", "serviceSettings",
    "tcpKeepalive", "thriftConfig", "tlsDefaults", "trustDomainAliases", "verifyCertificateAtClient",
)  # fmt: skip
_MODES = tuple(mode.value for mode in OutboundTrafficPolicy)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshNames:
    """What every component of the mesh must agree on: the file's ``trustDomain`` and ``rootNamespace``, or the
    command-line flags' values where the file does not set them."""

    trust_domain: str = DEFAULT_TRUST_DOMAIN
    root_namespace: str = DEFAULT_ROOT_NAMESPACE


DEFAULT_MESH_NAMES = MeshNames()


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshConfig:
    settings: MeshSettings = DEFAULT_MESH_SETTINGS
    names: MeshNames = DEFAULT_MESH_NAMES

    def describe(self) -> dict[str, object]:
        """The mesh config in force with Istio's field names (``/debug/mesh``)."""
        described: dict[str, object] = {
            "outboundTrafficPolicy": {"mode": self.settings.outbound_traffic_policy.value},
            "rootNamespace": self.names.root_namespace,
            "trustDomain": self.names.trust_domain,
            "enableAutoMtls": True,
        }
        if self.settings.extension_providers:
            described["extensionProviders"] = [
                {"name": provider.name, "type": provider.kind} for provider in self.settings.extension_providers
            ]
        defaults = self.settings.proxy_defaults
        default_config: dict[str, object] = {}
        if defaults.concurrency is not None:
            default_config["concurrency"] = defaults.concurrency
        if defaults.environment_variables:
            default_config["proxyMetadata"] = dict(defaults.environment_variables)
        if default_config:
            described["defaultConfig"] = default_config
        return described


class MeshConfigError(ValueError):
    """The file is not a usable MeshConfig; ``errors`` has every problem with its file:line and field path."""

    def __init__(self, errors: tuple[ConfigError, ...]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


DEFAULT_MESH_CONFIG = MeshConfig()


def load_mesh_config(path: Path, *, defaults: MeshNames = DEFAULT_MESH_NAMES) -> MeshConfig:
    """The file's MeshConfig (``MeshConfigError`` when it is not usable, or cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        error = _error(Origin(file=str(path), line=1), "", f"cannot read the mesh config: {exc}")
        raise MeshConfigError((error,)) from None
    return parse_mesh_config(text, str(path), defaults=defaults)


def parse_mesh_config(
    text: str, file: str, *, defaults: MeshNames = DEFAULT_MESH_NAMES, running: MeshNames | None = None
) -> MeshConfig:
    """``defaults``: the names where the file does not set them (the flags). ``running``: the names in force when
    Pilot already runs with them; an edit that changes them is rejected (they change with a restart)."""
    origin = Origin(file=file, line=1)
    try:
        documents = load_documents(text)
    except YamlSyntaxError as exc:
        raise MeshConfigError((_error(Origin(file=file, line=exc.line), "", exc.message),)) from None
    if len(documents) > 1:
        raise MeshConfigError((_error(origin, "", "a mesh config file holds one document"),))
    root = documents[0].root if documents else {}
    lines = documents[0].field_lines if documents else {}
    problems = Problems()
    top = Fields.open(root, (), problems, known=_KNOWN, unsupported=_UNSUPPORTED)
    config = _read(top, problems, defaults) if top is not None else None
    if config is not None and running is not None and top is not None:
        _check_running_names(top, config.names, running)
    if problems or config is None:
        errors = tuple(
            _error(field_origin(origin, lines, path), format_path(path), message) for path, message in problems.items
        )
        raise MeshConfigError(tuple(sorted(errors, key=lambda error: error.origin.line)))
    return config


def _read(top: Fields, problems: Problems, defaults: MeshNames) -> MeshConfig:
    policy = OutboundTrafficPolicy.ALLOW_ANY
    outbound = top.mapping("outboundTrafficPolicy", known=("mode",))
    if outbound is not None:
        mode = outbound.enum("mode", _MODES)
        if mode is not None:
            policy = OutboundTrafficPolicy(mode)
    if top.boolean("enableAutoMtls") is False:
        top.report("enableAutoMtls", "not supported by meshplane yet: auto mTLS is always on")
    root_namespace = top.string("rootNamespace")
    if root_namespace is not None:
        problems.add_if(top.at("rootNamespace"), dns1123_label_error(root_namespace, "rootNamespace"))
    trust_domain = top.string("trustDomain")
    if trust_domain is not None:
        problems.add_if(top.at("trustDomain"), trust_domain_error(trust_domain, "trustDomain"))
    names = MeshNames(
        trust_domain=trust_domain or defaults.trust_domain, root_namespace=root_namespace or defaults.root_namespace
    )
    default_config = top.mapping("defaultConfig", known=PROXY_CONFIG_FIELDS)
    settings = MeshSettings(
        outbound_traffic_policy=policy,
        extension_providers=read_extension_providers(top),
        **read_telemetry_settings(top, default_config),
        proxy_defaults=_default_config(default_config),
    )
    return MeshConfig(settings=settings, names=names)


_DEFAULT_CONFIG_READ = ("concurrency", "proxyMetadata", "tracing")
_DEFAULT_CONFIG_REASON = (
    "not supported by meshplane yet (defaultConfig: concurrency, proxyMetadata and tracing.sampling only; on "
    "Kubernetes a pod's proxy.istio.io/config annotation also takes holdApplicationUntilProxyStarts)"
)


def _default_config(config: Fields | None) -> ProxyDefaults:
    """``defaultConfig``: the ProxyConfig every proxy starts from (``pilot.model.proxy_config``, the lowest layer);
    its ``tracing`` is read by ``pilot.config.mesh_telemetry``."""
    if config is None:
        return NO_PROXY_DEFAULTS
    for name in sorted(set(config.node) - set(_DEFAULT_CONFIG_READ)):
        if name in PROXY_CONFIG_FIELDS:
            config.report(name, _DEFAULT_CONFIG_REASON)
    variables = config.string_map("proxyMetadata") or {}
    for name in variables:
        problem = environment_name_error(name) or agent_variable_problem(name)
        config.problems.add_if(config.at("proxyMetadata", name), problem)
    return ProxyDefaults(
        concurrency=config.integer("concurrency", minimum=0, maximum=INT32_MAX),
        environment_variables=frozen_labels(variables),
    )


def _check_running_names(top: Fields, names: MeshNames, running: MeshNames) -> None:
    for field, new, old in (
        ("trustDomain", names.trust_domain, running.trust_domain),
        ("rootNamespace", names.root_namespace, running.root_namespace),
    ):
        if new != old:
            top.report(
                field,
                f"changed from {quote(old)} to {quote(new)} while Pilot runs: {field} names the mesh for every "
                "component (Citadel's certificates, Mixer); restart the control plane with the new value",
            )


def _error(origin: Origin, path: str, message: str) -> ConfigError:
    return ConfigError(origin=origin, key=None, path=path, message=message)
