"""Parse config into validated resources, rejections and warnings: one decoded object, or one file's text.

``parse_object(mapping, origin, field_lines)`` validates one already-decoded object (a YAML document, later a
Kubernetes object from the API server): a resource, a rejection with every problem found (each at the line of its
field when ``field_lines`` are known, else at the origin alone), or, for a kind meshplane does not read, a skip.
``parse_config_text(text, file)`` is the YAML reader: it decodes the file and parses each document with it.

Every document is validated on its own (one bad resource never affects another) and every problem of a document
is reported at once. The kinds read: ServiceEntry, WorkloadEntry, WorkloadGroup, DestinationRule, VirtualService,
Gateway, Sidecar, EnvoyFilter, ProxyConfig (``networking.istio.io``; EnvoyFilter in v1alpha3 only and ProxyConfig
in v1beta1 only, as in Istio), PeerAuthentication, AuthorizationPolicy, RequestAuthentication
(``security.istio.io``), Telemetry (``telemetry.istio.io``), and Mixer's AccessList and RateLimit
(``mixer.meshplane.io/v1``); each only in its API group's versions. Other kinds (WasmPlugin, ConfigMaps, ...) are
skipped with a warning. A ``kind: List`` document (``kubectl get -o yaml``) is read item by item. A YAML syntax
error makes the whole file unusable: ``ParsedFile.file_error``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from pilot.config.errors import ConfigError, FieldPath, format_path
from pilot.config.istio_api import ISTIO_MESSAGES
from pilot.config.origin import Origin
from pilot.config.types import ConfigKey, ConfigMeta, Kind, Resource, frozen_labels
from pilot.config.validate_authorization_policy import (
    AUTHORIZATION_POLICY_FIELDS,
    AUTHORIZATION_POLICY_UNSUPPORTED,
    validate_authorization_policy,
)
from pilot.config.validate_common import Fields, Problems, describe
from pilot.config.validate_destination_rule import (
    DESTINATION_RULE_FIELDS,
    DESTINATION_RULE_UNSUPPORTED,
    validate_destination_rule,
)
from pilot.config.validate_envoy_filter import ENVOY_FILTER_FIELDS, validate_envoy_filter
from pilot.config.validate_gateway import GATEWAY_FIELDS, validate_gateway
from pilot.config.validate_mixer_policy import (
    ACCESS_LIST_FIELDS,
    RATE_LIMIT_FIELDS,
    validate_access_list,
    validate_rate_limit,
)
from pilot.config.validate_names import dns1123_label_error, dns1123_subdomain_error
from pilot.config.validate_peer_authentication import PEER_AUTHENTICATION_FIELDS, validate_peer_authentication
from pilot.config.validate_proxy_config import PROXY_CONFIG_FIELDS, validate_proxy_config
from pilot.config.validate_request_authentication import (
    REQUEST_AUTHENTICATION_FIELDS,
    validate_request_authentication,
)
from pilot.config.validate_service_entry import SERVICE_ENTRY_FIELDS, validate_service_entry
from pilot.config.validate_sidecar import SIDECAR_FIELDS, SIDECAR_UNSUPPORTED, validate_sidecar
from pilot.config.validate_telemetry import TELEMETRY_API_VERSIONS, TELEMETRY_FIELDS, validate_telemetry
from pilot.config.validate_virtual_service import (
    VIRTUAL_SERVICE_FIELDS,
    VIRTUAL_SERVICE_UNSUPPORTED,
    validate_virtual_service,
)
from pilot.config.validate_workload_entry import WORKLOAD_FIELDS, validate_workload_entry
from pilot.config.validate_workload_group import WORKLOAD_GROUP_FIELDS, validate_workload_group
from pilot.config.yaml_source import YamlDocument, YamlSyntaxError, line_of, load_documents

__all__ = [
    "API_VERSIONS",
    "DEFAULT_NAMESPACE",
    "ENVOY_FILTER_API_VERSIONS",
    "MIXER_API_VERSIONS",
    "PROXY_CONFIG_API_VERSIONS",
    "SECURITY_API_VERSIONS",
    "ParsedFile",
    "Rejected",
    "Skipped",
    "content_hash",
    "field_origin",
    "parse_config_text",
    "parse_object",
]

API_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
SECURITY_API_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
MIXER_API_VERSIONS = ("mixer.meshplane.io/v1",)
ENVOY_FILTER_API_VERSIONS = ("networking.istio.io/v1alpha3",)  # Istio's one version of EnvoyFilter
PROXY_CONFIG_API_VERSIONS = ("networking.istio.io/v1beta1",)  # Istio serves ProxyConfig in v1beta1 only
DEFAULT_NAMESPACE = "default"

_Validator = Callable[[Fields, ConfigMeta], Resource]
# kind -> (spec fields, unsupported spec fields, validator, API versions)
_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], _Validator, tuple[str, ...]]] = {
    Kind.SERVICE_ENTRY: (SERVICE_ENTRY_FIELDS, (), validate_service_entry, API_VERSIONS),
    Kind.WORKLOAD_ENTRY: (WORKLOAD_FIELDS, (), validate_workload_entry, API_VERSIONS),
    Kind.WORKLOAD_GROUP: (WORKLOAD_GROUP_FIELDS, (), validate_workload_group, API_VERSIONS),
    Kind.DESTINATION_RULE: (
        DESTINATION_RULE_FIELDS,
        DESTINATION_RULE_UNSUPPORTED,
        validate_destination_rule,
        API_VERSIONS,
    ),
    Kind.VIRTUAL_SERVICE: (VIRTUAL_SERVICE_FIELDS, VIRTUAL_SERVICE_UNSUPPORTED, validate_virtual_service, API_VERSIONS),
    Kind.PEER_AUTHENTICATION: (
        PEER_AUTHENTICATION_FIELDS,
        (),
        validate_peer_authentication,
        SECURITY_API_VERSIONS,
    ),
    Kind.AUTHORIZATION_POLICY: (
        AUTHORIZATION_POLICY_FIELDS,
        AUTHORIZATION_POLICY_UNSUPPORTED,
        validate_authorization_policy,
        SECURITY_API_VERSIONS,
    ),
    Kind.REQUEST_AUTHENTICATION: (
        REQUEST_AUTHENTICATION_FIELDS,
        (),
        validate_request_authentication,
        SECURITY_API_VERSIONS,
    ),
    Kind.SIDECAR: (SIDECAR_FIELDS, SIDECAR_UNSUPPORTED, validate_sidecar, API_VERSIONS),
    Kind.ACCESS_LIST: (ACCESS_LIST_FIELDS, (), validate_access_list, MIXER_API_VERSIONS),
    Kind.RATE_LIMIT: (RATE_LIMIT_FIELDS, (), validate_rate_limit, MIXER_API_VERSIONS),
    Kind.GATEWAY: (GATEWAY_FIELDS, (), validate_gateway, API_VERSIONS),
    Kind.TELEMETRY: (TELEMETRY_FIELDS, (), validate_telemetry, TELEMETRY_API_VERSIONS),
    Kind.ENVOY_FILTER: (ENVOY_FILTER_FIELDS, (), validate_envoy_filter, ENVOY_FILTER_API_VERSIONS),
    Kind.PROXY_CONFIG: (PROXY_CONFIG_FIELDS, (), validate_proxy_config, PROXY_CONFIG_API_VERSIONS),
}
_TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec")
_METADATA_FIELDS = ("name", "namespace", "labels")
_METADATA_IGNORED = (  # standard Kubernetes ObjectMeta, present in `kubectl get -o yaml` output
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "generateName",
    "selfLink",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """A document that did not validate: every problem found in it."""

    key: ConfigKey | None  # None when the document has no usable kind / metadata.name
    origin: Origin  # for a file: the line of the document's start
    errors: tuple[ConfigError, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A document of a kind meshplane does not read (a Sidecar, a ConfigMap, ...): a warning, not an error."""

    origin: Origin
    kind: str
    api_version: object

    def __str__(self) -> str:
        return f"{self.origin}: skipped {self.kind} ({self.api_version}): meshplane reads only " + ", ".join(_KINDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFile:
    """What one file holds (or, for a source without files, one unit it reads: ``file`` then names that unit).
    With ``file_error`` set the file is unusable and the other fields are empty."""

    file: str
    resources: tuple[Resource, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    warnings: tuple[str, ...] = ()
    file_error: ConfigError | None = None
    # document start line -> field path -> line: lets the store point its own errors (duplicates, cross-resource
    # checks) at a field
    field_lines: Mapping[int, Mapping[FieldPath, int]] = field(default_factory=lambda: MappingProxyType({}))


def parse_config_text(text: str, file: str) -> ParsedFile:
    """Parse and validate every document of ``text`` (the content of ``file``, used in messages)."""
    try:
        documents = load_documents(text)
    except YamlSyntaxError as exc:
        error = ConfigError(origin=Origin(file=file, line=exc.line), key=None, path="", message=exc.message)
        return ParsedFile(file=file, file_error=error)
    resources: list[Resource] = []
    rejected: list[Rejected] = []
    warnings: list[str] = []
    field_lines: dict[int, Mapping[FieldPath, int]] = {}
    for document in _expand_lists(documents):
        outcome = parse_object(document.root, Origin(file=file, line=document.line), document.field_lines)
        if isinstance(outcome, Skipped):
            warnings.append(str(outcome))
            continue
        if isinstance(outcome, Rejected):
            rejected.append(outcome)
        else:
            resources.append(outcome)
        field_lines[document.line] = document.field_lines
    return ParsedFile(
        file=file,
        resources=tuple(resources),
        rejected=tuple(rejected),
        warnings=tuple(warnings),
        field_lines=MappingProxyType(field_lines),
    )


def field_origin(origin: Origin, field_lines: Mapping[FieldPath, int], path: FieldPath) -> Origin:
    """Where field ``path`` of the document at ``origin`` is: in a file, the line of the field (or of its nearest
    parent present in the file); without a file, the origin itself."""
    return origin.at_line(line_of(field_lines, path, origin.line))


def content_hash(resource: Resource) -> str:
    """sha256 of the canonical JSON of (kind, namespace, name, labels, validated spec): same config, same hash.

    The spec is encoded by ``_canonical``: a dataclass as ``[type name, its field values in declaration order]``
    (its ``meta`` left out), a mapping as an object with sorted keys, a tuple as an array, an enum as its value,
    bytes as hex."""
    key = resource.meta.key
    canonical = [key.kind, key.namespace, key.name, dict(resource.meta.labels), _canonical(resource)]
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_Encoder = Callable[[Any], Any]
_ENCODERS: dict[type, _Encoder] = {}  # per type, made once (Pilot's start hashes every resource)


def _canonical(value: Any) -> Any:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    encode = _ENCODERS.get(kind)
    if encode is None:
        encode = _ENCODERS[kind] = _encoder(kind)
    return encode(value)


def _encoder(kind: type) -> _Encoder:
    if is_dataclass(kind):
        name = kind.__name__
        names = tuple(f.name for f in fields(kind) if f.name != "meta")
        if len(names) < 2:
            return lambda v: [name, *(_canonical(getattr(v, n)) for n in names)]
        values = attrgetter(*names)  # a tuple of the values, in one C call
        return lambda v: [name, *map(_canonical, values(v))]
    if issubclass(kind, Enum):
        return lambda v: _canonical(v.value)
    if issubclass(kind, bytes):  # an EnvoyFilter patch value, serialized deterministically
        return lambda v: v.hex()
    if issubclass(kind, Mapping):
        return lambda v: {str(k): _canonical(item) for k, item in v.items()}
    if issubclass(kind, tuple | list):
        return lambda v: [_canonical(item) for item in v]
    return lambda v: v


def _expand_lists(documents: list[YamlDocument]) -> list[YamlDocument]:
    """Replace each ``kind: List`` document by its items, each with its own field lines."""
    out: list[YamlDocument] = []
    for document in documents:
        root = document.root
        items = root.get("items") if isinstance(root, Mapping) and root.get("kind") == "List" else None
        if not isinstance(items, list):
            out.append(document)
            continue
        for index, item in enumerate(items):
            prefix = ("items", index)
            lines = {p[2:]: line for p, line in document.field_lines.items() if p[:2] == prefix and len(p) > 2}
            start = document.field_lines.get(prefix, document.line)
            out.append(YamlDocument(root=item, line=start, field_lines=MappingProxyType(lines)))
    return out


def parse_object(
    root: object, origin: Origin, field_lines: Mapping[FieldPath, int] | None = None
) -> Resource | Rejected | Skipped:
    """Validate one decoded object (``apiVersion``, ``kind``, ``metadata``, ``spec``) from ``origin``.

    ``field_lines`` (field path -> line) places each problem on its field's line in ``origin``'s file; without
    them (an object from the API server, an in-memory object) every problem is at the origin itself."""
    lines: Mapping[FieldPath, int] = field_lines if field_lines is not None else MappingProxyType({})
    problems = Problems()
    kind = root.get("kind") if isinstance(root, Mapping) else None
    if isinstance(root, Mapping) and isinstance(kind, str) and kind and kind not in _KINDS:
        return Skipped(origin=origin, kind=kind, api_version=root.get("apiVersion"))
    if not isinstance(root, Mapping):
        problems.add((), f"a document must be a mapping (apiVersion, kind, metadata, spec), not {describe(root)}")
        return _rejected(origin, lines, None, problems)
    top = Fields(root, (), problems)
    Fields.open(root, (), problems, known=_TOP_FIELDS, ignored=("status",))
    if not isinstance(kind, str) or not kind:
        top.report("kind", f"required: one of {', '.join(_KINDS)}" if kind is None else "expected a string")
        return _rejected(origin, lines, None, problems)
    known, unsupported, validate, api_versions = _KINDS[kind]
    api_version = top.enum("apiVersion", api_versions)
    if api_version is None and not top.has("apiVersion"):
        top.report("apiVersion", f"required field is missing (one of {', '.join(api_versions)})")
    meta = _metadata(top, kind, origin)
    spec = top.mapping("spec", known=known, unsupported=unsupported, required=True, message=_istio_message(kind))
    if spec is not None:
        # without a usable name the spec is still checked, so that every problem is reported at once
        nameless = ConfigMeta(key=ConfigKey(kind=kind, namespace="", name=""), origin=origin)
        resource = validate(spec, meta or nameless)
        if meta is not None and not problems:
            return replace(resource, meta=replace(meta, content_hash=content_hash(resource)))
    return _rejected(origin, lines, meta.key if meta is not None else None, problems)


def _istio_message(kind: str) -> str | None:
    """The Istio API message of a kind's spec (its fields not read are "not supported by meshplane yet")."""
    return kind if kind in ISTIO_MESSAGES else None


def _metadata(top: Fields, kind: str, origin: Origin) -> ConfigMeta | None:
    """The resource's identity and labels; None when it has no usable name (its problems are reported)."""
    metadata = top.mapping("metadata", known=_METADATA_FIELDS, ignored=_METADATA_IGNORED, required=True)
    if metadata is None:
        return None
    name = metadata.string("name", required=True)
    namespace = metadata.string("namespace") or DEFAULT_NAMESPACE
    if name is not None:
        metadata.problems.add_if(metadata.at("name"), dns1123_subdomain_error(name))
    if metadata.has("namespace"):
        metadata.problems.add_if(metadata.at("namespace"), dns1123_label_error(namespace, "namespace"))
    labels = metadata.labels("labels") or {}
    if name is None:
        return None
    return ConfigMeta(
        key=ConfigKey(kind=kind, namespace=namespace, name=name),
        origin=origin,
        labels=frozen_labels(labels),
    )


def _rejected(
    origin: Origin, field_lines: Mapping[FieldPath, int], key: ConfigKey | None, problems: Problems
) -> Rejected:
    errors = sorted(
        (
            ConfigError(
                origin=field_origin(origin, field_lines, path),
                key=key,
                path=format_path(path),
                message=message,
            )
            for path, message in problems.items
        ),
        key=lambda error: error.origin.line,  # stable: problems of one line stay in the order found
    )
    return Rejected(key=key, origin=origin, errors=tuple(errors))
