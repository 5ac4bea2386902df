"""Istio's MeshConfig from a file (``pilot --mesh-config mesh.yaml``), with Istio's field names.

Implemented: ``outboundTrafficPolicy.mode`` (ALLOW_ANY, REGISTRY_ONLY), ``rootNamespace``, ``trustDomain`` (these two
win over ``--root-namespace`` / ``--trust-domain`` when the file sets them) and ``enableAutoMtls: true`` (auto mTLS
is always on). Every other MeshConfig field is rejected with "not supported by meshplane yet" and its file:line;
a rejected file changes nothing (the last good one stays in force).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pilot.config.errors import ConfigError, format_path
from pilot.config.origin import Origin
from pilot.config.parse import field_origin
from pilot.config.validate_common import Fields, Problems
from pilot.config.validate_names import dns1123_label_error
from pilot.config.yaml_source import YamlSyntaxError, load_documents
from pilot.model.mesh_settings import MeshSettings, OutboundTrafficPolicy

__all__ = ["MeshConfig", "MeshConfigError", "load_mesh_config", "parse_mesh_config"]

_KNOWN = ("outboundTrafficPolicy", "rootNamespace", "trustDomain", "enableAutoMtls")
_UNSUPPORTED = (  # Istio MeshConfig fields meshplane does not implement yet
    "accessLogEncoding", "accessLogFile", "accessLogFormat", "caCertificates", "certificates", "configSources",
    "connectTimeout", "defaultConfig", "defaultDestinationRuleExportTo", "defaultHttpRetryPolicy",
    "defaultProviders", "defaultServiceExportTo", "defaultVirtualServiceExportTo", "discoverySelectors",
    "dnsRefreshRate", "enableEnvoyAccessLogService", "enablePrometheusMerge", "enableTracing", "extensionProviders",
    "h2UpgradePolicy", "inboundClusterStatName", "inboundTrafficPolicy", "ingressClass", "ingressControllerMode",
    "ingressSelector", "ingressService", "localityLbSetting", "meshMTLS", "outboundClusterStatName",
    "pathNormalization", "protocolDetectionTimeout", "proxyHttpPort", "proxyListenPort", "serviceSettings",
    "tcpKeepalive", "thriftConfig", "tlsDefaults", "trustDomainAliases", "verifyCertificateAtClient",
)  # fmt: skip
_MODES = tuple(mode.value for mode in OutboundTrafficPolicy)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshConfig:
    settings: MeshSettings
    trust_domain: str | None = None  # None: not set in the file (the command-line flag applies)
    root_namespace: str | None = None


class MeshConfigError(ValueError):
    """The file is not a usable MeshConfig; ``errors`` has every problem with its file:line and field path."""

    def __init__(self, errors: tuple[ConfigError, ...]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


def load_mesh_config(path: Path) -> MeshConfig:
    return parse_mesh_config(path.read_text(encoding="utf-8"), str(path))


def parse_mesh_config(text: str, file: str) -> MeshConfig:
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
    config = _read(top, problems) if top is not None else None
    if problems or config is None:
        errors = tuple(
            _error(field_origin(origin, lines, path), format_path(path), message) for path, message in problems.items
        )
        raise MeshConfigError(tuple(sorted(errors, key=lambda error: error.origin.line)))
    return config


def _read(top: Fields, problems: Problems) -> MeshConfig:
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
    return MeshConfig(
        settings=MeshSettings(outbound_traffic_policy=policy),
        trust_domain=top.string("trustDomain"),
        root_namespace=root_namespace,
    )


def _error(origin: Origin, path: str, message: str) -> ConfigError:
    return ConfigError(origin=origin, key=None, path=path, message=message)
