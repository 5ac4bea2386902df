"""Generated xDS resources, serialized once and shared by every proxy that gets them.

A ``Resource`` is the unit the xDS layer moves: its name, its version (a content hash, go-control-plane's
``HashResource``) and its serialized ``google.protobuf.Any``. The framing bytes that put it into a SotW or delta
response are computed with it, so building a response never touches the protobuf runtime.

A ``ResourceGroup`` is a set of resources built together (one generator scope, or one proxy's own part) with the
concatenated SotW body, and ``ProxyResources`` is what one proxy gets of one type in one snapshot: its groups,
merged by name, and the type version over them.

Type versions are a hash over the (name, version) set: the XOR of the resources' 64-bit content hashes, so that
a version can be updated per changed resource instead of rehashing the whole set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf.message import Message

from xdscore import encode
from xdscore.types import TYPE_URL_PREFIX

__all__ = [
    "EMPTY_GROUP",
    "EMPTY_PROXY_RESOURCES",
    "TYPE_URL_PREFIX",
    "MergedResources",
    "ProxyResources",
    "Resource",
    "ResourceGroup",
    "ResourceVersions",
    "entry_digest",
    "format_version",
    "make_resource",
    "resource_name",
    "type_url_of",
]

_NAME_FIELDS = ("name", "cluster_name")  # ClusterLoadAssignment is named by cluster_name, the others by name


def type_url_of(message: Message) -> str:
    full_name: str = message.DESCRIPTOR.full_name
    return TYPE_URL_PREFIX + full_name


def resource_name(message: Message) -> str:
    """The xDS name of a resource: ``name``, or ``cluster_name`` for a ClusterLoadAssignment; ``""`` for a type that
    has neither, served as one unnamed resource per proxy (Istio's NDS ``NameTable``, as Istio sends it)."""
    fields = message.DESCRIPTOR.fields_by_name
    if not any(field_name in fields for field_name in _NAME_FIELDS):
        return ""
    for field_name in _NAME_FIELDS:
        if field_name in fields:
            value = getattr(message, field_name)
            if isinstance(value, str) and value:
                return value
    raise ValueError(f"{message.DESCRIPTOR.full_name} resource has no name (fields {', '.join(_NAME_FIELDS)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """One serialized resource. ``version`` is the first 16 hex digits of sha256(deterministic serialization)."""

    name: str
    version: str
    any_bytes: bytes
    sotw_header: bytes = field(init=False, repr=False, compare=False)
    delta_prefix: bytes = field(init=False, repr=False, compare=False)
    delta_suffix: bytes = field(init=False, repr=False, compare=False)
    digest: int = field(init=False, repr=False, compare=False)  # the version as 64 bits, for type versions

    def __post_init__(self) -> None:
        object.__setattr__(self, "sotw_header", encode.sotw_resource_header(len(self.any_bytes)))
        prefix, suffix = encode.delta_resource_frame(self.name, self.version, len(self.any_bytes))
        object.__setattr__(self, "delta_prefix", prefix)
        object.__setattr__(self, "delta_suffix", suffix)
        object.__setattr__(self, "digest", entry_digest(self.version))


def make_resource(message: Message) -> Resource:
    """Serialize a generated message once: version and Any bytes for every proxy that will get it."""
    value = message.SerializeToString(deterministic=True)
    version = hashlib.sha256(value).hexdigest()[:16]
    return Resource(
        name=resource_name(message), version=version, any_bytes=encode.any_bytes(type_url_of(message), value)
    )


def entry_digest(version: str) -> int:
    """64 bits of a resource version for the type-version XOR. Our versions are 16 hex digits; a version from
    another control plane (a delta client's initial_resource_versions) is hashed instead."""
    if len(version) == 16:
        try:
            return int(version, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.sha256(version.encode()).digest()[:8], "big")


def format_version(digest: int) -> str:
    return f"{digest:016x}"


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    """Resources built together, by name, with their SotW ``resources`` entries concatenated once."""

    resources: Mapping[str, Resource]
    digest: int
    sotw_body: bytes  # every resource as DiscoveryResponse.resources entries
    delta_body: bytes  # every resource as DeltaDiscoveryResponse.resources entries
    references: frozenset[str] = frozenset()  # names of another type these point at (EDS of clusters, RDS of listeners)

    @classmethod
    def of(cls, resources: Iterable[Resource], references: Iterable[str] = ()) -> ResourceGroup:
        by_name: dict[str, Resource] = {}
        digest = 0
        sotw: list[bytes] = []
        delta: list[bytes] = []
        for resource in sorted(resources, key=lambda r: r.name):
            if resource.name in by_name:
                raise ValueError(f"duplicate resource name {resource.name!r} in one generator output")
            by_name[resource.name] = resource
            digest ^= resource.digest
            sotw += (resource.sotw_header, resource.any_bytes)
            delta += (resource.delta_prefix, resource.any_bytes, resource.delta_suffix)
        return cls(MappingProxyType(by_name), digest, b"".join(sotw), b"".join(delta), frozenset(references))


EMPTY_GROUP = ResourceGroup(MappingProxyType({}), 0, b"", b"")


class MergedResources(Mapping[str, Resource]):
    """The resources of several groups by name, without copying them into one dict per proxy (the first group
    holding a name wins). Proxies share their big groups; only this small view is per proxy."""

    __slots__ = ("_groups", "_len", "_unique")

    def __init__(self, groups: tuple[ResourceGroup, ...]) -> None:
        self._groups = groups
        duplicates = 0
        for index in range(1, len(groups)):  # the later groups are small (a proxy's own part): check those
            earlier = groups[:index]
            duplicates += sum(1 for name in groups[index].resources if any(name in g.resources for g in earlier))
        self._len = sum(len(g.resources) for g in groups) - duplicates
        self._unique = duplicates == 0

    @property
    def unique(self) -> bool:
        return self._unique

    def get(self, name: str, default: Resource | None = None) -> Resource | None:  # type: ignore[override]
        for group in self._groups:
            resource = group.resources.get(name)
            if resource is not None:
                return resource
        return default

    def __getitem__(self, name: str) -> Resource:
        resource = self.get(name)
        if resource is None:
            raise KeyError(name)
        return resource

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None  # a loop, not any(): this is a hot path

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        for _, resource in self.items():
            yield resource.name

    def items(self) -> Iterator[tuple[str, Resource]]:  # type: ignore[override]
        if self._unique:
            for group in self._groups:
                yield from group.resources.items()
            return
        seen: set[str] = set()
        for group in self._groups:
            for name, resource in group.resources.items():
                if name not in seen:
                    seen.add(name)
                    yield name, resource


class ResourceVersions(Mapping[str, str]):
    """name -> version over a ``MergedResources``, computed on lookup."""

    __slots__ = ("_resources",)

    def __init__(self, resources: MergedResources) -> None:
        self._resources = resources

    def __getitem__(self, name: str) -> str:
        return self._resources[name].version

    def __contains__(self, name: object) -> bool:
        return name in self._resources

    def __len__(self) -> int:
        return len(self._resources)

    def __iter__(self) -> Iterator[str]:
        return iter(self._resources)


@dataclass(frozen=True, slots=True)
class ProxyResources:
    """One proxy's resources of one type in one snapshot: shared groups first, then the proxy's own."""

    groups: tuple[ResourceGroup, ...]
    resources: MergedResources
    versions: ResourceVersions
    version: str
    sotw_bodies: tuple[bytes, ...]  # the whole set as DiscoveryResponse.resources entries
    delta_bodies: tuple[bytes, ...]  # the whole set as DeltaDiscoveryResponse.resources entries

    @classmethod
    def of(cls, groups: Iterable[ResourceGroup]) -> ProxyResources:
        groups = tuple(groups)
        merged = MergedResources(groups)
        digest = 0
        if merged.unique:
            for group in groups:
                digest ^= group.digest
            sotw_bodies = tuple(g.sotw_body for g in groups if g.sotw_body)
            delta_bodies = tuple(g.delta_body for g in groups if g.delta_body)
        else:  # two groups claim a name: the first wins, and the bodies are rebuilt without the others
            sotw: list[bytes] = []
            delta: list[bytes] = []
            for _, resource in merged.items():
                digest ^= resource.digest
                sotw += (resource.sotw_header, resource.any_bytes)
                delta += (resource.delta_prefix, resource.any_bytes, resource.delta_suffix)
            sotw_bodies, delta_bodies = (b"".join(sotw),), (b"".join(delta),)
        return cls(groups, merged, ResourceVersions(merged), format_version(digest), sotw_bodies, delta_bodies)


EMPTY_PROXY_RESOURCES = ProxyResources.of(())
